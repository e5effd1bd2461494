"""SimulatedVenue: a deterministic exchange that fills immediate orders against the feed's book.

What it does with an `OrderRequest`, in this order:

1. Duplicate `client_order_id` (among the last `dedup_capacity` ids) -> OrderReject
   DUPLICATE_ORDER_ID, nothing else: an order re-sent after a producer restart never fills
   twice. Every id that reaches the venue is remembered, rejected or not.
2. Validation -> OrderReject without an ack: symbol not configured (UNKNOWN_SYMBOL); quantity
   <= 0 or side FLAT (INVALID_QUANTITY); an order that could rest on the book (VENUE_ERROR:
   only MARKET or LIMIT with IOC or FOK are simulated, so no order ever rests here); a limit
   price that is not finite, positive and on the tick grid (INVALID_PRICE).
3. Liquidity -> OrderReject NO_LIQUIDITY without an ack: no quote seen yet for the symbol,
   nothing displayed at the touch, a limit order that is not marketable at the touch (an
   IOC that cannot fill is rejected rather than acked and silently expired, so the sender
   always learns the outcome from one terminal message), or a FOK that cannot fill in full.
4. Otherwise OrderAck, then exactly one Fill, taker, at one price:
   - quantity: min(order quantity, floor(displayed size at the touch * depth_multiplier));
     the IOC remainder is cancelled, so the Fill always has `leaves_quantity` 0 and a fill
     quantity below the ack's quantity is how the cancelled remainder is reported;
   - price: the touch (buy at the ask, sell at the bid: the spread is crossed) moved against
     the order by the square-root impact term
     impact = impact_alpha * sigma * sqrt(filled / adv_contracts) points, rounded to the
     nearest tick, sigma the symbol's daily volatility in points (see `SymbolBook`; no impact
     until it is known); a limit order never fills through its limit, so the impact is capped
     there. The impact is temporary: the book stays the feed's, orders do not move it;
   - fee: fee_per_contract * filled.

A CancelRequest is always answered OrderReject UNKNOWN_ORDER: orders never rest, so there is
nothing to cancel (the detail says whether the id was seen). Every reply copies the request's
`origin_ns`, so a fill can be traced back to the tick that started its chain, and carries the
market time the caller passes in. Ids come from counters (V1, V2... and F1, F2...), so a run
is reproducible.
"""

import math
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from actors.common.recent import RecentIds
from actors.messages import (
    CancelRequest,
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
from actors.venue.book import SymbolBook
from config.types import NonNegative, Positive

VenueReply = OrderAck | OrderReject | Fill

IMMEDIATE_TIME_IN_FORCE = frozenset({TimeInForce.IOC, TimeInForce.FOK})
SIMULATED_ORDER_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT})
GRID_TOLERANCE = 1e-9
"""How far (in ticks) a limit price may sit off the tick grid and still count as on it."""


class SymbolSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The contract of one tradable symbol."""

    tick_size: Positive = 0.25
    point_value: Positive = 50.0
    """Currency per point per contract (ES: $50): prices the impact cost in `VenueStats`."""
    adv_contracts: Positive = 100_000.0
    """Average daily volume in contracts, the V of the square-root law (the synthetic feed's
    default market trades about 23,400 ticks of ~4 contracts a day)."""


class ExchangeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The simulated exchange's contracts, costs and models (see the module docstring)."""

    symbols: dict[str, SymbolSpec] = msgspec.field(default_factory=lambda: {"ES": SymbolSpec()})
    """The tradable symbols; ticks and orders for any other symbol are not traded."""
    fee_per_contract: NonNegative = 2.25
    """Exchange + clearing fee per contract per side, in currency."""
    impact_alpha: NonNegative = 0.1
    """The square-root law's coefficient (the documents' appendix uses about 0.08)."""
    depth_multiplier: Positive = 1.0
    """Fillable size = displayed size at the touch times this (1 = the touch only; above 1
    stands for the levels behind the touch, which the feed does not show)."""
    sigma_decay: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.99
    """EWMA weight of the previous volatility estimate at each new sample."""
    session_s: Positive = 23_400.0
    """Trading seconds per day: scales the per-second variance rate to a daily sigma."""
    max_gap_s: Positive = 60.0
    """Quotes further apart in market time than this are not a volatility sample."""
    dedup_capacity: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    """How many recent client order ids are remembered to reject duplicates."""


