"""The pre-trade gate: one TradeIntent in, one RiskVerdict out, no I/O, on the order path.

Every verdict carries the intent's origin_ns (the tick that started the chain) and its
ts_ns as intent_ns (the start of `order_path`), so execution and the venue can time both.

Checks run in this order; the first that fails is the deny reason:

 1. KILL_SWITCH       the shared-memory kill switch is engaged.
 2. DUPLICATE_ID      the intent_id was seen before. Every intent that gets past the
                      switch is remembered whatever its verdict, so a replayed copy
                      never gets a second chance.
 3. NAN_INPUT         price, atr, score, confidence or stop_price is NaN or infinite, or
                      price or atr is not positive (nothing can be sized from it).
    UNKNOWN_SYMBOL    the symbol is not an instrument risk trades (`symbols`).
 4. HALTED            the trading state is HALTED.
 5. DAILY_LOSS_LIMIT  the day's loss (realized + unrealized) is beyond the limit: the
                      state flips to REDUCING and only position-reducing intents pass.
 6. REDUCING_ONLY     the state is REDUCING and the intent would not reduce the position.
 7. PRICE_BAND        the symbol has no mark yet, or the price is outside the band.
 8. ORDER_RATE_LIMIT  the sliding minute already holds the maximum of approvals.
 9. ZERO_SIZE         sizing gives no contract (no Kelly edge, a stop too wide for the
                      risk budget, nothing left to close).
10. POSITION_LIMIT, NOTIONAL_LIMIT, NET_NOTIONAL_LIMIT, ORDER_SIZE_LIMIT: the size is
                      cut to each limit in turn and denied with that reason if nothing
                      is left. The position limit is per symbol; the notional limits are
                      the portfolio's (gross: sum of |notional|; net: |sum of signed
                      notional|), so an order each symbol's limit allows can still be
                      denied because of what the other symbols hold. An approval
                      that a limit cut carries that limit as its reason (DenyReason is
                      "why denied, or cut"); an uncut approval carries NONE.

Sizing. An intent to go LONG or SHORT in the ACTIVE state opens risk: contracts =
floor(risk fraction x equity / (stop_atr_multiple x ATR x the symbol's point value)). The
risk fraction is `risk_per_trade_fraction` until `min_kelly_trades` round trips have
closed; after that, the fractional Kelly fraction when lower (Kelly may shrink the risk,
never grow it past the ceiling, and no edge means no trade), scaled by the volatility
adjustment min(normal / current, 2): current = the intent's ATR / price, normal = the
symbol's EWMA of ATR / close over `volatility_bars` bars (sizing.py). A FLAT intent, or any intent
the REDUCING state lets through, closes: its size is what is held and not already being
closed.

Position and notional limits count approved quantity not yet filled (see pending.py);
closing never needs notional room (it lowers the symbol's exposure, even when it moves
the portfolio's net).
"""

import logging
import math
import time
from collections.abc import Callable

import msgspec

from actors.common.recent import RecentIds
from actors.messages import Bar, DenyReason, Direction, RiskVerdict, TradeIntent, TradingState
from actors.risk.book import RiskBook
from actors.risk.killswitch import KillSwitch
from actors.risk.limits import RiskLimits
from actors.risk.pending import Approval, PendingOrders
from actors.risk.sizing import (
    NormalVolatility,
    kelly_fraction,
    risk_contracts,
    volatility_adjustment,
)
from actors.risk.throttle import OrderThrottle

REMEMBERED_INTENTS = 100_000
PERSISTED_INTENTS = 1_024
"""Intent ids the durable state keeps (at least): enough to outlive a restart and its
redelivery. Saved as chunks encoded once (recent.py), so their number costs a save a copy
of bytes, not an encoding of each id."""
GATE = "risk-gate"
"""How the gate signs the trading-state changes it makes itself."""

