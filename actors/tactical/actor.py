"""TacticalActor: runs a tactical strategy on closed bars and publishes TradeIntents."""

import msgspec

from actors.messages import Bar
from actors.tactical.baseline import BaselineRule, BaselineStrategy
from kernel.actor import Actor


class TacticalParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    strategy: str = "baseline"
    intents: str = "intents"
    timeframe_s: int = 300
    threshold_pct: float = 0.05
    min_atr_fraction: float = 0.0001
    max_atr_fraction: float = 0.02
    stop_atr: float = 2.0
    target_atr: float = 3.0


class TacticalActor(Actor):
    Params = TacticalParams
    params: TacticalParams

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
            )
        )
        self.out = self.output(p.intents)

    def on_message(self, msg: object) -> None:
        if type(msg) is Bar:
            intent = self.strategy.on_bar(msg)
            if intent is not None:
                self.out.publish(intent)
