"""ExecutionActor, IMMEDIATE strategy: each approved risk verdict becomes one market IOC order.

Idempotency: the client order id is a function of the intent id alone (`client_order_id`),
so a verdict re-delivered to this incarnation is recognised and not sent again, and one
re-delivered to a restarted incarnation (which has forgotten its orders) is sent again with
the same id, which the venue rejects as DUPLICATE_ORDER_ID instead of filling it twice. That
reject then ends the new incarnation's copy of the order as REJECTED (reason kept on the
order); the fills of the original went to the previous incarnation and to risk.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

from actors.execution.orders import Order, Outcome
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
from kernel.actor import Actor

VenueReport = TypeVar("VenueReport", OrderAck, OrderReject, Fill)


class ExecutionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stream: str = "orders"
    """Where the OrderRequests go (the venue consumes it)."""
    retain_done: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    """Finished orders kept, oldest dropped first, to recognise late or re-delivered replies
    and verdicts; bounded because the actor runs for days."""


@dataclass(slots=True)
class ExecutionCounts:
    """What the actor did and refused, for health reporting and tests."""

    orders: int = 0
    """OrderRequests published."""
    denied: int = 0
    """Verdicts the risk gate denied: nothing to do."""
    ignored: int = 0
    """Approved verdicts with nothing to send (no quantity, no direction or no intent id)."""
    redelivered: int = 0
    """Approved verdicts whose order this incarnation already sent."""
    duplicate_fills: int = 0
    invalid_transitions: int = 0
    unknown_orders: int = 0
    """Venue replies for an order this incarnation does not know (or no longer retains)."""


def client_order_id(intent_id: str) -> str:
    """The id of the single order an IMMEDIATE intent becomes (slice 1 of 1)."""
    return f"{intent_id}-1"


class ExecutionActor(Actor):
    """Consumes RiskVerdict, OrderAck, OrderReject and Fill; publishes OrderRequest on
    `Params.stream`. Other message types are ignored. Crash-only: a restart starts with
    no orders (see the module docstring for why that is safe)."""

    Params = ExecutionParams
    params: ExecutionParams

    async def on_start(self) -> None:
        self._out = self.output(self.params.stream)
        self.orders: dict[str, Order] = {}
        self.counts = ExecutionCounts()
        self._done: deque[str] = deque()

    def on_message(self, msg: Any) -> None:
        kind = type(msg)
        if kind is RiskVerdict:
            self._on_verdict(msg)
        elif kind is Fill:
            self._on_report(msg, Order.apply_fill)
        elif kind is OrderAck:
            self._on_report(msg, Order.apply_ack)
        elif kind is OrderReject and self._on_report(msg, Order.apply_reject):
            self.log.info(
                "order %s rejected by the venue: %s %s",
                msg.client_order_id,
                RejectReason(msg.reason).name,
                msg.detail,
            )

    def _on_verdict(self, verdict: RiskVerdict) -> None:
        counts = self.counts
        if not verdict.approved:
            counts.denied += 1
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
        self._out.publish(
            OrderRequest(
                client_order_id=order_id,
                symbol=verdict.symbol,
                side=verdict.direction,
                quantity=verdict.quantity,
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                strategy=ExecStrategy.IMMEDIATE,
                intent_id=verdict.intent_id,
                origin_ns=verdict.origin_ns,
                intent_ns=verdict.intent_ns,
            )
        )
        counts.orders += 1
        self.orders[order_id] = Order(
            client_order_id=order_id,
            intent_id=verdict.intent_id,
            symbol=verdict.symbol,
            side=verdict.direction,
            quantity=verdict.quantity,
        )

    def _on_report(
        self, report: VenueReport, apply: Callable[[Order, VenueReport], Outcome]
    ) -> bool:
        """Apply a venue reply to its order; True when it changed the order."""
        order = self.orders.get(report.client_order_id)
        if order is None:
            self.counts.unknown_orders += 1
            self.log.warning(
                "%s for unknown order %r ignored", type(report).__name__, report.client_order_id
            )
            return False
        state = order.state
        outcome = apply(order, report)
        if outcome is Outcome.DUPLICATE:
            self.counts.duplicate_fills += 1
            self.log.info("a fill of order %s re-delivered: ignored", order.client_order_id)
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
        if order.done:
            self._retire(order)
        return True

    def _retire(self, order: Order) -> None:
        """Keep a finished order for late replies, within `retain_done`."""
        self._done.append(order.client_order_id)
        if len(self._done) > self.params.retain_done:
            del self.orders[self._done.popleft()]