# Enum members bound once: a class attribute lookup on an Enum costs ~0.2 us in 3.11.
_ACTIVE, _REDUCING, _HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
_FLAT = Direction.FLAT
_SIDES = {int(d): d for d in Direction}
_NONE = DenyReason.NONE
_KILL_SWITCH = DenyReason.KILL_SWITCH
_DUPLICATE_ID = DenyReason.DUPLICATE_ID
_NAN_INPUT = DenyReason.NAN_INPUT
_HALTED_REASON = DenyReason.HALTED
_DAILY_LOSS_LIMIT = DenyReason.DAILY_LOSS_LIMIT
_REDUCING_ONLY = DenyReason.REDUCING_ONLY
_PRICE_BAND = DenyReason.PRICE_BAND
_ORDER_RATE_LIMIT = DenyReason.ORDER_RATE_LIMIT
_ZERO_SIZE = DenyReason.ZERO_SIZE
_POSITION_LIMIT = DenyReason.POSITION_LIMIT
_NOTIONAL_LIMIT = DenyReason.NOTIONAL_LIMIT
_NET_NOTIONAL_LIMIT = DenyReason.NET_NOTIONAL_LIMIT
_UNKNOWN_SYMBOL = DenyReason.UNKNOWN_SYMBOL
_RESTRICTED = DenyReason.RESTRICTED_INSTRUMENT
_ORDER_SIZE_LIMIT = DenyReason.ORDER_SIZE_LIMIT
_GUARDED = ("price", "atr", "score", "confidence", "stop_price")
_POSITIVE = ("price", "atr")
_FIXED, _KELLY, _CLOSING = "fixed-fractional sizing", "fractional Kelly sizing", "closing"

log = logging.getLogger(__name__)


class GateMemory(msgspec.Struct, kw_only=True):
    """The gate's memory between intents: unfilled approvals, the throttle's window
    (CLOCK_MONOTONIC ns, which runs on across process restarts) and the newest intent ids."""

    pending: list[Approval] = []
    approvals_ns: bytes | list[int] = b""
    """The throttle's window: approval times as little-endian int64, oldest first
    (records saved before this form hold a list of ints, read the same)."""
    intent_ids: list[msgspec.Raw] = []
    """The newest intent ids (`RecentIds.saved`)."""
    normal_volatility: dict[str, float] = {}
    """Per symbol, the EWMA of ATR / close (`NormalVolatility`)."""
    flattened: int = 0
    """The FLATTEN requests already answered with closing verdicts (`RiskGate.flatten`)."""


