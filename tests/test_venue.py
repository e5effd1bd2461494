"""The simulated venue: spread crossing, square-root impact, partial fills, fees, rejects.

Most tests drive a VenueActor over a real ring. The book they build makes the impact exact:
the mid alternates by one tick (0.25) every market second, so each volatility sample is
0.25^2 / 1 s and the EWMA of equal samples is that rate; with session_s = 1600 the daily
sigma is sqrt(0.0625 * 1600) = 10 points, and with impact_alpha = 1, adv_contracts = 100
the impact of q contracts is 10 * sqrt(q / 100) = sqrt(q) points.
"""

import math
import time

import msgspec
import pytest

from actors.common.recent import RecentIds
from actors.messages import (
    AnyMessage,
    CancelRequest,
    Control,
    ControlCommand,
    Direction,
    Fill,
    Liquidity,
    OrderAck,
    OrderReject,
    OrderRequest,
    OrderType,
    RejectReason,
    Tick,
    TimeInForce,
)
from actors.venue import ExchangeParams, SimulatedVenue, SymbolBook, VenueActor
from actors.venue.ledger import OrderLedger, is_final
from config.instruments import Instrument
from kernel.codec import Codec
from kernel.latency import read_histograms
from tests.helpers import StreamCapture, actor_context

NS = 1_000_000_000
T0 = 1_767_623_400 * NS
CODEC = Codec.from_union(AnyMessage)


def _registry(**es_terms: object) -> dict[str, Instrument]:
    """ES with an ADV of 100 contracts (and `es_terms`), and NQ."""
    es = Instrument(symbol="ES", adv_contracts=100.0, **es_terms)  # type: ignore[arg-type]
    return {"ES": es, "NQ": Instrument(symbol="NQ", point_value=20.0)}


EXACT = {"impact_alpha": 1.0, "session_s": 1600.0, "registry": _registry()}
"""Parameters under which the book of `_calm_market` has an impact of sqrt(q) points."""


def _tick(
    seconds: float,
    bid: float,
    ask: float,
    size: int = 100,
    symbol: str = "ES",
) -> Tick:
    return Tick(
        symbol=symbol,
        price=ask,
        size=1,
        bid=bid,
        ask=ask,
        bid_size=size,
        ask_size=size,
        event_ns=T0 + round(seconds * NS),
    )


def _calm_market(ticks: int = 21, size: int = 100) -> list[Tick]:
    """The mid alternates 100.125 / 100.375 every second; ends on bid 100.00, ask 100.25."""
    return [_tick(i, 100.0 + 0.25 * (i % 2), 100.25 + 0.25 * (i % 2), size) for i in range(ticks)]


def _order(
    client_order_id: str,
    side: Direction,
    quantity: int,
    symbol: str = "ES",
    origin_ns: int = 0,
    **fields: object,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        quantity=quantity,
        origin_ns=origin_ns,
        **fields,
    )


async def _venue(capture, **params: object) -> tuple[VenueActor, StreamCapture]:
    out = capture("venue", CODEC)
    actor = VenueActor(
        msgspec.convert(params, ExchangeParams), actor_context("venue", {"reports": out.stream})
    )
    await actor.on_start()
    return actor, out


async def _traded(capture, **params: object) -> tuple[VenueActor, StreamCapture]:
    """A venue that has seen `_calm_market` under `EXACT` (plus `params`)."""
    actor, out = await _venue(capture, **{**EXACT, **params})
    for tick in _calm_market():
        actor.on_message(tick)
    return actor, out


def _fills(out: StreamCapture) -> list[Fill]:
    return [m for m in out.messages if type(m) is Fill]


# --- the book and its volatility ------------------------------------------------------


