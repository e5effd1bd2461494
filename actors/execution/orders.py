"""The order state machine: what the venue's acks, rejects and fills do to one order.

States: NEW (sent) -> ACKED -> PARTIALLY_FILLED -> FILLED, or REJECTED, or CANCELLED (the
venue ended the order with part of it unfilled: the remainder of an IOC). FILLED, REJECTED
and CANCELLED are terminal. Every allowed move is a row of `TRANSITIONS`; anything else
(an ack after a fill, a fill after a reject, a second ack, more filled than ordered) is
refused: the order is left as it was and the caller is told, so it can count and log it.

A fill is allowed straight from NEW: it implies the ack, and a real venue may deliver its
acks and fills on different sessions. Which fill event a Fill is follows from the quantities:
contracts still working (`leaves_quantity` > 0) -> PARTIAL_FILL; none, and the order is
complete -> FULL_FILL; none, and it is not -> LAST_FILL (the rest was cancelled).
Fills are idempotent on `fill_id`: a re-delivered fill is recognised and not applied again.
"""

import math
from enum import Enum, IntEnum

import msgspec

from actors.common.fills import fill_defect
from actors.messages import Direction, Fill, OrderAck, OrderReject, RejectReason


class OrderState(IntEnum):
    NEW = 0
    ACKED = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    REJECTED = 4
    CANCELLED = 5


class OrderEvent(IntEnum):
    ACK = 0
    PARTIAL_FILL = 1
    FULL_FILL = 2
    LAST_FILL = 3
    """The order's last fill, short of its quantity: the remainder was cancelled."""
    REJECT = 4


class Outcome(Enum):
    """What applying a venue message to an order did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """A fill already applied (same fill_id), or the ack of an order the same venue order
    already acked (the venue answering a re-sent order again): ignored."""
    INVALID = "invalid"
    """Not allowed in the order's state (or inconsistent quantities): ignored."""


TRANSITIONS: dict[tuple[OrderState, OrderEvent], OrderState] = {
    (OrderState.NEW, OrderEvent.ACK): OrderState.ACKED,
    (OrderState.NEW, OrderEvent.REJECT): OrderState.REJECTED,
    (OrderState.NEW, OrderEvent.PARTIAL_FILL): OrderState.PARTIALLY_FILLED,
    (OrderState.NEW, OrderEvent.FULL_FILL): OrderState.FILLED,
    (OrderState.NEW, OrderEvent.LAST_FILL): OrderState.CANCELLED,
    (OrderState.ACKED, OrderEvent.PARTIAL_FILL): OrderState.PARTIALLY_FILLED,
    (OrderState.ACKED, OrderEvent.FULL_FILL): OrderState.FILLED,
    (OrderState.ACKED, OrderEvent.LAST_FILL): OrderState.CANCELLED,
    (OrderState.PARTIALLY_FILLED, OrderEvent.PARTIAL_FILL): OrderState.PARTIALLY_FILLED,
    (OrderState.PARTIALLY_FILLED, OrderEvent.FULL_FILL): OrderState.FILLED,
    (OrderState.PARTIALLY_FILLED, OrderEvent.LAST_FILL): OrderState.CANCELLED,
}
"""(state, event) -> next state; a pair not listed is an invalid transition."""

TERMINAL = frozenset({OrderState.FILLED, OrderState.REJECTED, OrderState.CANCELLED})


class Order(msgspec.Struct, kw_only=True):
    """One order as execution knows it: what was asked, and what the venue has said.
    A msgspec Struct: the order table is execution's durable state."""

    client_order_id: str
    intent_id: str
    symbol: str
    side: Direction
    quantity: int
    state: OrderState = OrderState.NEW
    venue_order_id: str = ""
    filled_quantity: int = 0
    avg_price: float = math.nan
    """Volume-weighted price of the fills; NaN until the first one."""
    fees: float = 0.0
    reject_reason: RejectReason | None = None
    fill_ids: set[str] = msgspec.field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def apply_ack(self, ack: OrderAck) -> Outcome:
        if self.state is not OrderState.NEW and ack.venue_order_id == self.venue_order_id:
            return Outcome.DUPLICATE  # the venue's answer to a re-sent order, again
        if not self._move(OrderEvent.ACK):
            return Outcome.INVALID
        self.venue_order_id = ack.venue_order_id
        return Outcome.APPLIED

    def apply_reject(self, reject: OrderReject) -> Outcome:
        if not self._move(OrderEvent.REJECT):
            return Outcome.INVALID
        self.reject_reason = reject.reason
        return Outcome.APPLIED

    def apply_fill(self, fill: Fill) -> Outcome:
        if fill.fill_id in self.fill_ids:
            return Outcome.DUPLICATE
        filled = self.filled_quantity + fill.quantity
        leaves = fill.leaves_quantity
        if fill_defect(fill) is not None or leaves < 0 or filled + leaves > self.quantity:
            return Outcome.INVALID
        if leaves > 0:
            event = OrderEvent.PARTIAL_FILL
        else:
            event = OrderEvent.FULL_FILL if filled == self.quantity else OrderEvent.LAST_FILL
        if not self._move(event):
            return Outcome.INVALID
        previous = 0.0 if self.filled_quantity == 0 else self.avg_price * self.filled_quantity
        self.avg_price = (previous + fill.price * fill.quantity) / filled
        self.filled_quantity = filled
        self.fees += fill.fee
        self.fill_ids.add(fill.fill_id)
        if not self.venue_order_id:
            self.venue_order_id = fill.venue_order_id
        return Outcome.APPLIED

    def _move(self, event: OrderEvent) -> bool:
        following = TRANSITIONS.get((self.state, event))
        if following is None:
            return False
        self.state = following
        return True
