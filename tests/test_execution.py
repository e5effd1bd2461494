"""Execution (IMMEDIATE): verdicts to orders, the order state machine, and the venue loop."""

import math

import msgspec
import pytest

from actors.common.recent import SAVE_CHUNK
from actors.execution import (
    TRANSITIONS,
    ExecutionActor,
    ExecutionParams,
    Order,
    OrderState,
    Outcome,
)
from actors.execution.actor import ExecutionState
from actors.messages import (
    AnyMessage,
    Control,
    ControlCommand,
    DenyReason,
    Direction,
    ExecStrategy,
    Fill,
    OrderAck,
    OrderReject,
    OrderRequest,
    OrderType,
    RejectReason,
    RiskVerdict,
    Tick,
    TimeInForce,
    TradingState,
)
from actors.risk.killswitch import KillSwitch
from actors.venue import ExchangeParams, VenueActor
from kernel.codec import Codec
from tests.helpers import StreamCapture, actor_context

NS = 1_000_000_000
T0 = 1_767_623_400 * NS
CODEC = Codec.from_union(AnyMessage)


def _verdict(
    intent_id: str = "I-7",
    quantity: int = 3,
    direction: Direction = Direction.LONG,
    approved: bool = True,
    origin_ns: int = 9_000,
    symbol: str = "ES",
) -> RiskVerdict:
    return RiskVerdict(
        intent_id=intent_id,
        symbol=symbol,
        approved=approved,
        reason=DenyReason.NONE if approved else DenyReason.POSITION_LIMIT,
        direction=direction,
        quantity=quantity,
        price=100.0,
        origin_ns=origin_ns,
        intent_ns=origin_ns + 500,
    )


def _ack(client_order_id: str = "I-7-1", quantity: int = 10, venue_order_id="V1") -> OrderAck:
    return OrderAck(
        client_order_id=client_order_id,
        venue_order_id=venue_order_id,
        symbol="ES",
        side=Direction.LONG,
        quantity=quantity,
        event_ns=T0,
    )


def _fill(
    fill_id: str, quantity: int, leaves: int, price: float = 100.0, client_order_id: str = "I-7-1"
) -> Fill:
    return Fill(
        fill_id=fill_id,
        client_order_id=client_order_id,
        venue_order_id="V1",
        symbol="ES",
        side=Direction.LONG,
        quantity=quantity,
        price=price,
        leaves_quantity=leaves,
        fee=2.25 * quantity,
        event_ns=T0,
    )


def _reject(client_order_id: str = "I-7-1", reason: RejectReason = RejectReason.NO_LIQUIDITY):
    return OrderReject(client_order_id=client_order_id, symbol="ES", reason=reason, event_ns=T0)


def _order(quantity: int = 10) -> Order:
    return Order(
        client_order_id="I-7-1",
        intent_id="I-7",
        symbol="ES",
        side=Direction.LONG,
        quantity=quantity,
    )


async def _execution(capture, **params: object) -> tuple[ExecutionActor, StreamCapture]:
    out = capture("orders", CODEC)
    actor = ExecutionActor(
        msgspec.convert(params, ExecutionParams), actor_context("execution", {"orders": out.stream})
    )
    await actor.on_start()
    return actor, out


# --- the state machine ----------------------------------------------------------------


def test_ack_then_partial_then_full_fill_ends_filled_at_the_average_price():
    order = _order(10)
    assert order.apply_ack(_ack()) is Outcome.APPLIED
    assert (order.state, order.venue_order_id) == (OrderState.ACKED, "V1")
    assert order.apply_fill(_fill("F1", 4, leaves=6, price=100.0)) is Outcome.APPLIED
    assert (order.state, order.filled_quantity) == (OrderState.PARTIALLY_FILLED, 4)
    assert order.apply_fill(_fill("F2", 6, leaves=0, price=101.0)) is Outcome.APPLIED
    assert (order.state, order.filled_quantity, order.done) == (OrderState.FILLED, 10, True)
    assert order.avg_price == pytest.approx((4 * 100.0 + 6 * 101.0) / 10)
    assert order.fees == pytest.approx(10 * 2.25)


def test_an_ioc_remainder_ends_the_order_cancelled_with_what_filled():
    order = _order(10)
    order.apply_ack(_ack())
    assert order.apply_fill(_fill("F1", 4, leaves=0)) is Outcome.APPLIED
    assert (order.state, order.filled_quantity, order.done) == (OrderState.CANCELLED, 4, True)