def test_the_volatility_estimate_is_an_ewma_of_mid_variance_rates_scaled_to_a_day():
    book = SymbolBook(decay=0.5, session_s=100.0, max_gap_s=60.0)
    assert math.isnan(book.sigma_points)
    book.on_tick(_tick(0, 100.0, 100.5))  # mid 100.25: the first reference
    assert math.isnan(book.sigma_points)
    book.on_tick(_tick(2, 101.0, 101.5))  # +1 point in 2 s: rate 0.5, seeds the EWMA
    assert book.sigma_points == pytest.approx(math.sqrt(0.5 * 100))
    book.on_tick(_tick(2, 103.0, 103.5))  # same instant: folded into the next sample
    book.on_tick(_tick(3, 101.0, 101.5))  # net 0 since t=2: rate 0
    assert book.sigma_points == pytest.approx(math.sqrt(0.25 * 100))
    book.on_tick(_tick(100, 90.0, 90.5))  # a 97 s gap: a new reference, not a sample
    book.on_tick(_tick(101, 91.0, 91.5))  # +1 in 1 s: rate 1
    assert book.sigma_points == pytest.approx(math.sqrt((0.25 * 0.5 + 0.5) * 100))
    assert (book.bid, book.ask, book.bid_size, book.ask_size, book.last) == (
        91.0,
        91.5,
        100,
        100,
        91.5,
    )


@pytest.mark.parametrize(
    ("bid", "ask"), [(100.25, 100.0), (math.nan, 100.0), (0.0, 100.0), (100.0, math.inf)]
)
def test_an_unusable_quote_leaves_the_book_unchanged(bid, ask):
    venue = SimulatedVenue(msgspec.convert({}, ExchangeParams))
    venue.on_tick(_tick(0, 99.0, 99.25))
    venue.on_tick(_tick(1, bid, ask))
    book = venue.books["ES"]
    assert (book.bid, book.ask, venue.stats.bad_ticks) == (99.0, 99.25, 1)


def test_recent_ids_forget_the_oldest_beyond_capacity():
    ids = RecentIds(2)
    assert ids.add("a") and ids.add("b") and not ids.add("a")
    assert ids.add("c")
    assert "a" not in ids and "b" in ids and "c" in ids and len(ids) == 2
    assert ids.add("a")
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(0)


# --- fills ----------------------------------------------------------------------------


async def test_a_buy_crosses_at_the_ask_plus_impact_and_a_sell_at_the_bid_minus_impact(capture):
    actor, out = await _traded(capture)
    assert actor.venue.books["ES"].sigma_points == pytest.approx(10.0)
    actor.on_message(_order("buy-1", Direction.LONG, 4, origin_ns=111))
    actor.on_message(_order("sell-1", Direction.SHORT, 9, origin_ns=222))
    ack_buy, fill_buy, ack_sell, fill_sell = out.messages
    assert type(ack_buy) is OrderAck and type(ack_sell) is OrderAck
    ids = (ack_buy.client_order_id, ack_buy.venue_order_id, ack_buy.quantity)
    assert ids == ("buy-1", "V-buy-1", 4)
    assert (fill_buy.fill_id, fill_buy.venue_order_id) == ("F-buy-1-1", "V-buy-1")
    assert (fill_buy.side, fill_buy.quantity, fill_buy.leaves_quantity) == (Direction.LONG, 4, 0)
    assert fill_buy.price == 100.25 + 2.0  # ask + sqrt(4)
    assert fill_sell.price == 100.0 - 3.0  # bid - sqrt(9)
    assert (fill_sell.fill_id, fill_sell.venue_order_id) == ("F-sell-1-1", "V-sell-1")
    assert fill_buy.liquidity == Liquidity.TAKER
    assert fill_buy.fee == pytest.approx(4 * 2.25) and fill_sell.fee == pytest.approx(9 * 2.25)
    assert [m.origin_ns for m in out.messages] == [111, 111, 222, 222]
    assert all(m.event_ns == T0 + 20 * NS for m in out.messages)
    assert [m.seq for m in out.messages] == [1, 2, 3, 4]
    stats = actor.venue.stats
    assert (stats.orders, stats.fills, stats.contracts_filled) == (2, 2, 13)
    assert stats.fees == pytest.approx(13 * 2.25)
    assert stats.impact_cost == pytest.approx((2.0 * 4 + 3.0 * 9) * 50.0)


