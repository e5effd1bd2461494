"""ExecutionActor, IMMEDIATE strategy: each approved risk verdict becomes one market IOC order.

Idempotency: the client order id is a function of the intent id alone (`client_order_id`),
and the order table is the actor's durable state, committed with the input positions it
reflects. A restarted actor knows every order it sent (so the venue's late replies find
their order) and the kernel drops verdicts it already handled; a verdict that carries an
intent already sent is recognised by its order id and not sent again.

Reconciliation at the start of a new run: the rings are new, so a reply in flight when the
previous run stopped is gone. Every working order (sent, not finished) is sent again under
its own id: the venue, idempotent by client order id, answers with the outcome it gave the
first time (or executes it, if the order never reached it), and the order table catches up.
Its positions are then compared with the venue's account and the risk book; trading is
held meanwhile unless they agree at once with nothing re-sent (actors/reconcile/books.py).
"""

from collections import deque
from collections.abc import Callable
from typing import TypeVar

import msgspec

from actors.common.instruments import InstrumentParams, ServesInstruments
from actors.common.positions import Position, PositionState, book_fill
from actors.common.recent import SavedTail
from actors.execution.orders import Order, OrderState, Outcome
from actors.messages import (
    Direction,
    ExecStrategy,
    Fill,
    OrderAck,
    OrderReject,
    OrderRequest,
    OrderType,
    RejectReason,
    RiskVerdict,
    TimeInForce,
)
from actors.reconcile.books import (
    Mismatch,
    StartReconciliation,
    must_reconcile,
    reconciliation_failed,
)
from actors.risk.killswitch import (
    KillSwitch,
    reduces_exposure,
    restrict_to_reducing,
    restriction_by,
)
from config.types import Count, Positive
from kernel.actor import Actor, Port

VenueReport = TypeVar("VenueReport", OrderAck, OrderReject, Fill)
RECONCILE_TIMER = "reconcile"
RECONCILE_POLL_S = 0.1
RESTRICTION_TIMER = "restriction"
RESTRICTION_POLL_S = 1.0


class ExecutionParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    retain_done: Count = 256
    """Finished orders kept, oldest dropped first, to recognise late or re-delivered replies
    and verdicts; bounded because the actor runs for days. Saved with every commit as
    chunks encoded once (actors/common/recent.py), so their number costs a commit a copy of
    bytes, not an encoding of each order."""
    reconcile_with: dict[str, str] = msgspec.field(
        default_factory=lambda: {"venue": "venue", "risk": "risk"}
    )
    """At the start of a new run, `positions` are compared with these actors' committed
    ones (the venue's account, the risk book; source -> actor name, {} to skip)."""
    reconcile_timeout_s: Positive = 5.0
    """How long they may disagree while the re-sent orders' answers are booked, before the
    difference counts: trading REDUCING, health and log say why."""


_SIDE_NAMES = {int(direction): direction.name for direction in Direction}
"""Looked up on the order path: `Direction(side).name` costs ~0.8 us, this 0.1 us."""


class ExecutionCounts(msgspec.Struct, kw_only=True):
    """What the actor did and refused, for health reporting and tests."""

    orders: int = 0
    """OrderRequests published."""
    denied: int = 0
    """Verdicts the risk gate denied: nothing to do."""
    ignored: int = 0
    """Approved verdicts with nothing to send (no quantity, no direction or no intent id)."""
    redelivered: int = 0
    """Approved verdicts whose order this incarnation already sent."""
    resent: int = 0
    """Working orders sent again at the start of a new run (reconciliation)."""
    duplicate_fills: int = 0
    duplicate_acks: int = 0
    invalid_transitions: int = 0
    unknown_orders: int = 0
    """Venue replies for an order this incarnation does not know (or no longer retains)."""
    reconciliation_mismatches: int = 0
    """Fields (quantity, average price, realized P&L per symbol) on which the books still
    disagreed at the end of a start's reconciliation."""
    by_side: dict[str, int] = {}
    """`<event>:<side>` -> count, event one of order, ack, fill, filled_contracts,
    cancelled (an order ended with its IOC rest cancelled): exact across restarts, being
    committed with the inputs they count (the API's /metrics reads them)."""
    rejects: dict[str, int] = {}
    """Reject reason name -> venue rejects applied to an order."""
    kill_switch_blocked: int = 0
    """Approved verdicts not sent because the kill switch was engaged (approved before it
    was, or only reducing ones let through and this one was not)."""

    def count(self, event: str, side: int, amount: int = 1) -> None:
        key = f"{event}:{_SIDE_NAMES[side]}"
        self.by_side[key] = self.by_side.get(key, 0) + amount


def client_order_id(intent_id: str) -> str:
    """The id of the single order an IMMEDIATE intent becomes (slice 1 of 1)."""
    return f"{intent_id}-1"


