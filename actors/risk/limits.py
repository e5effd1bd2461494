"""The pre-trade limits, with defaults that hang together for the default ES and NQ.

Worked through for the defaults (ES about 4,150 points at $50 a point, NQ about 14,500 at
$20; 5-minute ATRs of 3 and 12 points): a trade risks 0.5% of $250k = $1,250; a 2 x ATR
stop is $300 an ES contract ($480 an NQ one), so risk sizing asks for 4 ES (2 NQ) and the
order-size cap of 2 cuts the ES order. One ES contract is about $208k notional, one NQ
$290k: five of each (each symbol's position limit) are $2.49M gross, so the portfolio caps
bind before both books are full: $2M gross, and $1.5M net, which lets a long in one index
hedged by a short in the other (nets to $0.4M) grow further than two longs. The daily
loss limit of $5,000 is 2% of equity, about eight stop-outs at the capped ES size.

Point values, tick sizes and price bands come from the instrument registry (`registry`,
config/instruments.py), one per symbol.
"""

from collections.abc import Iterator
from typing import Annotated

import msgspec

from actors.common.instruments import InstrumentParams
from config.types import AtLeastOne, Count, Fraction, Positive

REPORTED_LIMITS = (
    "max_position",
    "max_order_size",
    "max_notional",
    "max_net_notional",
    "daily_loss_limit",
    "max_orders_per_minute",
    "risk_per_trade_fraction",
    "price_band_fraction",
)
"""The limits a RiskSnapshot lists (the sizing and bookkeeping parameters are not limits)."""


class RiskLimits(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    initial_equity: Positive = 250_000.0
    """Account equity at start; equity = initial + realized + unrealized P&L."""
    max_position: Count = 5
    """Contracts per symbol, long or short, counting approved orders not yet filled."""
    position_limits: dict[str, Count] = {}
    """Per-symbol overrides of `max_position` (symbol -> contracts)."""
    max_order_size: Count = 2
    """Contracts per order: larger sizes are cut to it; 0 stops every order."""
    max_notional: Positive = 2_000_000.0
    """Gross notional over all symbols (sum of |contracts| x price x point value), with
    pending approvals."""
    max_net_notional: Positive = 1_500_000.0
    """|Net notional| over all symbols (sum of signed contracts x price x point value),
    with pending approvals: a long ES against a short NQ nets out, two longs add up."""
    daily_loss_limit: Positive = 5_000.0
    """Loss since the start of the UTC day (realized + unrealized) that flips to REDUCING."""
    max_orders_per_minute: Count = 10
    """Approved orders in any sliding 60 s window of the monotonic clock."""
    risk_per_trade_fraction: Annotated[float, msgspec.Meta(gt=0, le=0.02)] = 0.005
    """Equity risked if the stop is hit; the ceiling Kelly may only lower (spec: <= 2%)."""
    stop_atr_multiple: Positive = 2.0
    """Stop distance in ATRs of the intent's bar."""
    price_band_fraction: Fraction = 0.02
    """Deny an intent whose price is further than this from the last mark."""
    kelly_fraction: Fraction = 0.25
    """Share of the full Kelly fraction used (quarter Kelly)."""
    volatility_bars: AtLeastOne = 250
    """Bars of the EWMA of ATR / close that is each symbol's normal volatility: Kelly is
    scaled by min(normal / the intent's ATR / price, 2)."""
    volatility_timeframe_s: AtLeastOne = 300
    """The bars that EWMA reads: those the intents' ATR comes from (the tactical bars)."""
    min_kelly_trades: AtLeastOne = 20
    """Closed round trips needed before Kelly statistics are trusted."""
    restricted_symbols: tuple[str, ...] = ()
    """Instruments on the restricted list (compliance, a corporate event): a position in
    them may only be reduced, never opened or grown (`RESTRICTED_INSTRUMENT`)."""
    pending_ttl_s: Positive = 300.0
    """How long an approved, unfilled quantity counts against the limits. Risk sees no
    cancels or expiries yet, so without a horizon an unfilled order would block forever."""

    def symbol_references(self) -> Iterator[tuple[str, str]]:
        yield from super().symbol_references()
        for symbol in self.position_limits:
            yield f"position_limits.{symbol}", symbol
        for i, symbol in enumerate(self.restricted_symbols):
            yield f"restricted_symbols[{i}]", symbol

    def position_limit(self, symbol: str) -> int:
        """The most contracts `symbol` may hold, long or short."""
        return self.position_limits.get(symbol, self.max_position)