async def test_impact_grows_with_the_square_root_of_quantity_rounded_to_the_tick(capture):
    actor, out = await _traded(capture)
    quantities = (1, 2, 4, 9, 16, 25)
    for q in quantities:
        actor.on_message(_order(f"o{q}", Direction.LONG, q))
    impacts = [f.price - 100.25 for f in _fills(out)]
    # sqrt(2) = 1.414 is 5.66 ticks: the nearest tick is 1.5.
    assert impacts == [1.0, 1.5, 2.0, 3.0, 4.0, 5.0]


async def test_no_impact_before_any_volatility_and_none_in_a_still_market(capture):
    actor, out = await _venue(capture, **EXACT)
    actor.on_message(_tick(0, 100.0, 100.25))
    actor.on_message(_order("first", Direction.LONG, 25))
    actor.on_message(_tick(1, 100.0, 100.25))  # a sample, of zero variance
    actor.on_message(_order("still", Direction.SHORT, 25))
    assert [f.price for f in _fills(out)] == [100.25, 100.0]


async def test_an_order_beyond_the_displayed_depth_fills_partly_and_the_rest_is_cancelled(capture):
    params = {**EXACT, "registry": _registry(fee_per_contract=1.5)}
    actor, out = await _venue(capture, **params, depth_multiplier=2.0)
    for tick in _calm_market(size=5):
        actor.on_message(tick)
    actor.on_message(_order("big", Direction.LONG, 25))
    ack, fill = out.messages
    assert ack.quantity == 25
    assert (fill.quantity, fill.leaves_quantity) == (10, 0)  # 5 displayed x 2
    assert fill.price == 100.25 + 3.25  # sqrt(10) = 3.16 -> 13 ticks
    assert fill.fee == pytest.approx(10 * 1.5)
    assert actor.venue.stats.contracts_cancelled == 15


async def test_a_marketable_limit_fills_but_never_through_its_limit(capture):
    actor, out = await _traded(capture)
    actor.on_message(
        _order("lim-buy", Direction.LONG, 16, order_type=OrderType.LIMIT, limit_price=102.0)
    )
    actor.on_message(
        _order("lim-sell", Direction.SHORT, 1, order_type=OrderType.LIMIT, limit_price=99.5)
    )
    # Uncapped they would fill at 100.25 + 4 and 100 - 1.
    assert [f.price for f in _fills(out)] == [102.0, 99.5]


async def test_a_fok_fills_in_full_or_not_at_all(capture):
    actor, out = await _venue(capture, **EXACT)
    for tick in _calm_market(size=10):
        actor.on_message(tick)
    actor.on_message(_order("fok-10", Direction.LONG, 10, time_in_force=TimeInForce.FOK))
    actor.on_message(_order("fok-11", Direction.LONG, 11, time_in_force=TimeInForce.FOK))
    ack, fill, reject = out.messages
    assert (type(ack), fill.quantity) == (OrderAck, 10)
    assert (type(reject), reject.client_order_id) == (OrderReject, "fok-11")
    assert reject.reason == RejectReason.NO_LIQUIDITY and "FOK" in reject.detail


# --- rejects --------------------------------------------------------------------------


def _same_reply(a: object, b: object) -> bool:
    """Equal but for the envelope a publish stamps (seq, ts_ns; origin_ns when unset)."""
    envelope = {"seq": 0, "ts_ns": 0, "origin_ns": 0}
    return msgspec.structs.replace(a, **envelope) == msgspec.structs.replace(b, **envelope)