class ExecutionState(msgspec.Struct, kw_only=True):
    """The durable state: every order sent and not yet dropped, and the counts."""

    orders: dict[str, Order] = {}
    """The working orders (records written before `retired` existed: every order)."""
    retired: list[msgspec.Raw] = []
    """The newest finished orders, oldest first (`SavedTail.saved`)."""
    counts: ExecutionCounts = msgspec.field(default_factory=ExecutionCounts)
    positions: list[PositionState] = []
    """Per symbol, the position its fills add up to (kept when orders retire), for
    reconciliation with the risk book and the venue's account."""


class ExecutionActor(ServesInstruments, Actor):
    """Consumes RiskVerdict, OrderAck, OrderReject and Fill; publishes OrderRequests on
    its `orders` port. The order table survives restarts (durable state)."""

    Params = ExecutionParams
    params: ExecutionParams
    State = ExecutionState
    state: ExecutionState

    async def on_start(self) -> None:
        self._out = self.output("orders")
        self._point_values = self.params.point_values()
        state = self.state
        self.orders: dict[str, Order] = {}
        """Every order known: the working ones and the newest `retain_done` finished."""
        self._working: dict[str, Order] = {}
        self._done: deque[str] = deque()
        self._retired: SavedTail[Order] = SavedTail(self.params.retain_done)
        for order in (*SavedTail.load(state.retired, Order), *state.orders.values()):
            self._add(order)
        self.counts = state.counts
        self.positions = {saved.symbol: Position.from_state(saved) for saved in state.positions}
        self._switch = KillSwitch.open(self.context.system)
        restricted = restriction_by(self._switch, self.name)
        if restricted is not None:
            self._show_restriction(restricted)
        resend: list[Order] = []
        if self.orders:
            self.log.info(
                "order table restored: %d orders, %d working", len(self.orders), len(self._working)
            )
            if self.context.new_run:
                resend = list(self._working.values())
        self._reconciliation: StartReconciliation | None = None
        if must_reconcile(self, self.params.reconcile_with):
            self._reconciliation = StartReconciliation(
                self, "execution", self.params.reconcile_with, self.params.reconcile_timeout_s
            )
            verdict = self._reconciliation.begin(self._own_positions(), settled=not resend)
            if verdict is None:
                self.set_timer(RECONCILE_TIMER, RECONCILE_POLL_S)
            else:
                self._conclude(verdict)
        for order in resend:
            self._send(order)
        self.counts.resent += len(resend)

    def on_timer(self, name: str) -> None:
        if name == RECONCILE_TIMER:
            self._reconcile()
        elif name == RESTRICTION_TIMER and restriction_by(self._switch, self.name) is None:
            self.report_problem(None)  # an operator has looked
            self.cancel_timer(RESTRICTION_TIMER)

    async def on_stop(self) -> None:
        self._switch.close()

    def _show_restriction(self, reason: str) -> None:
        """Trading REDUCING because of this actor: its health row says why for as long
        as it lasts (after a restart too)."""
        self.report_problem(reason)
        self.set_timer(RESTRICTION_TIMER, RESTRICTION_POLL_S)

    def _own_positions(self) -> dict[str, PositionState]:
        return {symbol: held.state() for symbol, held in self.positions.items()}

    def _reconcile(self) -> None:
        """Its positions against the venue's account and the risk book (module docstring of
        actors/reconcile); a lasting difference: only reducing orders pass until an
        operator has looked."""
        assert self._reconciliation is not None
        mismatches = self._reconciliation.check(self._own_positions())
        if mismatches is not None:
            self.cancel_timer(RECONCILE_TIMER)
            self._conclude(mismatches)

    def _conclude(self, mismatches: list[Mismatch]) -> None:
        if mismatches:
            self.counts.reconciliation_mismatches += len(mismatches)
            self._show_restriction(reconciliation_failed(self, mismatches))
        else:
            self.log.info(
                "reconciled with %s: positions agree", ", ".join(self.params.reconcile_with)
            )

    def state_to_save(self) -> ExecutionState:
        state = self.state
        state.orders = self._working
        state.retired = self._retired.saved()
        state.positions = [held.state() for held in self.positions.values()]
        return state

    def on_fill(self, fill: Fill) -> None:
        self._on_report(fill, Order.apply_fill)

    def on_ack(self, ack: OrderAck) -> None:
        self._on_report(ack, Order.apply_ack)

    def on_reject(self, reject: OrderReject) -> None:
        if self._on_report(reject, Order.apply_reject):
            self.log.info(
                "order %s rejected by the venue: %s %s",
                reject.client_order_id,
                RejectReason(reject.reason).name,
                reject.detail,
            )

    def on_verdict(self, verdict: RiskVerdict) -> None:
        counts = self.counts
        if not verdict.approved:
            counts.denied += 1
            return
        if verdict.symbol not in self._point_values:
            # Risk approved an instrument this actor does not trade (its `symbols` are
            # narrower than risk's): no order it could book.
            counts.ignored += 1
            self.log.warning(
                "approved verdict for intent %r is for %r, not an instrument traded here",
                verdict.intent_id,
                verdict.symbol,
            )
            return
        if verdict.quantity <= 0 or verdict.direction == Direction.FLAT or not verdict.intent_id:
            counts.ignored += 1
            self.log.warning(
                "approved verdict for intent %r has nothing to send: %s x %d",
                verdict.intent_id,
                Direction(verdict.direction).name,
                verdict.quantity,
            )
            return
        order_id = client_order_id(verdict.intent_id)
        if order_id in self.orders:
            counts.redelivered += 1
            self.log.info("verdict for intent %r re-delivered: already sent", verdict.intent_id)
            return
        if self._blocked(verdict):
            counts.kill_switch_blocked += 1
            self.log.warning(
                "verdict for intent %r not sent: kill switch engaged (%s)",
                verdict.intent_id,
                self._switch.reason,
            )
            return
        order = Order(
            client_order_id=order_id,
            intent_id=verdict.intent_id,
            symbol=verdict.symbol,
            side=verdict.direction,
            quantity=verdict.quantity,
        )
        self._send(order, verdict.origin_ns, verdict.intent_ns)
        counts.orders += 1
        counts.count("order", order.side)
        self._add(order)

    def _blocked(self, verdict: RiskVerdict) -> bool:
        """Whether the kill switch stops this order here: engaged, and the order is not one
        that only reduces this actor's position while reducing orders are let through."""
        switch = self._switch
        if not switch.engaged:
            return False
        held = self.positions.get(verdict.symbol)
        position = held.quantity if held is not None else 0
        reducing = reduces_exposure(position, int(verdict.direction), verdict.quantity)
        return not (switch.reducing_allowed and reducing)

    def _send(self, order: Order, origin_ns: int = 0, intent_ns: int = 0) -> None:
        """Publish the request of `order` (a market IOC: the IMMEDIATE strategy)."""
        self._out.publish(
            OrderRequest(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                strategy=ExecStrategy.IMMEDIATE,
                intent_id=order.intent_id,
                origin_ns=origin_ns,
                intent_ns=intent_ns,
            )
        )

    def _on_report(
        self, report: VenueReport, apply: Callable[[Order, VenueReport], Outcome]
    ) -> bool:
        """Apply a venue reply to its order; True when it changed the order."""
        order = self.orders.get(report.client_order_id)
        if order is None:
            self.counts.unknown_orders += 1
            self._reduce(f"{type(report).__name__} for unknown order {report.client_order_id!r}")
            return False
        state = order.state
        outcome = apply(order, report)
        if outcome is Outcome.DUPLICATE:
            if type(report) is Fill:
                self.counts.duplicate_fills += 1
            else:
                self.counts.duplicate_acks += 1
            self.log.info(
                "%s of order %s re-delivered: ignored",
                type(report).__name__,
                order.client_order_id,
            )
            return False
        if outcome is Outcome.INVALID:
            self.counts.invalid_transitions += 1
            self.log.warning(
                "%s invalid for order %s in state %s: ignored",
                type(report).__name__,
                order.client_order_id,
                state.name,
            )
            return False
        self._record(order, report)
        if order.done:
            self._retire(order)
        return True

    def _record(self, order: Order, report: VenueReport) -> None:
        """A reply that changed its order: counted, and a fill booked into `positions`."""
        counts = self.counts
        if type(report) is OrderAck:
            counts.count("ack", order.side)
        elif type(report) is Fill:
            book_fill(
                self.positions,
                report.symbol,
                order.side,
                report.quantity,
                report.price,
                report.fee,
                self._point_values[report.symbol],
            )
            counts.count("fill", order.side)
            counts.count("filled_contracts", order.side, report.quantity)
            if order.state is OrderState.CANCELLED:
                counts.count("cancelled", order.side)
        else:
            reason = RejectReason(report.reason).name
            counts.rejects[reason] = counts.rejects.get(reason, 0) + 1

    def _reduce(self, reason: str) -> None:
        """The venue speaks of an order this table does not know: what is held may differ
        from what execution believes, so only exposure-reducing orders pass (REDUCING)
        until an operator has looked. A HALTED state stays HALTED."""
        if restrict_to_reducing(self.context.system, self.name, reason):
            self._show_restriction(reason)
        self.log.warning("%s: ignored, trading REDUCING", reason)

    def _add(self, order: Order) -> None:
        self.orders[order.client_order_id] = order
        if order.done:
            self._retire(order)
        else:
            self._working[order.client_order_id] = order

    def _retire(self, order: Order) -> None:
        """Keep a finished order for late replies, within `retain_done`."""
        order_id = order.client_order_id
        self._working.pop(order_id, None)
        self._retired.append(order)
        self._done.append(order_id)
        if len(self._done) > self.params.retain_done:
            del self.orders[self._done.popleft()]

    inputs = {RiskVerdict: on_verdict, Fill: on_fill, OrderAck: on_ack, OrderReject: on_reject}
    outputs = {"orders": Port(OrderRequest)}