def test_a_reject_ends_a_new_order_with_its_reason():
    order = _order()
    assert order.apply_reject(_reject(reason=RejectReason.NO_LIQUIDITY)) is Outcome.APPLIED
    assert (order.state, order.reject_reason) == (OrderState.REJECTED, RejectReason.NO_LIQUIDITY)
    assert math.isnan(order.avg_price)


def test_a_fill_implies_the_ack():
    order = _order(5)
    assert order.apply_fill(_fill("F1", 5, leaves=0)) is Outcome.APPLIED
    assert (order.state, order.venue_order_id) == (OrderState.FILLED, "V1")


def test_the_same_ack_again_is_a_duplicate_in_any_state_after_it():
    order = _order(10)
    assert order.apply_ack(_ack()) is Outcome.APPLIED
    assert order.apply_ack(_ack()) is Outcome.DUPLICATE
    order.apply_fill(_fill("F1", 10, leaves=0))
    assert order.apply_ack(_ack()) is Outcome.DUPLICATE
    assert (order.state, order.venue_order_id) == (OrderState.FILLED, "V1")


def test_a_fill_already_applied_is_a_duplicate_and_changes_nothing():
    order = _order(10)
    order.apply_fill(_fill("F1", 4, leaves=6))
    assert order.apply_fill(_fill("F1", 4, leaves=6)) is Outcome.DUPLICATE
    assert (order.state, order.filled_quantity) == (OrderState.PARTIALLY_FILLED, 4)
    order.apply_fill(_fill("F2", 6, leaves=0))
    assert order.apply_fill(_fill("F2", 6, leaves=0)) is Outcome.DUPLICATE
    assert (order.state, order.filled_quantity) == (OrderState.FILLED, 10)


@pytest.mark.parametrize(
    ("history", "event"),
    [
        (["ack"], _ack(venue_order_id="V2")),  # a second ack, of another venue order
        (["ack", "fill"], _ack(venue_order_id="V2")),  # an ack after the order is done
        (["reject"], _ack()),  # an ack after a reject
        (["reject"], _fill("F9", 1, leaves=0)),  # a fill after a reject
        (["ack"], _reject()),  # a reject after the ack
        (["ack", "fill"], _fill("F9", 1, leaves=0)),  # a fill after FILLED
        (["ack"], _fill("F9", 11, leaves=0)),  # more than ordered
        (["ack"], _fill("F9", 4, leaves=7)),  # leaves beyond what is left
        (["ack"], _fill("F9", 0, leaves=10)),  # an empty fill
        (["ack"], _fill("F9", 1, leaves=-1)),
        (["ack"], _fill("F9", 10, leaves=0, price=math.nan)),  # refused by risk too
        (["ack"], msgspec.structs.replace(_fill("F9", 10, leaves=0), fee=math.inf)),
    ],
)
def test_invalid_transitions_leave_the_order_as_it_was(history, event):
    order = _order(10)
    steps = {"ack": _ack(), "fill": _fill("F1", 10, leaves=0), "reject": _reject()}
    apply = {OrderAck: Order.apply_ack, Fill: Order.apply_fill, OrderReject: Order.apply_reject}
    for step in history:
        assert apply[type(steps[step])](order, steps[step]) is Outcome.APPLIED
    before = _snapshot(order)
    assert apply[type(event)](order, event) is Outcome.INVALID
    assert _snapshot(order) == before


def _snapshot(order: Order) -> tuple[object, ...]:
    """Everything a venue message can change (avg_price follows filled_quantity)."""
    return (
        order.state,
        order.filled_quantity,
        order.fees,
        order.venue_order_id,
        order.reject_reason,
        frozenset(order.fill_ids),
    )


def test_terminal_states_have_no_way_out_and_every_state_is_reachable():
    terminal = {OrderState.FILLED, OrderState.REJECTED, OrderState.CANCELLED}
    assert not any(state in terminal for state, _ in TRANSITIONS)
    assert {OrderState.NEW, *TRANSITIONS.values()} == set(OrderState)


# --- the actor ------------------------------------------------------------------------


