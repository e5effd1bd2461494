"""The pre-trade limits, with defaults that hang together for one ES contract.

Worked through for the defaults (ES about 5000 points, $50 a point, 5-minute ATR of
3 points): a trade risks 0.5% of $250k = $1,250; a 2 x ATR stop is 6 points = $300 a
contract, so risk sizing asks for 4 contracts and the order-size cap of 2 cuts it. Five
contracts at 5000 are $1.25M notional, inside the $1.5M cap (5 contracts at 6000), so the
position limit binds before the notional one at today's prices; the notional cap still
stops a mis-scaled price from building a huge exposure. The daily loss limit of $5,000 is
2% of equity, about eight stop-outs at the capped size (2 x $300).
"""

from typing import Annotated

import msgspec

from config.types import AtLeastOne, Count, Fraction, Positive


class RiskLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    point_value: Positive = 50.0
    """Money per point of one contract (ES: $50)."""
    initial_equity: Positive = 250_000.0
    """Account equity at start; equity = initial + realized + unrealized P&L."""
    max_position: Count = 5
    """Contracts per symbol, long or short, counting approved orders not yet filled."""
    max_order_size: Count = 2
    """Contracts per order: larger sizes are cut to it; 0 stops every order."""
    max_notional: Positive = 1_500_000.0
    """Gross notional over all symbols (|contracts| x price x point value), with pending."""
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
    min_kelly_trades: AtLeastOne = 20
    """Closed round trips needed before Kelly statistics are trusted."""
    pending_ttl_s: Positive = 300.0
    """How long an approved, unfilled quantity counts against the limits. Risk sees no
    cancels or expiries yet, so without a horizon an unfilled order would block forever."""
