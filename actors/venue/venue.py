"""SimulatedVenue: a deterministic exchange that fills immediate orders against the feed's book.

What it does with an `OrderRequest`, in this order:

1. A `client_order_id` seen before (among the last `dedup_capacity` ids, the newest
   `durable_outcomes` of them across restarts) -> the replies it got the first time,
   unchanged (ledger.py): an order re-sent after a restart never executes twice, and its
   sender learns the real outcome. Every id that reaches the venue is remembered with its
   replies, rejected or not.
2. Validation -> OrderReject without an ack: symbol not configured (UNKNOWN_SYMBOL); quantity
   <= 0 or side FLAT (INVALID_QUANTITY); an order that could rest on the book (VENUE_ERROR:
   only MARKET or LIMIT with IOC or FOK are simulated, so no order ever rests here); a limit
   price that is not finite, positive and on the tick grid (INVALID_PRICE).
3. No quote seen yet for the symbol -> OrderReject NO_LIQUIDITY without an ack.
4. Session -> OrderReject MARKET_CLOSED without an ack: the market time (the latest
   tick's) is outside the instrument's trading session (registry, in its time zone).
   Price band -> OrderReject PRICE_BAND without an ack: a limit price further than the
   instrument's `price_band_fraction` from the mid of the last quote (a fat finger).
5. Liquidity -> OrderReject NO_LIQUIDITY without an ack: nothing displayed at the touch,
   a limit order that is not marketable at the touch (an IOC that cannot fill is
   rejected rather than acked and silently expired, so the sender always learns the
   outcome from one terminal message), or a FOK that cannot fill in full.
6. Otherwise OrderAck, then exactly one Fill, taker, at one price:
   - quantity: min(order quantity, floor(displayed size at the touch * depth_multiplier));
     the IOC remainder is cancelled, so the Fill always has `leaves_quantity` 0 and a fill
     quantity below the ack's quantity is how the cancelled remainder is reported;
   - price: the touch (buy at the ask, sell at the bid: the spread is crossed) moved against
     the order by the square-root impact term
     impact = impact_alpha * sigma * sqrt(filled / adv_contracts) points, rounded to the
     nearest tick, sigma the symbol's daily volatility in points (see `SymbolBook`; no impact
     until it is known); a limit order never fills through its limit, so the impact is capped
     there. The impact is temporary: the book stays the feed's, orders do not move it;
   - fee: the instrument's fee_per_contract * filled.

A CancelRequest is always answered OrderReject UNKNOWN_ORDER: orders never rest, so there is
nothing to cancel (the detail says whether the id was seen). Every reply copies the request's
`origin_ns`, so a fill can be traced back to the tick that started its chain, and carries the
market time the caller passes in. Venue order ids and fill ids derive from the client order
id, so a run is reproducible.
"""

import math
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from actors.common.instruments import InstrumentParams
from actors.common.positions import Position, PositionState, book_fill
from actors.common.sessions import SessionClock
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
from actors.venue.book import BookState, SymbolBook
from actors.venue.ledger import OrderLedger, Outcome, VenueReply, is_final
from config.instruments import Instrument
from config.types import NonNegative, Positive

IMMEDIATE_TIME_IN_FORCE = frozenset({TimeInForce.IOC, TimeInForce.FOK})
SIMULATED_ORDER_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT})
GRID_TOLERANCE = 1e-9
"""How far (in ticks) a limit price may sit off the tick grid and still count as on it."""


class ExchangeParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The simulated exchange's models (see the module docstring). The contracts it lists
    are `symbols` (every registered instrument by default), with their tick size, point
    value, fee, price band and average daily volume from the instrument registry; ticks
    and orders of any other symbol are not traded."""

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
    """How many recent client order ids are remembered with their replies: a repeat of one
    gets the original replies instead of a second execution."""
    durable_outcomes: Annotated[int, msgspec.Meta(ge=1, le=2048)] = 64
    """How many of them survive a restart of the venue (its durable state): a repeat after
    a restart is a re-sent working order, one of the newest. Each costs about 180 bytes
    in every commit of the venue (which commits after each batch of ticks: 64 of them
    are ~15 us of copying and checksumming), at most 2,048 fit an actor record (1 MiB)."""


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
    repeats: int = 0
    """Orders whose id was seen before, answered with the original replies."""
    rejects: dict[RejectReason, int] = field(default_factory=dict)
    bad_ticks: int = 0
    """Ticks of a traded symbol whose quote was unusable and left the book unchanged."""


class SimulatedVenue:
    """Books from ticks, replies to orders; pure and synchronous (the actor does the I/O)."""

    def __init__(
        self,
        params: ExchangeParams,
        outcomes: list[Outcome] | None = None,
        books: dict[str, BookState] | None = None,
        positions: list[PositionState] | None = None,
    ) -> None:
        """`outcomes`, `books` and `positions`: what `saved_outcomes`, `saved_books` and
        `saved_positions` gave before a restart (the ledger's durable part, the top of book
        and volatility estimates, the account)."""
        self.params = params
        self.books: dict[str, SymbolBook] = {}
        self.stats = VenueStats()
        self._sessions = {
            symbol: SessionClock(instrument.session)
            for symbol, instrument in params.registry.items()
        }
        self.ledger = OrderLedger(params.dedup_capacity, outcomes or ())
        self._saved: tuple[int, list[Outcome]] = (-1, [])
        self.account: dict[str, Position] = {
            saved.symbol: Position.from_state(saved) for saved in positions or ()
        }
        """The account's position per symbol from every fill executed here: the venue's
        position report, which reconciliation compares with risk's and execution's."""
        for symbol, state in (books or {}).items():
            if symbol in params.registry:
                self._book(symbol).restore(state)

    def saved_outcomes(self) -> list[Outcome]:
        """The ledger's durable part (rebuilt only after an order: saved at every commit,
        and the venue commits after every batch of ticks)."""
        if self._saved[0] != self.ledger.version:
            self._saved = (self.ledger.version, self.ledger.newest(self.params.durable_outcomes))
        return self._saved[1]

    def saved_books(self) -> dict[str, BookState]:
        return {symbol: book.to_state() for symbol, book in self.books.items()}

    def saved_positions(self) -> list[PositionState]:
        return [held.state() for held in self.account.values()]

    def rejoin(self, reply: VenueReply) -> None:
        """A reply the venue's crashed predecessor published after its last commit (the
        kernel re-sent it): back into the ledger, and a fill into the account, which the
        predecessor's uncommitted state had and this one lacks."""
        self.ledger.add_reply(reply)
        if isinstance(reply, Fill):
            self._book_fill(reply)

    def _book_fill(self, fill: Fill) -> None:
        point_value = self.params.registry[fill.symbol].point_value
        book_fill(
            self.account, fill.symbol, fill.side, fill.quantity, fill.price, fill.fee, point_value
        )

    def on_tick(self, tick: Tick) -> None:
        """Update the symbol's top of book (ticks of symbols not traded here are ignored)."""
        book = self.books.get(tick.symbol)
        if book is None:
            if tick.symbol not in self.params.registry:
                return
            book = self._book(tick.symbol)
        if not book.on_tick(tick):
            self.stats.bad_ticks += 1

    def _book(self, symbol: str) -> SymbolBook:
        p = self.params
        book = self.books[symbol] = SymbolBook(p.sigma_decay, p.session_s, p.max_gap_s)
        return book

    def on_order(
        self, order: OrderRequest, now_event_ns: int, refusal: str | None = None
    ) -> list[VenueReply]:
        """The replies to `order` at market time `now_event_ns`: [reject] or [ack, fill],
        or for an id seen before, the replies it got then. A `refusal` (the adapter's kill
        switch, with its reason) rejects a new order as KILL_SWITCH."""
        self.stats.orders += 1
        known = self.ledger.replies(order.client_order_id)
        if known is not None and is_final(known):
            self.stats.repeats += 1
            return known
        if refusal is not None:
            replies: list[VenueReply] = [
                self._reject(order, RejectReason.KILL_SWITCH, now_event_ns, refusal)
            ]
        else:
            replies = self._decide(order, now_event_ns)
        for reply in replies:
            if isinstance(reply, Fill):
                self._book_fill(reply)
        if known:  # only its ack went out (the venue crashed before the fill): keep that ack
            replies = [*known, *(replies[1:] if isinstance(replies[0], OrderAck) else replies)]
        self.ledger.record(order.client_order_id, replies)
        return replies

    def _decide(self, order: OrderRequest, now_event_ns: int) -> list[VenueReply]:
        spec = self.params.registry.get(order.symbol)
        if spec is None:
            return [self._reject(order, RejectReason.UNKNOWN_SYMBOL, now_event_ns, "")]
        problem = _invalid(order, spec)
        if problem is not None:
            reason, detail = problem
            return [self._reject(order, reason, now_event_ns, detail)]
        book = self.books.get(order.symbol)
        if book is None or not book.has_quote:
            return [self._no_liquidity(order, now_event_ns, "no quote yet")]
        if not self._sessions[order.symbol].is_open(now_event_ns):
            hours = f"{spec.session.start}-{spec.session.end} {spec.session.timezone}"
            return [self._reject(order, RejectReason.MARKET_CLOSED, now_event_ns, hours)]
        if order.order_type == OrderType.LIMIT:
            mid = 0.5 * (book.bid + book.ask)
            if abs(order.limit_price - mid) > spec.price_band_fraction * mid:
                detail = (
                    f"limit {order.limit_price} outside {spec.price_band_fraction:.2%} of {mid}"
                )
                return [self._reject(order, RejectReason.PRICE_BAND, now_event_ns, detail)]
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
        known = cancel.client_order_id in self.ledger
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

    def _impact(self, book: SymbolBook, spec: Instrument, quantity: int) -> float:
        """The square-root impact of `quantity`, in points, rounded to the nearest tick."""
        sigma = book.sigma_points
        if math.isnan(sigma):
            return 0.0
        raw = self.params.impact_alpha * sigma * math.sqrt(quantity / spec.adv_contracts)
        return math.floor(raw / spec.tick_size + 0.5) * spec.tick_size

    def _execute(
        self,
        order: OrderRequest,
        spec: Instrument,
        quantity: int,
        price: float,
        touch: float,
        now_event_ns: int,
    ) -> list[VenueReply]:
        # Ids derive from the client order id, not from counters: a venue restarted
        # after a crash that sees a re-delivered order replies with the same ids, so
        # execution and risk, idempotent on fill_id, count its fill once.
        venue_order_id = f"V-{order.client_order_id}"
        fee = spec.fee_per_contract * quantity
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


def _invalid(order: OrderRequest, spec: Instrument) -> tuple[RejectReason, str] | None:
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