async def test_an_approved_verdict_becomes_one_market_ioc_order_with_a_deterministic_id(capture):
    actor, out = await _execution(capture)
    actor.on_message(_verdict("I-7", quantity=3, direction=Direction.SHORT, origin_ns=9_000))
    (order,) = out.messages
    assert type(order) is OrderRequest
    assert (order.client_order_id, order.intent_id, order.symbol) == ("I-7-1", "I-7", "ES")
    assert (order.side, order.quantity) == (Direction.SHORT, 3)
    assert (order.order_type, order.time_in_force, order.strategy) == (
        OrderType.MARKET,
        TimeInForce.IOC,
        ExecStrategy.IMMEDIATE,
    )
    assert (order.origin_ns, order.intent_ns, order.seq) == (9_000, 9_500, 1)
    assert order.ts_ns > 0
    assert actor.orders["I-7-1"].state == OrderState.NEW
    assert actor.counts.orders == 1


async def test_denied_and_empty_verdicts_send_nothing(capture):
    actor, out = await _execution(capture)
    actor.on_message(_verdict("I-1", approved=False))
    actor.on_message(_verdict("I-2", quantity=0))
    actor.on_message(_verdict("I-3", direction=Direction.FLAT))
    actor.on_message(_verdict("", quantity=1))
    actor.on_message(_verdict("I-4", symbol="CL"))  # not an instrument traded here
    actor.on_message(Control(command=ControlCommand.HALT))
    assert out.messages == [] and actor.orders == {}
    assert (actor.counts.denied, actor.counts.ignored, actor.counts.orders) == (1, 4, 0)


async def test_a_redelivered_verdict_is_not_resent_and_the_same_intent_makes_the_same_id(capture):
    actor, out = await _execution(capture)
    actor.on_message(_verdict("I-7"))
    actor.on_message(_verdict("I-7"))
    assert len(out.messages) == 1 and actor.counts.redelivered == 1
    restarted, out_after = await _execution(capture)
    restarted.on_message(_verdict("I-7"))
    (again,) = out_after.messages
    assert again.client_order_id == out.messages[0].client_order_id == "I-7-1"


async def test_replies_drive_the_order_and_bad_ones_are_counted_not_fatal(capture):
    actor, _ = await _execution(capture)
    actor.on_message(_verdict("I-7", quantity=10))
    for reply in (
        _ack(),
        _ack(venue_order_id="V2"),  # invalid: a second ack, of another venue order
        _ack(),  # duplicate
        _fill("F1", 4, leaves=6),
        _fill("F1", 4, leaves=6),  # duplicate
        _fill("F2", 6, leaves=0),
        _reject(),  # invalid: the order is done
        _fill("F3", 1, leaves=0, client_order_id="nobody-1"),  # unknown
    ):
        actor.on_message(reply)
    order = actor.orders["I-7-1"]
    assert (order.state, order.filled_quantity) == (OrderState.FILLED, 10)
    switch = KillSwitch.open(actor.context.system)
    assert switch.trading_state is TradingState.REDUCING  # the fill of an unknown order
    assert "Fill for unknown order 'nobody-1'" in switch.state().state_reason
    switch.close()
    counts = actor.counts
    assert (counts.invalid_transitions, counts.duplicate_fills, counts.unknown_orders) == (2, 1, 1)
    assert counts.duplicate_acks == 1


async def test_finished_orders_are_retained_within_the_bound(capture):
    actor, _ = await _execution(capture, retain_done=1)
    for intent in ("A", "B", "C"):
        actor.on_message(_verdict(intent, quantity=1))
    actor.on_message(_reject("A-1"))
    actor.on_message(_fill("F1", 1, leaves=0, client_order_id="B-1"))
    assert sorted(actor.orders) == ["B-1", "C-1"]  # A dropped, C still working
    actor.on_message(_fill("F1", 1, leaves=0, client_order_id="B-1"))
    assert actor.counts.duplicate_fills == 1


def test_params_parse_strictly_from_config():
    assert ExecutionActor.parse_params({}).retain_done == 256
    with pytest.raises(msgspec.ValidationError, match="unknown field `streams`"):
        ExecutionActor.parse_params({"streams": "x"})


# --- end to end: risk verdict -> execution -> venue -> execution ---------------------