class RiskGate:
    """`check` decides; `on_fill` releases pending quantity. `clock` is CLOCK_MONOTONIC in
    ns by default and injected by tests (throttle window, pending expiry)."""

    def __init__(
        self,
        limits: RiskLimits,
        book: RiskBook,
        controls: KillSwitch,
        clock: Callable[[], int] = time.monotonic_ns,
        memory: "GateMemory | None" = None,
    ) -> None:
        self.limits = limits
        self.book = book
        self.controls = controls
        memory = memory or GateMemory()
        self.pending = PendingOrders(round(limits.pending_ttl_s * 1e9), memory.pending)
        self._clock = clock
        self._intent_ids = RecentIds(REMEMBERED_INTENTS, PERSISTED_INTENTS, memory.intent_ids)
        self._throttle = OrderThrottle(limits.max_orders_per_minute, memory.approvals_ns)
        self.normal_volatility = NormalVolatility(limits.volatility_bars, memory.normal_volatility)
        self._flattened = memory.flattened
        # Per symbol, looked up once per intent: (point value, position limit).
        self._terms = {
            symbol: (instrument.point_value, limits.position_limit(symbol))
            for symbol, instrument in limits.registry.items()
        }

    def memory(self) -> "GateMemory":
        """What the gate must not forget across a restart, as data."""
        return GateMemory(
            pending=self.pending.to_list(),
            approvals_ns=self._throttle.to_bytes(),
            intent_ids=self._intent_ids.saved(),
            normal_volatility=dict(self.normal_volatility.by_symbol),
            flattened=self._flattened,
        )

    def flatten(self) -> list[RiskVerdict]:
        """When a FLATTEN request is outstanding (the kill-switch file counts them), one
        approved closing verdict per open position, for what is held and not already being
        closed; the request is then answered. An IOC that finds too little liquidity leaves
        a rest, which the next request closes. Ids `flatten-<request>-<symbol>`: a verdict
        re-published after a crash makes the same order, which execution sends once."""
        requested = self.controls.flatten_requests
        if requested <= self._flattened:
            return []
        self._flattened = requested
        now = self._clock()
        self.pending.expire(now)
        verdicts = []
        for symbol, held in self.book.positions.items():
            quantity = held.quantity
            side = -1 if quantity > 0 else 1
            open_rest = abs(quantity) - self.pending.quantity(symbol, side)
            terms = self._terms.get(symbol)
            if not quantity or open_rest <= 0 or terms is None:
                continue
            mark = held.mark
            self.pending.add(now, symbol, side, open_rest, mark * terms[0])
            verdicts.append(
                RiskVerdict(
                    intent_id=f"flatten-{requested}-{symbol}",
                    symbol=symbol,
                    approved=True,
                    reason=_NONE,
                    direction=_SIDES[side],
                    quantity=open_rest,
                    price=mark,
                    detail=f"FLATTEN #{requested}",
                )
            )
        return verdicts

    def on_bar(self, bar: Bar) -> None:
        """A closed bar of the intents' timeframe: its ATR moves the symbol's normal
        volatility."""
        if bar.timeframe_s == self.limits.volatility_timeframe_s:
            self.normal_volatility.on_bar(bar.symbol, bar.atr, bar.close)

    def on_fill(self, symbol: str, side: int, quantity: int) -> None:
        self.pending.fill(symbol, side, quantity)

    def utilisation(self) -> dict[str, float]:
        """`limit_utilisation` as the gate sees it now."""
        now = self._clock()
        self.pending.expire(now)
        return limit_utilisation(self.limits, self.book, self.pending, self._throttle.count(now))

    def check(self, intent: TradeIntent) -> RiskVerdict:
        controls = self.controls
        engaged = controls.engaged
        if engaged and not controls.reducing_allowed:
            return _deny(intent, _KILL_SWITCH, controls.reason)
        if not self._intent_ids.add(intent.intent_id):
            return _deny(intent, _DUPLICATE_ID, "intent_id seen before")
        price, atr = intent.price, intent.atr
        # One finiteness test for all five: a NaN or an inf in any of them spoils the sum.
        if not (
            math.isfinite(price + atr + intent.score + intent.confidence + intent.stop_price)
            and price > 0.0
            and atr > 0.0
        ):
            return _deny(intent, _NAN_INPUT, _bad_fields(intent))
        symbol = intent.symbol
        terms = self._terms.get(symbol)
        if terms is None:
            return _deny(intent, _UNKNOWN_SYMBOL, f"{symbol!r} is not traded here")
        point_value, position_limit = terms
        state = controls.trading_state
        if state is _HALTED:
            return _deny(intent, _HALTED_REASON, "trading halted")

        limits = self.limits
        book = self.book
        held = book.position(symbol)
        direction = intent.direction
        side = int(direction) if direction != _FLAT else (held < 0) - (held > 0)
        reducing = side * held < 0
        daily_pnl = book.daily_pnl
        if daily_pnl < -limits.daily_loss_limit:
            breach = f"daily P&L {daily_pnl:.2f} beyond -{limits.daily_loss_limit:.2f}"
            if state is _ACTIVE:
                state = _REDUCING
                controls.set_trading_state(_REDUCING, GATE, breach)
                log.warning("trading state REDUCING: %s", breach)
            if not reducing:
                return _deny(intent, _DAILY_LOSS_LIMIT, breach)
        if state is _REDUCING and not reducing:
            return _deny(intent, _REDUCING_ONLY, f"position {held}")
        if engaged and not reducing:  # engaged, letting only risk-reducing orders through
            return _deny(intent, _KILL_SWITCH, controls.reason)
        restricted = symbol in limits.restricted_symbols
        if restricted and not reducing:
            return _deny(intent, _RESTRICTED, f"{symbol} is on the restricted list")

        mark = book.mark(symbol)
        if not abs(price - mark) <= limits.price_band_fraction * mark:  # NaN mark: deny
            return _deny(intent, _PRICE_BAND, f"price {price} vs mark {mark}")
        now = self._clock()
        if not self._throttle.allows(now):
            return _deny(
                intent,
                _ORDER_RATE_LIMIT,
                f"{limits.max_orders_per_minute} orders in the last minute",
            )

        pending = self.pending
        pending.expire(now)
        pending_same_side = pending.quantity(symbol, side)
        closable = -side * held - pending_same_side
        if closable < 0:  # not max(0, ...): a builtin call with two arguments costs ~80 ns
            closable = 0
        kelly = math.nan
        closing = direction == _FLAT or state is _REDUCING or engaged or restricted
        if closing:
            quantity, stop_distance, detail = closable, math.nan, _CLOSING
        else:
            risk_fraction, detail = limits.risk_per_trade_fraction, _FIXED
            stats = book.stats
            if stats.trades >= limits.min_kelly_trades:
                normal = self.normal_volatility.by_symbol.get(symbol, math.nan)
                kelly = (
                    limits.kelly_fraction
                    * kelly_fraction(stats.win_rate, stats.payoff_ratio)
                    * volatility_adjustment(normal, atr / price)
                )
                if kelly < risk_fraction:
                    risk_fraction, detail = kelly, _KELLY
            stop_distance = limits.stop_atr_multiple * atr
            quantity = risk_contracts(book.equity, risk_fraction, stop_distance, point_value)
        if quantity <= 0:
            return _deny(intent, _ZERO_SIZE, detail, kelly)

        reason = _NONE
        contract_notional = price * point_value
        gross = book.gross_notional + pending.notional
        net = book.net_notional + pending.net_notional
        # Closing never needs notional room: only the opening part of an order does.
        notional_room = math.floor((limits.max_notional - gross) / contract_notional)
        net_room = math.floor((limits.max_net_notional - side * net) / contract_notional)
        rooms = (
            (position_limit - side * held - pending_same_side, _POSITION_LIMIT),
            (closable + notional_room if notional_room > 0 else closable, _NOTIONAL_LIMIT),
            (closable + net_room if net_room > 0 else closable, _NET_NOTIONAL_LIMIT),
            (limits.max_order_size, _ORDER_SIZE_LIMIT),
        )
        for room, limit in rooms:
            if room < quantity:
                if room <= 0:
                    return _deny(intent, limit, f"{detail}; no room left", kelly)
                quantity, reason = room, limit

        pending.add(now, symbol, side, quantity, contract_notional)
        self._throttle.record(now)
        return RiskVerdict(
            intent_id=intent.intent_id,
            symbol=symbol,
            approved=True,
            reason=reason,
            direction=_SIDES[side],
            quantity=quantity,
            price=price,
            stop_price=price - side * stop_distance,
            target_price=intent.target_price,
            kelly_fraction=kelly,
            risk_amount=0.0 if closing else quantity * stop_distance * point_value,
            detail=detail,
            intent_ns=intent.ts_ns,
            origin_ns=intent.origin_ns,
        )


