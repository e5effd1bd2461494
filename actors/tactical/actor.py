"""TacticalActor: runs a tactical strategy on closed bars and publishes TradeIntents.

The strategy's memory (last direction, position in the bar history, hold counts) is the
actor's durable state: a restarted actor neither repeats nor forgets a swing.
"""

import msgspec

from actors.messages import Bar, TradeIntent
from actors.tactical.baseline import BaselineMemory, BaselineRule, BaselineStrategy
from config.types import Fraction, NonNegative, Positive
from kernel.actor import Actor, Port


class TacticalParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    strategy: str = "baseline"
    timeframe_s: int = 300
    threshold_pct: Positive = 0.05
    min_atr_fraction: NonNegative = 0.0001
    max_atr_fraction: Fraction = 0.02
    stop_atr: Positive = 2.0
    target_atr: Positive = 3.0


class TacticalActor(Actor):
    Params = TacticalParams
    params: TacticalParams
    State = BaselineMemory
    state: BaselineMemory

    @classmethod
    def parse_params(cls, raw: dict[str, object]) -> TacticalParams:
        params: TacticalParams = super().parse_params(raw)
        if params.strategy != "baseline":
            raise msgspec.ValidationError(
                f"Unknown strategy {params.strategy!r} (available: 'baseline') - at `$.strategy`"
            )
        return params

    async def on_start(self) -> None:
        p = self.params
        self.strategy = BaselineStrategy(
            BaselineRule(
                p.timeframe_s,
                p.threshold_pct,
                p.min_atr_fraction,
                p.max_atr_fraction,
                p.stop_atr,
                p.target_atr,
            ),
            self.state,
        )
        self.out = self.output("intents")

    def on_bar(self, bar: Bar) -> None:
        intent = self.strategy.on_bar(bar)
        if intent is not None:
            self.out.publish(intent)

    inputs = {Bar: on_bar}
    outputs = {"intents": Port(TradeIntent)}