class _Chain:
    """Execution and a venue connected by real rings, pumped by hand in one event loop."""

    def __init__(
        self,
        execution: ExecutionActor,
        orders: StreamCapture,
        venue: VenueActor,
        replies: StreamCapture,
    ) -> None:
        self.execution = execution
        self.orders = orders
        self.venue = venue
        self.replies = replies
        self._orders_read = 0
        self._replies_read = 0

    @classmethod
    async def start(cls, capture, depth: int = 100) -> "_Chain":
        """Both actors started; the venue has a still book of `depth` a side at 100/100.25."""
        execution, orders = await _execution(capture)
        replies = capture("venue", CODEC)
        venue = VenueActor(ExchangeParams(), actor_context("venue", {"reports": replies.stream}))
        await venue.on_start()
        for i in range(3):
            venue.on_message(
                Tick(
                    symbol="ES",
                    price=100.25,
                    size=1,
                    bid=100.0,
                    ask=100.25,
                    bid_size=depth,
                    ask_size=depth,
                    event_ns=T0 + i * NS,
                )
            )
        return cls(execution, orders, venue, replies)

    def send(self, verdict: RiskVerdict) -> list[object]:
        """Deliver `verdict`, then the orders and replies it causes; the replies."""
        self.execution.on_message(verdict)
        for order in self.orders.messages[self._orders_read :]:
            self.venue.on_message(order)
        self._orders_read = len(self.orders.messages)
        replies = self.replies.messages[self._replies_read :]
        self._replies_read = len(self.replies.messages)
        for reply in replies:
            self.execution.on_message(reply)
        return replies


async def test_a_verdict_ends_filled_at_the_venue_with_its_origin_traced(capture):
    chain = await _Chain.start(capture)
    replies = chain.send(_verdict("I-1", quantity=7, origin_ns=31_337))
    assert [type(r) for r in replies] == [OrderAck, Fill]
    assert all(r.origin_ns == 31_337 for r in replies)
    order = chain.execution.orders["I-1-1"]
    assert (order.state, order.filled_quantity, order.venue_order_id) == (
        OrderState.FILLED,
        7,
        "V-I-1-1",
    )
    assert order.avg_price == 100.25  # at the ask; no impact in a market that has not moved
    assert order.fees == pytest.approx(7 * 2.25)


async def test_an_order_beyond_the_depth_ends_cancelled_with_the_filled_part(capture):
    chain = await _Chain.start(capture, depth=4)
    chain.send(_verdict("I-2", quantity=10, direction=Direction.SHORT))
    order = chain.execution.orders["I-2-1"]
    assert (order.state, order.filled_quantity, order.avg_price) == (
        OrderState.CANCELLED,
        4,
        100.0,
    )


async def test_the_order_table_is_durable_state_a_restored_actor_knows(capture):
    """The kernel commits `state_to_save()` and restores it into a new instance: the order
    sent before is known, so the same verdict again sends nothing."""
    chain = await _Chain.start(capture)
    chain.send(_verdict("I-3", quantity=2))
    saved = msgspec.msgpack.encode(chain.execution.state_to_save())
    restored = ExecutionActor(ExecutionParams(), chain.execution.context)
    restored.state = msgspec.msgpack.decode(saved, type=ExecutionState)
    await restored.on_start()
    chain.execution = restored
    assert restored.orders["I-3-1"].state == OrderState.FILLED
    assert chain.send(_verdict("I-3", quantity=2)) == []
    assert restored.counts.redelivered == 1 and restored.counts.orders == 1
    assert chain.venue.venue.stats.contracts_filled == 2


async def test_a_new_run_re_sends_working_orders_and_the_venue_answers_the_original_fill(capture):
    """The previous run stopped with an order executed at the venue but its replies still
    in flight (a new run's rings are new: they are gone). The restored actor sends the
    working order again; the venue answers with the fill it made, and executes nothing."""
    chain = await _Chain.start(capture)
    chain.execution.on_message(_verdict("I-5", quantity=3))
    (order,) = chain.orders.messages
    chain.venue.on_message(order)  # executed; its ack and fill never reach execution
    (original_fill,) = [m for m in chain.replies.messages if type(m) is Fill]
    chain._orders_read, chain._replies_read = 1, 2
    saved = msgspec.msgpack.encode(chain.execution.state_to_save())
    context = actor_context("execution", {"orders": chain.orders.stream}, new_run=True)
    restored = ExecutionActor(ExecutionParams(), context)
    restored.state = msgspec.msgpack.decode(saved, type=ExecutionState)
    await restored.on_start()
    chain.execution = restored
    assert restored.counts.resent == 1
    replies = chain.send(_verdict("I-5", quantity=3))  # the verdict is not sent again...
    assert [type(r) for r in replies] == [OrderAck, Fill]  # ...the re-sent order is answered
    order = restored.orders["I-5-1"]
    assert (order.state, order.avg_price) == (OrderState.FILLED, original_fill.price)
    assert order.fill_ids == {original_fill.fill_id}
    stats = chain.venue.venue.stats
    assert (stats.fills, stats.repeats, stats.contracts_filled) == (1, 1, 3)