def limit_utilisation(
    limits: RiskLimits, book: RiskBook, pending: PendingOrders, orders_last_minute: int
) -> dict[str, float]:
    """Use of each limit that can fill up, as a fraction of it (1.0 = at the limit), as the
    gate counts it: approvals not yet filled (`pending`) count like positions. A limit of
    0 is full."""
    # Per symbol, the worse side (what is held that way plus what is pending that way)
    # against that symbol's limit; the most used symbol is the utilisation.
    position_use = max(
        (
            max(
                held.quantity + pending.quantity(symbol, 1),
                pending.quantity(symbol, -1) - held.quantity,
            )
            / limit
            if (limit := limits.position_limit(symbol))
            else 1.0
            for symbol, held in book.positions.items()
        ),
        default=0.0,
    )
    net = abs(book.net_notional + pending.net_notional)
    used = {
        "max_notional": (book.gross_notional + pending.notional, limits.max_notional),
        "max_net_notional": (net, limits.max_net_notional),
        "daily_loss_limit": (max(0.0, -book.daily_pnl), limits.daily_loss_limit),
        "max_orders_per_minute": (orders_last_minute, limits.max_orders_per_minute),
    }
    use = {name: value / limit if limit else 1.0 for name, (value, limit) in used.items()}
    return {"max_position": position_use, **use}


def _deny(
    intent: TradeIntent, reason: DenyReason, detail: str, kelly: float = math.nan
) -> RiskVerdict:
    return RiskVerdict(
        intent_id=intent.intent_id,
        symbol=intent.symbol,
        approved=False,
        reason=reason,
        direction=intent.direction,
        quantity=0,
        price=intent.price,
        target_price=intent.target_price,
        kelly_fraction=kelly,
        detail=detail,
        intent_ns=intent.ts_ns,
        origin_ns=intent.origin_ns,
    )


def _bad_fields(intent: TradeIntent) -> str:
    bad = []
    for name in _GUARDED:
        value = getattr(intent, name)
        if not math.isfinite(value) or (name in _POSITIVE and value <= 0.0):
            bad.append(f"{name}={value}")
    return ", ".join(bad)
