"""The baseline tactical strategy: 5-bar momentum with an ATR volatility filter.

A documented, deterministic rule that puts real orders on the path before the MARL
policies land, and stays afterwards as the benchmark they must beat.

On each closed bar of the configured timeframe:
- hold (counted) while ATR(14) or the 5-bar momentum is not known, or either is NaN;
- hold when ATR/close is outside [min_atr_fraction, max_atr_fraction]: too quiet to
  pay the spread, or too wild for a 2-ATR stop;
- signal LONG when momentum_5 >= +threshold_pct, SHORT when <= -threshold_pct;
- emit a TradeIntent only when the signal differs from the last direction emitted
  (one intent per swing, not one per bar), with stop = close -/+ stop_atr * ATR and
  target = close +/- target_atr * ATR; score = min(1, |momentum| / (2 * threshold)).
Sizing is left to risk. The intent id is derived from the bar, so a bar delivered
twice (after a restart) yields the same id and risk drops the duplicate.
"""

import math
from dataclasses import dataclass

import msgspec

from actors.messages import Bar, Direction, TradeIntent


@dataclass(frozen=True)
class BaselineRule:
    timeframe_s: int = 300
    threshold_pct: float = 0.05
    min_atr_fraction: float = 0.0001
    max_atr_fraction: float = 0.02
    stop_atr: float = 2.0
    target_atr: float = 3.0


class BaselineMemory(msgspec.Struct, kw_only=True):
    """What the strategy carries from bar to bar (the tactical actor's durable state)."""

    last_direction: Direction = Direction.FLAT
    """The direction of the last intent emitted: one intent per swing."""
    last_bar_end_ns: int = 0
    """End of the last bar of the timeframe seen (the bar history's position)."""
    holds_unknown: int = 0
    holds_volatility: int = 0


class BaselineStrategy:
    """Turns bars into intents by the rule above; `memory` is updated in place."""

    def __init__(self, rule: BaselineRule, memory: BaselineMemory | None = None) -> None:
        self.rule = rule
        self.memory = memory if memory is not None else BaselineMemory()

    @property
    def last_direction(self) -> Direction:
        return self.memory.last_direction

    @property
    def holds_unknown(self) -> int:
        return self.memory.holds_unknown

    @property
    def holds_volatility(self) -> int:
        return self.memory.holds_volatility

    def on_bar(self, bar: Bar) -> TradeIntent | None:
        rule = self.rule
        if bar.timeframe_s != rule.timeframe_s:
            return None
        memory = self.memory
        memory.last_bar_end_ns = bar.end_ns
        momentum, atr, close = bar.momentum_5, bar.atr, bar.close
        if not (math.isfinite(momentum) and math.isfinite(atr) and math.isfinite(close)):
            memory.holds_unknown += 1
            return None
        if close <= 0 or not rule.min_atr_fraction <= atr / close <= rule.max_atr_fraction:
            memory.holds_volatility += 1
            return None
        if momentum >= rule.threshold_pct:
            direction = Direction.LONG
        elif momentum <= -rule.threshold_pct:
            direction = Direction.SHORT
        else:
            return None
        if direction == memory.last_direction:
            return None
        memory.last_direction = direction
        score = min(1.0, abs(momentum) / (2 * rule.threshold_pct))
        return TradeIntent(
            intent_id=f"{bar.symbol}-{bar.timeframe_s}-{bar.end_ns}",
            symbol=bar.symbol,
            direction=direction,
            score=score,
            confidence=score,
            price=close,
            atr=atr,
            stop_price=close - direction * rule.stop_atr * atr,
            target_price=close + direction * rule.target_atr * atr,
            bar_end_ns=bar.end_ns,
            origin_ns=bar.origin_ns,
            model_version="baseline-momentum-atr-1",
        )
