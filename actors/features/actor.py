"""FeaturesActor: closed bars -> model-input matrices and synergies for the decision layers.

Per served symbol (`symbols`, every registered instrument by default) it runs a
`TacticalFeatures` engine on the tactical timeframe (5-minute bars by default) and a
`StrategicFeatures` engine on the strategic timeframe (30-minute). On each closed bar of
a timeframe it publishes that timeframe's matrix once the assembler is full
(TacticalMatrix 60x7, StrategicMatrix 48x13); the strategic engine's MLMI, NWRQK and FVG
signals feed the symbol's synergy detector, whose Synergy messages go out on the same
port (`features`), before the strategic matrix of the same bar, so that the strategic
layer decides on that bar with its synergy. A tactical matrix names the last strategic
matrix published before it (`strategic_bar_end_ns`): bars of one tick come in timeframe
order, so at a half-hour boundary the tactical matrix goes first and follows the previous
half hour's strategic decision. Every message carries the bar's symbol and origin_ns (the tick that
closed it). The volume profile of LVN bins prices by `lvn_bin_ticks` of the instrument's
tick size (from the registry).

Each symbol's engines (indicators and matrices) and synergy detector are the actor's
durable state, keyed by symbol: a restarted actor continues every symbol where its last
commit left it, and a bar of one symbol never touches another's state. The strategic
engine's state is the larger (about 70 kB a symbol, MLMI's neighbour memory most of it;
the tactical engine's is 11 kB): an actor record holds 1 MiB, so a topology with more
than a dozen symbols shards this actor (README "Instruments").
"""

from dataclasses import dataclass
from typing import Literal

import msgspec

from actors.common.instruments import InstrumentParams, ServesInstruments
from actors.features.engine import EngineState, StrategicFeatures, TacticalFeatures
from actors.matrices import MatrixAssembler
from actors.messages import Bar, StrategicMatrix, Synergy, TacticalMatrix
from actors.synergy import BarSignals, SynergyDetector
from actors.synergy.detector import SynergyState
from config.types import AtLeastOne
from kernel.actor import Actor, Port

BARS_PER_YEAR_OF_DAY_SECONDS = 252 * 23_400


class FeaturesParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tactical_timeframe_s: int = 300
    strategic_timeframe_s: int = 1800
    lvn_bin_ticks: AtLeastOne = 1
    """Width of a volume-profile bin, in ticks of the instrument."""
    synergy_window: int = 10
    synergy_min_confidence: float = 0.5
    mlmi: Literal["knn-rsi", "zeiierman"] = "knn-rsi"
    """The MLMI form (actors/features/engine.py `MLMI_FORMS`): the shipped models were
    fitted on the default; `zeiierman` is the public original's."""


class SymbolFeaturesState(msgspec.Struct, array_like=True):
    """One symbol's engines and synergy detector, as data."""

    tactical: EngineState
    strategic: EngineState
    synergy: SynergyState
    strategic_bars: int
    strategic_matrix_end_ns: int = 0


class FeaturesState(msgspec.Struct, kw_only=True):
    symbols: dict[str, SymbolFeaturesState] = {}


@dataclass
class _SymbolState:
    tactical: TacticalFeatures
    strategic: StrategicFeatures
    synergy: SynergyDetector
    strategic_bars: int = 0
    strategic_matrix_end_ns: int = 0
    """The bar end of the last strategic matrix published (TacticalMatrix.strategic_bar_end_ns)."""

    def state(self) -> SymbolFeaturesState:
        return SymbolFeaturesState(
            self.tactical.state(),
            self.strategic.state(),
            self.synergy.state(),
            self.strategic_bars,
            self.strategic_matrix_end_ns,
        )

    def restore(self, saved: SymbolFeaturesState) -> None:
        self.tactical.restore(saved.tactical)
        self.strategic.restore(saved.strategic)
        self.synergy.restore(saved.synergy)
        self.strategic_bars = saved.strategic_bars
        self.strategic_matrix_end_ns = saved.strategic_matrix_end_ns