@dataclass(slots=True)
class VenueStats:
    """Running totals, for health reporting and tests."""

    orders: int = 0
    fills: int = 0
    contracts_filled: int = 0
    contracts_cancelled: int = 0
    """IOC remainders: ordered but not fillable at the touch."""
    fees: float = 0.0
    impact_cost: float = 0.0
    """Currency paid to the impact term beyond the touch: impact x filled x point value."""
    rejects: dict[RejectReason, int] = field(default_factory=dict)
    bad_ticks: int = 0
    """Ticks of a traded symbol whose quote was unusable and left the book unchanged."""


class SimulatedVenue:
    """Books from ticks, replies to orders; pure and synchronous (the actor does the I/O)."""

    def __init__(self, params: ExchangeParams) -> None:
        self.params = params
        self.books: dict[str, SymbolBook] = {}
        self.stats = VenueStats()
        self._seen = RecentIds(params.dedup_capacity)

    def on_tick(self, tick: Tick) -> None:
        """Update the symbol's top of book (ticks of symbols not traded here are ignored)."""
        book = self.books.get(tick.symbol)
        if book is None:
            if tick.symbol not in self.params.symbols:
                return
            p = self.params
            book = self.books[tick.symbol] = SymbolBook(p.sigma_decay, p.session_s, p.max_gap_s)
        if not book.on_tick(tick):
            self.stats.bad_ticks += 1

    def on_order(self, order: OrderRequest, now_event_ns: int) -> list[VenueReply]:
        """The replies to `order` at market time `now_event_ns`: [reject] or [ack, fill]."""
        self.stats.orders += 1
        if not self._seen.add(order.client_order_id):
            return [self._reject(order, RejectReason.DUPLICATE_ORDER_ID, now_event_ns, "")]
        spec = self.params.symbols.get(order.symbol)
        if spec is None:
            return [self._reject(order, RejectReason.UNKNOWN_SYMBOL, now_event_ns, "")]
        problem = _invalid(order, spec)
        if problem is not None:
            reason, detail = problem
            return [self._reject(order, reason, now_event_ns, detail)]
        book = self.books.get(order.symbol)
        if book is None or not book.has_quote:
            return [self._no_liquidity(order, now_event_ns, "no quote yet")]
        buy = order.side == Direction.LONG
        touch, displayed = (book.ask, book.ask_size) if buy else (book.bid, book.bid_size)
        limited = order.order_type == OrderType.LIMIT
        if limited and (touch > order.limit_price if buy else touch < order.limit_price):
            return [self._no_liquidity(order, now_event_ns, f"limit not marketable at {touch}")]
        quantity = min(order.quantity, math.floor(displayed * self.params.depth_multiplier))
        if quantity <= 0:
            return [self._no_liquidity(order, now_event_ns, "nothing displayed at the touch")]
        if order.time_in_force == TimeInForce.FOK and quantity < order.quantity:
            return [self._no_liquidity(order, now_event_ns, f"FOK: only {quantity} fillable")]
        impact = self._impact(book, spec, quantity)
        price = touch + impact if buy else touch - impact
        if limited:
            price = min(price, order.limit_price) if buy else max(price, order.limit_price)
        return self._execute(order, spec, quantity, price, touch, now_event_ns)

    def on_cancel(self, cancel: CancelRequest, now_event_ns: int) -> list[VenueReply]:
        """Nothing ever rests here, so every cancel is too late or for an unknown order."""
        known = cancel.client_order_id in self._seen
        detail = "already done: orders here never rest" if known else "never seen"
        self._count_reject(RejectReason.UNKNOWN_ORDER)
        reject = OrderReject(
            client_order_id=cancel.client_order_id,
            symbol=cancel.symbol,
            reason=RejectReason.UNKNOWN_ORDER,
            event_ns=now_event_ns,
            detail=detail,
            origin_ns=cancel.origin_ns,
        )
        return [reject]

    def _impact(self, book: SymbolBook, spec: SymbolSpec, quantity: int) -> float:
        """The square-root impact of `quantity`, in points, rounded to the nearest tick."""
        sigma = book.sigma_points
        if math.isnan(sigma):
            return 0.0
        raw = self.params.impact_alpha * sigma * math.sqrt(quantity / spec.adv_contracts)
        return math.floor(raw / spec.tick_size + 0.5) * spec.tick_size

    def _execute(
        self,
        order: OrderRequest,
        spec: SymbolSpec,
        quantity: int,
        price: float,
        touch: float,
        now_event_ns: int,
    ) -> list[VenueReply]:
        # Ids derive from the client order id, not from counters: a venue restarted
        # after a crash that sees a re-delivered order replies with the same ids, so
        # execution and risk, idempotent on fill_id, count its fill once.
        venue_order_id = f"V-{order.client_order_id}"
        fee = self.params.fee_per_contract * quantity
        stats = self.stats
        stats.fills += 1
        stats.contracts_filled += quantity
        stats.contracts_cancelled += order.quantity - quantity
        stats.fees += fee
        stats.impact_cost += abs(price - touch) * quantity * spec.point_value
        ack = OrderAck(
            client_order_id=order.client_order_id,
            venue_order_id=venue_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            event_ns=now_event_ns,
            origin_ns=order.origin_ns,
        )
        fill = Fill(
            fill_id=f"F-{order.client_order_id}-1",
            client_order_id=order.client_order_id,
            venue_order_id=venue_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            leaves_quantity=0,
            fee=fee,
            event_ns=now_event_ns,
            liquidity=Liquidity.TAKER,
            origin_ns=order.origin_ns,
        )
        return [ack, fill]

    def _no_liquidity(self, order: OrderRequest, now_event_ns: int, detail: str) -> OrderReject:
        return self._reject(order, RejectReason.NO_LIQUIDITY, now_event_ns, detail)

    def _reject(
        self, order: OrderRequest, reason: RejectReason, now_event_ns: int, detail: str
    ) -> OrderReject:
        self._count_reject(reason)
        return OrderReject(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            reason=reason,
            event_ns=now_event_ns,
            detail=detail,
            origin_ns=order.origin_ns,
        )

    def _count_reject(self, reason: RejectReason) -> None:
        rejects = self.stats.rejects
        rejects[reason] = rejects.get(reason, 0) + 1


def _invalid(order: OrderRequest, spec: SymbolSpec) -> tuple[RejectReason, str] | None:
    """Why `order` cannot be simulated at all, whatever the book (None when it can)."""
    if order.quantity <= 0:
        return RejectReason.INVALID_QUANTITY, f"quantity {order.quantity}"
    if order.side == Direction.FLAT:
        return RejectReason.INVALID_QUANTITY, "side FLAT: an order buys (LONG) or sells (SHORT)"
    if order.order_type not in SIMULATED_ORDER_TYPES or (
        order.time_in_force not in IMMEDIATE_TIME_IN_FORCE
    ):
        kind = f"{OrderType(order.order_type).name} {TimeInForce(order.time_in_force).name}"
        return RejectReason.VENUE_ERROR, f"{kind} not simulated: only MARKET or LIMIT, IOC or FOK"
    if order.order_type == OrderType.LIMIT:
        ticks = order.limit_price / spec.tick_size
        if not (0.0 < order.limit_price < math.inf) or abs(ticks - round(ticks)) > GRID_TOLERANCE:
            return RejectReason.INVALID_PRICE, f"limit price {order.limit_price}"
    return None