async def test_finished_orders_survive_a_restart_as_saved_chunks(capture):
    """The working orders are saved as orders, the finished ones as the chunks they were
    encoded into when retired: a restored actor knows both, within `retain_done`."""
    retain = 2 * SAVE_CHUNK + 10
    actor, _ = await _execution(capture, retain_done=retain)
    finished = 3 * SAVE_CHUNK + 20
    for n in range(finished):
        actor.on_message(_verdict(f"D{n}", quantity=1))
        actor.on_message(_fill(f"F{n}", 1, leaves=0, client_order_id=f"D{n}-1"))
    actor.on_message(_verdict("W", quantity=1))
    state = actor.state_to_save()
    assert list(state.orders) == ["W-1"] and len(state.retired) == 4  # 3 closed, 1 open
    saved = msgspec.msgpack.encode(state)
    restored = ExecutionActor(actor.params, actor.context)
    restored.state = msgspec.msgpack.decode(saved, type=ExecutionState)
    await restored.on_start()
    oldest = finished - retain
    assert len(restored.orders) == retain + 1 and f"D{oldest - 1}-1" not in restored.orders
    assert restored.orders[f"D{oldest}-1"].state is OrderState.FILLED
    newest = finished - 1
    restored.on_message(_fill(f"F{newest}", 1, leaves=0, client_order_id=f"D{newest}-1"))
    restored.on_message(_verdict(f"D{oldest}", quantity=1))
    assert (restored.counts.duplicate_fills, restored.counts.redelivered) == (1, 1)
    restored.on_message(_fill("FW", 1, leaves=0, client_order_id="W-1"))
    assert restored.orders["W-1"].state is OrderState.FILLED
    assert restored.state_to_save().orders == {}


class _RecordBeforeRetiredChunks(msgspec.Struct, kw_only=True):
    orders: dict[str, Order]
    done: list[str]


async def test_a_record_from_before_the_saved_chunks_restores_every_order(capture):
    actor, _ = await _execution(capture)
    for intent in ("A", "B"):
        actor.on_message(_verdict(intent, quantity=1))
    actor.on_message(_fill("F1", 1, leaves=0, client_order_id="A-1"))
    old = _RecordBeforeRetiredChunks(orders=dict(actor.orders), done=["A-1"])
    restored = ExecutionActor(actor.params, actor.context)
    restored.state = msgspec.msgpack.decode(msgspec.msgpack.encode(old), type=ExecutionState)
    await restored.on_start()
    assert restored.orders["A-1"].state is OrderState.FILLED
    state = restored.state_to_save()
    assert list(state.orders) == ["B-1"] and len(state.retired) == 1


async def test_a_restart_within_a_run_re_sends_nothing(capture):
    chain = await _Chain.start(capture)
    chain.execution.on_message(_verdict("I-6", quantity=1))
    saved = msgspec.msgpack.encode(chain.execution.state_to_save())
    restored = ExecutionActor(ExecutionParams(), chain.execution.context)  # new_run False
    restored.state = msgspec.msgpack.decode(saved, type=ExecutionState)
    await restored.on_start()
    assert restored.counts.resent == 0 and len(chain.orders.messages) == 1


async def test_an_unknown_order_never_lifts_a_halt(capture):
    actor, _ = await _execution(capture)
    switch = KillSwitch.open(actor.context.system)
    switch.set_trading_state(TradingState.HALTED, "pytest", "halted first")
    actor.on_message(_ack("nobody-1"))
    assert switch.trading_state is TradingState.HALTED
    assert actor.counts.unknown_orders == 1
    switch.close()
