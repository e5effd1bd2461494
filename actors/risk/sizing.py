"""Position sizing: Kelly fraction from trade statistics, its volatility adjustment,
contracts from risk per trade."""

import math

EPSILON = 1e-9
"""Slack for float quotients that should be whole: 1250 / (2.5 x 50) must give 10, not 9."""


def kelly_fraction(win_rate: float, payoff_ratio: float) -> float:
    """Full Kelly f = (p*b - q) / b, b = average win / average loss, q = 1 - p.

    No edge (f <= 0, or no wins at all) gives 0: never size a trade the statistics say
    loses (the source documents traded 1 contract there). With no losses yet, b is
    infinite and f tends to p.
    """
    if win_rate <= 0.0 or payoff_ratio <= 0.0:
        return 0.0
    if math.isinf(payoff_ratio):
        return win_rate
    return max(0.0, (win_rate * payoff_ratio - (1.0 - win_rate)) / payoff_ratio)


def risk_contracts(
    equity: float, risk_fraction: float, stop_distance: float, point_value: float
) -> int:
    """floor(risk_fraction x equity / (stop distance in points x point value)).

    Rounds down: a fraction of a contract is never bought with risk budget we do not
    have. Non-positive equity or budget gives 0.
    """
    budget = risk_fraction * equity
    if budget <= 0.0:
        return 0
    return math.floor(budget / (stop_distance * point_value) + EPSILON)


MAX_VOLATILITY_ADJUSTMENT = 2.0
"""The documents' cap: calm markets may at most double the Kelly fraction."""


def volatility_adjustment(normal: float, current: float) -> float:
    """min(normal / current, 2): a trade in a market more volatile than its normal is
    sized down in proportion, one in a calmer market up to twice. 1 when either is
    unknown (NaN, not positive): never divide by a zero volatility."""
    if not (normal > 0.0 and current > 0.0):
        return 1.0
    return min(normal / current, MAX_VOLATILITY_ADJUSTMENT)


class NormalVolatility:
    """Per symbol, an EWMA of the bar's ATR as a fraction of its close: the volatility a
    trade's is compared with (`volatility_adjustment`)."""

    def __init__(self, bars: int, saved: dict[str, float] | None = None) -> None:
        self._alpha = 2.0 / (bars + 1)
        self.by_symbol: dict[str, float] = dict(saved or {})

    def on_bar(self, symbol: str, atr: float, close: float) -> None:
        if not (atr > 0.0 and close > 0.0 and math.isfinite(atr / close)):
            return
        fraction = atr / close
        known = self.by_symbol.get(symbol)
        self.by_symbol[symbol] = (
            fraction if known is None else known + self._alpha * (fraction - known)
        )
