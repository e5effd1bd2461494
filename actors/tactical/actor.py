"""TacticalActor: runs a tactical strategy per instrument on closed bars, publishes TradeIntents.

Each served symbol has its own strategy and memory (last direction, position in the bar
history, hold counts); the memories are the actor's durable state, keyed by symbol, so a
restarted actor neither repeats nor forgets a swing, and a bar of one symbol never moves
another symbol's strategy.
"""

from typing import Any

import msgspec

from actors.common.instruments import InstrumentParams, parse_instrument_params
from actors.messages import Bar, TradeIntent
from actors.tactical.baseline import BaselineMemory, BaselineRule, BaselineStrategy
from config.schema import SystemConfig
from config.types import Fraction, NonNegative, Positive
from kernel.actor import Actor, Port


class TacticalParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    strategy: str = "baseline"
    timeframe_s: int = 300
    threshold_pct: Positive = 0.05
    min_atr_fraction: NonNegative = 0.0001
    max_atr_fraction: Fraction = 0.02
    stop_atr: Positive = 2.0
    target_atr: Positive = 3.0


class TacticalState(msgspec.Struct, kw_only=True):
    """The durable state: each served symbol's strategy memory."""

    memories: dict[str, BaselineMemory] = {}


class TacticalActor(Actor):
    """Bars of symbols it does not serve are skipped and counted (`skipped_bars`)."""

    Params = TacticalParams
    params: TacticalParams
    State = TacticalState
    state: TacticalState

    @classmethod
    def parse_params(cls, raw: dict[str, Any], config: SystemConfig | None = None) -> Any:
        params: TacticalParams = parse_instrument_params(TacticalParams, raw, config)
        if params.strategy != "baseline":
            raise msgspec.ValidationError(
                f"Unknown strategy {params.strategy!r} (available: 'baseline') - at `$.strategy`"
            )
        return params

    async def on_start(self) -> None:
        p = self.params
        rule = BaselineRule(
            p.timeframe_s,
            p.threshold_pct,
            p.min_atr_fraction,
            p.max_atr_fraction,
            p.stop_atr,
            p.target_atr,
        )
        memories = self.state.memories
        self.strategies = {
            symbol: BaselineStrategy(rule, memories.setdefault(symbol, BaselineMemory()))
            for symbol in p.symbols
        }
        self.skipped_bars = 0
        self.out = self.output("intents")

    def on_bar(self, bar: Bar) -> None:
        strategy = self.strategies.get(bar.symbol)
        if strategy is None:
            self.skipped_bars += 1
            return
        intent = strategy.on_bar(bar)
        if intent is not None and not bar.history:
            self.out.publish(intent)

    inputs = {Bar: on_bar}
    outputs = {"intents": Port(TradeIntent)}