async def test_a_repeated_client_order_id_gets_the_original_replies_and_never_fills_twice(capture):
    actor, out = await _traded(capture)
    order = _order("intent-7-1", Direction.LONG, 3, origin_ns=77)
    actor.on_message(order)
    for tick in _calm_market(size=1):  # the market moves: a second execution would differ
        actor.on_message(msgspec.structs.replace(tick, ask=tick.ask + 5.0, bid=tick.bid + 5.0))
    actor.on_message(msgspec.structs.replace(order))  # re-sent after a sender restart
    ack, fill, ack_again, fill_again = out.messages
    assert type(ack) is OrderAck and type(fill) is Fill
    assert _same_reply(ack_again, ack) and _same_reply(fill_again, fill)
    assert (fill_again.fill_id, fill_again.price) == ("F-intent-7-1-1", 100.25 + 1.75)
    assert fill_again.origin_ns == 77
    assert fill_again.seq == 4  # published again, as new messages of the stream
    stats = actor.venue.stats
    assert (stats.fills, stats.contracts_filled, stats.repeats) == (1, 3, 1)


async def test_a_repeated_rejected_order_gets_the_same_reject(capture):
    actor, out = await _venue(capture, **EXACT)
    order = _order("early-1", Direction.LONG, 1)
    actor.on_message(order)  # no quote yet
    for tick in _calm_market():
        actor.on_message(tick)
    actor.on_message(msgspec.structs.replace(order))
    first, again = out.messages
    assert first.reason == RejectReason.NO_LIQUIDITY and _same_reply(again, first)
    assert actor.venue.stats.fills == 0


async def test_ids_are_remembered_within_the_dedup_capacity_only(capture):
    actor, out = await _traded(capture, dedup_capacity=2)
    for name in ("a", "b", "c", "a"):
        actor.on_message(_order(name, Direction.LONG, 1))
    assert [type(m) for m in out.messages] == [OrderAck, Fill] * 4


@pytest.mark.parametrize(
    ("order", "reason", "detail"),
    [
        (_order("x", Direction.LONG, 1, symbol="CL"), RejectReason.UNKNOWN_SYMBOL, ""),
        (_order("x", Direction.LONG, 1, symbol="NQ"), RejectReason.NO_LIQUIDITY, "no quote"),
        (_order("x", Direction.LONG, 0), RejectReason.INVALID_QUANTITY, "quantity 0"),
        (_order("x", Direction.SHORT, -2), RejectReason.INVALID_QUANTITY, "quantity -2"),
        (_order("x", Direction.FLAT, 1), RejectReason.INVALID_QUANTITY, "side FLAT"),
        (
            _order("x", Direction.LONG, 1, order_type=OrderType.STOP, stop_price=101.0),
            RejectReason.VENUE_ERROR,
            "STOP IOC not simulated",
        ),
        (
            _order(
                "x",
                Direction.LONG,
                1,
                order_type=OrderType.LIMIT,
                limit_price=99.0,
                time_in_force=TimeInForce.DAY,
            ),
            RejectReason.VENUE_ERROR,
            "LIMIT DAY not simulated",
        ),
        (
            _order("x", Direction.LONG, 1, order_type=OrderType.LIMIT),
            RejectReason.INVALID_PRICE,
            "nan",
        ),
        (
            _order("x", Direction.LONG, 1, order_type=OrderType.LIMIT, limit_price=100.1),
            RejectReason.INVALID_PRICE,
            "100.1",
        ),
        (
            _order("x", Direction.LONG, 1, order_type=OrderType.LIMIT, limit_price=100.0),
            RejectReason.NO_LIQUIDITY,
            "not marketable at 100.25",
        ),
        (
            _order("x", Direction.SHORT, 1, order_type=OrderType.LIMIT, limit_price=100.25),
            RejectReason.NO_LIQUIDITY,
            "not marketable at 100.0",
        ),
    ],
)
async def test_orders_that_cannot_trade_are_rejected_without_an_ack(capture, order, reason, detail):
    actor, out = await _traded(capture)  # ES has a book, NQ is traded but has no quote yet
    order.origin_ns = 4242
    actor.on_message(order)
    (reject,) = out.messages
    assert type(reject) is OrderReject
    assert (reject.reason, reject.client_order_id, reject.symbol) == (reason, "x", order.symbol)
    assert detail in reject.detail
    assert (reject.origin_ns, reject.event_ns) == (4242, T0 + 20 * NS)
    assert actor.venue.stats.rejects == {reason: 1}


