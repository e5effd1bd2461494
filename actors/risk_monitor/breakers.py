"""Circuit breakers: conditions on the monitor's figures that restrict trading.

| breaker | condition | action |
|---|---|---|
| drawdown | drawdown from the equity peak >= `max_drawdown_pct` | HALTED + kill switch |
| daily loss | loss since the day began >= the gate's `daily_loss_limit` | HALTED + kill switch |
| consecutive losses | `max_consecutive_losses` losing round trips in a row | HALTED |
| VaR | one period's 99 % VaR >= `var_limit` | REDUCING |
| volatility | an instrument's volatility >= `volatility_ratio_limit` x its normal | REDUCING |
| correlation shock | a pairwise correlation moved by >= `correlation_shock` | REDUCING |

A breaker trips once per episode: when its condition arises, not again while it holds,
so an operator who has looked can resume trading during a condition that persists; it
is armed again once the condition has cleared. What a trip set stays until an operator
resets it (the kill switch and the trading state are latched, see actors.risk.killswitch),
whatever the monitor sees afterwards. A NaN figure (too little history) never trips.
"""

from dataclasses import dataclass

from actors.messages import TradingState


@dataclass(frozen=True)
class BreakerLimits:
    max_drawdown_pct: float
    daily_loss_limit: float
    max_consecutive_losses: int
    volatility_ratio_limit: float
    correlation_shock: float
    var_limit: float


@dataclass(frozen=True)
class Figures:
    """What the breakers look at, from one evaluation of the monitor."""

    drawdown_pct: float
    daily_pnl: float
    consecutive_losses: int
    volatility_ratio: float
    correlation_change: float
    var_99: float


@dataclass(frozen=True)
class Trip:
    breaker: str
    state: TradingState
    engage_kill_switch: bool
    reason: str


def conditions(limits: BreakerLimits, figures: Figures) -> list[Trip]:
    """Every breaker whose condition holds now, with what it does and why."""
    held = []
    if figures.drawdown_pct >= limits.max_drawdown_pct:
        reason = f"drawdown {figures.drawdown_pct:.2f}% >= {limits.max_drawdown_pct:g}%"
        held.append(Trip("drawdown", TradingState.HALTED, True, reason))
    if -figures.daily_pnl >= limits.daily_loss_limit:
        reason = f"daily P&L {figures.daily_pnl:.2f} at or beyond -{limits.daily_loss_limit:g}"
        held.append(Trip("daily_loss", TradingState.HALTED, True, reason))
    if figures.consecutive_losses >= limits.max_consecutive_losses:
        reason = f"{figures.consecutive_losses} losing trades in a row"
        held.append(Trip("consecutive_losses", TradingState.HALTED, False, reason))
    if figures.var_99 >= limits.var_limit:
        reason = f"99% VaR {figures.var_99:.0f} >= {limits.var_limit:g}"
        held.append(Trip("var", TradingState.REDUCING, False, reason))
    if figures.volatility_ratio >= limits.volatility_ratio_limit:
        reason = (
            f"volatility {figures.volatility_ratio:.2f}x normal "
            f">= {limits.volatility_ratio_limit:g}x"
        )
        held.append(Trip("volatility", TradingState.REDUCING, False, reason))
    if figures.correlation_change >= limits.correlation_shock:
        reason = f"a correlation moved by {figures.correlation_change:.2f}"
        held.append(Trip("correlation_shock", TradingState.REDUCING, False, reason))
    return held


class Breakers:
    """The episodes: which breakers' conditions held at the last evaluation."""

    def __init__(self, limits: BreakerLimits, holding: list[str] | None = None) -> None:
        self.limits = limits
        self.holding: set[str] = set(holding or ())

    def evaluate(self, figures: Figures) -> tuple[list[Trip], list[Trip]]:
        """(the conditions holding now, the trips among them that begin an episode)."""
        held = conditions(self.limits, figures)
        new = [trip for trip in held if trip.breaker not in self.holding]
        self.holding = {trip.breaker for trip in held}
        return held, new