class FeaturesActor(ServesInstruments, Actor):
    """Bars of symbols it does not serve are skipped and counted (`skipped_bars`)."""

    Params = FeaturesParams
    params: FeaturesParams
    State = FeaturesState
    state: FeaturesState

    async def on_start(self) -> None:
        self.out = self.output("features")
        self.skipped_bars = 0
        self.symbols = {symbol: self._engines(symbol) for symbol in self.params.symbols}
        for symbol, saved in self.state.symbols.items():
            engines = self.symbols.get(symbol)
            if engines is None:
                continue
            try:
                engines.restore(saved)
            except ValueError as error:
                self.log.warning("features of %s start afresh: %s", symbol, error)
                self.symbols[symbol] = self._engines(symbol)

    def _engines(self, symbol: str) -> _SymbolState:
        p = self.params
        bin_width = p.lvn_bin_ticks * p.registry[symbol].tick_size
        return _SymbolState(
            TacticalFeatures(BARS_PER_YEAR_OF_DAY_SECONDS / p.tactical_timeframe_s),
            StrategicFeatures(
                BARS_PER_YEAR_OF_DAY_SECONDS / p.strategic_timeframe_s, bin_width, p.mlmi
            ),
            SynergyDetector(symbol, p.synergy_window, p.synergy_min_confidence),
        )

    def state_to_save(self) -> FeaturesState:
        return FeaturesState(symbols={s: engines.state() for s, engines in self.symbols.items()})

    def on_bar(self, msg: Bar) -> None:
        state = self.symbols.get(msg.symbol)
        if state is None:
            self.skipped_bars += 1
            return
        p = self.params
        if msg.timeframe_s == p.tactical_timeframe_s:
            tactical = state.tactical
            tactical.update(msg.open, msg.high, msg.low, msg.close, msg.volume)
            self._publish_matrix(
                TacticalMatrix,
                tactical.matrix,
                tactical.atr,
                msg,
                strategic_bar_end_ns=state.strategic_matrix_end_ns,
                history=msg.history,
            )
        elif msg.timeframe_s == p.strategic_timeframe_s:
            strategic = state.strategic
            signals = strategic.update(msg.open, msg.high, msg.low, msg.close, msg.volume)
            state.strategic_bars += 1
            synergy = state.synergy.on_bar(
                BarSignals(
                    state.strategic_bars,
                    msg.end_ns,
                    msg.close,
                    signals.mlmi,
                    signals.nwrqk,
                    signals.fvg,
                )
            )
            if synergy is not None:
                synergy.origin_ns = msg.origin_ns
                self.out.publish(synergy)
            if self._publish_matrix(
                StrategicMatrix,
                strategic.matrix,
                strategic.atr,
                msg,
                volatility=strategic.volatility,
            ):
                state.strategic_matrix_end_ns = msg.end_ns

    def _publish_matrix(
        self,
        kind: type[TacticalMatrix] | type[StrategicMatrix],
        assembler: MatrixAssembler,
        atr: float,
        bar: Bar,
        **fields: float,
    ) -> bool:
        """Publish the matrix once every row holds a real bar (a model never sees padding),
        with its kind's own `fields`; whether it was published."""
        if not assembler.ready:
            return False
        message = kind.from_array(
            assembler.matrix(),
            symbol=bar.symbol,
            bar_end_ns=bar.end_ns,
            close=bar.close,
            atr=atr,
            **fields,
        )
        message.origin_ns = bar.origin_ns
        self.out.publish(message)
        return True

    inputs = {Bar: on_bar}
    outputs = {"features": Port(TacticalMatrix, StrategicMatrix, Synergy, optional=True)}
    """Optional: unwired, the actor keeps every symbol's indicators and matrices warm in its
    durable state (the strategic matrix needs 48 half-hour bars, a week of sessions), so
    a decision layer wired to it later starts with full matrices."""