async def test_nothing_displayed_at_the_touch_is_no_liquidity(capture):
    actor, out = await _venue(capture, **EXACT)
    actor.on_message(_tick(0, 100.0, 100.25, size=0))
    actor.on_message(_order("x", Direction.SHORT, 1))
    (reject,) = out.messages
    assert reject.reason == RejectReason.NO_LIQUIDITY and "nothing displayed" in reject.detail


async def test_a_cancel_is_always_answered_unknown_order(capture):
    actor, out = await _traded(capture)
    actor.on_message(_order("done", Direction.LONG, 1))
    actor.on_message(CancelRequest(client_order_id="done", symbol="ES", origin_ns=5))
    actor.on_message(CancelRequest(client_order_id="ghost", symbol="ES", origin_ns=6))
    late, unknown = out.messages[2:]
    assert (late.reason, late.client_order_id, late.origin_ns) == (
        RejectReason.UNKNOWN_ORDER,
        "done",
        5,
    )
    assert "already done" in late.detail
    assert (unknown.reason, unknown.detail, unknown.origin_ns) == (
        RejectReason.UNKNOWN_ORDER,
        "never seen",
        6,
    )


# --- the actor ------------------------------------------------------------------------


async def test_ticks_of_other_symbols_and_other_messages_are_ignored(capture):
    actor, out = await _venue(capture, **EXACT)
    actor.on_message(_tick(0, 50.0, 50.25, symbol="CL"))
    actor.on_message(Control(command=ControlCommand.HALT))
    assert actor.venue.books == {} and out.messages == []


async def test_the_receive_hook_sees_each_order_on_arrival(capture):
    received: list[tuple[str, int]] = []

    class Timed(VenueActor):
        def on_order_received(self, order: OrderRequest, received_ns: int) -> None:
            assert out.messages == []  # before the venue handles it
            received.append((order.client_order_id, received_ns - order.origin_ns))

    out = capture("venue", CODEC)
    actor = Timed(
        msgspec.convert(EXACT, ExchangeParams), actor_context("venue", {"reports": out.stream})
    )
    await actor.on_start()
    for tick in _calm_market():
        actor.on_message(tick)
    origin = time.monotonic_ns()
    actor.on_message(_order("timed", Direction.LONG, 1, origin_ns=origin))
    ((order_id, tick_to_order),) = received
    assert order_id == "timed" and 0 < tick_to_order < 10 * NS
    assert len(out.messages) == 2


def test_params_parse_strictly_from_config():
    params = VenueActor.parse_params({"impact_alpha": 0.2, "symbols": ["NQ"]})
    assert (params.impact_alpha, params.symbols, list(params.registry)) == (0.2, ("NQ",), ["NQ"])
    assert params.registry["NQ"].point_value == 20.0
    with pytest.raises(msgspec.ValidationError, match="unknown field `fee`"):
        VenueActor.parse_params({"fee": 1.0})
    with pytest.raises(msgspec.ValidationError):
        VenueActor.parse_params({"depth_multiplier": 0})


async def _restarted(capture, before: VenueActor, resent: list[object] = ()) -> tuple:
    """A new VenueActor with `before`'s saved state, as the kernel restores it (encoded and
    decoded), told of `resent` replies before its start, on a market of another price."""
    out = capture("venue", CODEC)
    after = VenueActor(before.params, actor_context("venue", {"reports": out.stream}))
    saved = msgspec.msgpack.encode(before.state_to_save())
    after.state = msgspec.msgpack.decode(saved, type=VenueActor.State)
    for msg in resent:
        after.on_resent(msg)
    await after.on_start()
    return after, out


async def test_a_restarted_venue_answers_a_repeat_with_the_original_fill(capture):
    first, out = await _traded(capture)
    first.on_message(_order("again-1", Direction.LONG, 2, origin_ns=5))
    second, out_after = await _restarted(capture, first)
    for tick in _calm_market(size=1):
        second.on_message(msgspec.structs.replace(tick, ask=tick.ask + 5.0, bid=tick.bid + 5.0))
    second.on_message(_order("again-1", Direction.LONG, 2, origin_ns=5))
    (fill_before,) = _fills(out)
    (fill_after,) = _fills(out_after)
    assert _same_reply(fill_after, fill_before)
    assert second.venue.stats.fills == 0 and second.venue.stats.repeats == 1


async def test_a_restarted_venue_keeps_its_book_and_volatility(capture):
    first, _ = await _traded(capture)
    second, out = await _restarted(capture, first)
    second.on_message(_order("after-restart", Direction.LONG, 4))
    (fill,) = _fills(out)
    assert fill.price == 100.25 + 2.0  # the ask it knew, plus sqrt(4): its sigma survived


async def test_replies_the_kernel_re_sent_join_the_ledger_before_the_replay(capture):
    first, out = await _traded(capture)
    committed, _ = await _restarted(capture, first)  # its state as of the last commit
    first.on_message(_order("late-1", Direction.SHORT, 9))  # handled after that commit
    ack, fill = out.messages
    second, out_after = await _restarted(capture, committed, resent=[ack, fill])
    second.on_message(_order("late-1", Direction.SHORT, 9))  # the kernel's replay of it
    replayed_ack, replayed_fill = out_after.messages
    assert _same_reply(replayed_ack, ack) and _same_reply(replayed_fill, fill)
    assert second.venue.stats.fills == 0


async def test_an_order_whose_ack_went_out_before_a_crash_keeps_that_ack(capture):
    # The predecessor published the ack and died before the fill: the replayed order gets
    # that same ack and, now, its fill.
    first, out = await _traded(capture)
    committed, _ = await _restarted(capture, first)
    first.on_message(_order("half-1", Direction.LONG, 1))
    ack, _ = out.messages
    second, out_after = await _restarted(capture, committed, resent=[ack])
    second.on_message(_order("half-1", Direction.LONG, 1))
    replayed_ack, fill = out_after.messages
    assert _same_reply(replayed_ack, ack) and type(fill) is Fill
    assert second.venue.stats.fills == 1
    assert [type(m) for m in second.venue.ledger.replies("half-1")] == [OrderAck, Fill]


async def test_orders_record_tick_to_order_order_path_and_tick_to_submit(capture):
    actor, _ = await _traded(capture)
    now = time.monotonic_ns()
    order = _order("timed-1", Direction.LONG, 1, origin_ns=now - 300_000)
    order.intent_ns = now - 100_000
    order.ts_ns = now - 50_000  # execution published it then
    actor.on_message(order)
    hists = read_histograms(actor.context.system)
    assert hists["venue.tick_to_order"].count == 1
    assert hists["venue.tick_to_order"].max_ns >= 300_000
    assert 100_000 <= hists["venue.order_path"].max_ns < hists["venue.tick_to_order"].max_ns
    assert hists["venue.tick_to_submit"].max_ns == 250_000
    assert hists["venue.tick_to_order.ES"].count == 1  # per symbol too
    assert hists["venue.tick_to_order.NQ"].count == 0


async def test_orders_outside_the_instruments_session_are_rejected_market_closed(capture):
    """ES trades 09:30-16:00 New York: 14:30-21:00 UTC in January, 13:30-20:00 in July."""
    actor, out = await _venue(capture, **EXACT)
    july = 1_783_344_600 * NS  # Monday 6 July 2026 13:30 UTC, 09:30 in New York
    for at, expect in (
        (T0 - NS, RejectReason.MARKET_CLOSED),  # 09:29:59 on 5 January
        (T0 + 6 * 3600 * NS, None),  # 15:30
        (T0 + 23_400 * NS, RejectReason.MARKET_CLOSED),  # 16:00: the close is outside
        (july - NS, RejectReason.MARKET_CLOSED),
        (july, None),
        (july + 5 * 86_400 * NS, RejectReason.MARKET_CLOSED),  # Saturday
    ):
        actor.on_message(msgspec.structs.replace(_tick(0, 100.0, 100.25), event_ns=at))
        before = len(out.messages)
        actor.on_message(_order(f"at-{at}", Direction.LONG, 1))
        reply = out.messages[before]
        if expect is None:
            assert type(reply) is OrderAck, reply
        else:
            assert (type(reply), reply.reason) == (OrderReject, expect), at
            assert reply.detail == "09:30-16:00 America/New_York"


async def test_a_limit_price_outside_the_instruments_band_is_rejected(capture):
    """ES's band is 5% (the registry's default) around the quote's mid, 100.125."""
    actor, out = await _venue(capture, **EXACT)
    for tick in _calm_market():
        actor.on_message(tick)
    far = _order("far", Direction.LONG, 1)
    far.order_type, far.limit_price = OrderType.LIMIT, 106.0
    near = _order("near", Direction.LONG, 1)
    near.order_type, near.limit_price = OrderType.LIMIT, 105.0
    actor.on_message(far)
    actor.on_message(near)
    reject, ack, fill = out.messages
    assert (reject.client_order_id, reject.reason) == ("far", RejectReason.PRICE_BAND)
    assert "outside 5.00%" in reject.detail
    assert (ack.client_order_id, fill.client_order_id) == ("near", "near")


# --- the ledger -----------------------------------------------------------------------


def _reply_fill(order_id: str, leaves: int = 0) -> Fill:
    return Fill(
        fill_id=f"F-{order_id}-1",
        client_order_id=order_id,
        venue_order_id=f"V-{order_id}",
        symbol="ES",
        side=Direction.LONG,
        quantity=1,
        price=100.25,
        leaves_quantity=leaves,
        fee=2.25,
        event_ns=T0,
    )


def test_the_ledger_keeps_the_newest_outcomes_and_saves_the_newest_of_them():
    ledger = OrderLedger(3)
    for name in ("a", "b", "c", "d"):
        ledger.record(name, [_reply_fill(name)])
    assert "a" not in ledger and len(ledger) == 3
    assert ledger.replies("b") == [_reply_fill("b")]
    ledger.record("b", [_reply_fill("b")])  # recorded again: now the newest
    assert [outcome.client_order_id for outcome in ledger.newest(2)] == ["d", "b"]
    again = OrderLedger(3, ledger.newest(3))
    assert [again.replies(name) for name in ("c", "d", "b")] == [
        [_reply_fill(name)] for name in ("c", "d", "b")
    ]
    with pytest.raises(ValueError, match="at least 1"):
        OrderLedger(0)


def test_an_outcome_is_final_with_a_reject_or_a_fill_that_leaves_nothing():
    ack = OrderAck(
        client_order_id="x", venue_order_id="V-x", symbol="ES", side=1, quantity=1, event_ns=T0
    )
    reject = OrderReject(
        client_order_id="x", symbol="ES", reason=RejectReason.NO_LIQUIDITY, event_ns=T0
    )
    assert [is_final(r) for r in ([], [ack], [ack, _reply_fill("x", leaves=1)])] == [False] * 3
    assert is_final([reject]) and is_final([ack, _reply_fill("x")])
