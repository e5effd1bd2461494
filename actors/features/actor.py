"""FeaturesActor: closed bars -> model-input matrices and synergies for the decision layers.

Per symbol it runs a `TacticalFeatures` engine on the tactical timeframe (5-minute bars
by default) and a `StrategicFeatures` engine on the strategic timeframe (30-minute). On
each closed bar of a timeframe it publishes that timeframe's matrix once the assembler is
full (TacticalMatrix 60x7, StrategicMatrix 48x13); the strategic engine's MLMI, NWRQK and
FVG signals feed the synergy detector, whose Synergy messages go out on the same
port (`features`). Every message carries the origin_ns of the bar (the tick that closed it).
"""

from dataclasses import dataclass

import msgspec

from actors.features.engine import StrategicFeatures, TacticalFeatures
from actors.matrices import MatrixAssembler
from actors.messages import Bar, StrategicMatrix, Synergy, TacticalMatrix
from actors.synergy import BarSignals, SynergyDetector
from kernel.actor import Actor, Port

BARS_PER_YEAR_OF_DAY_SECONDS = 252 * 23_400


class FeaturesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tactical_timeframe_s: int = 300
    strategic_timeframe_s: int = 1800
    lvn_bin_width: float = 0.25
    """Price width of a volume-profile bin (one ES tick by default)."""
    synergy_window: int = 10
    synergy_min_confidence: float = 0.5


@dataclass
class _SymbolState:
    tactical: TacticalFeatures
    strategic: StrategicFeatures
    synergy: SynergyDetector
    strategic_bars: int = 0


class FeaturesActor(Actor):
    Params = FeaturesParams
    params: FeaturesParams

    async def on_start(self) -> None:
        self.out = self.output("features")
        self.symbols: dict[str, _SymbolState] = {}

    def _state(self, symbol: str) -> _SymbolState:
        state = self.symbols.get(symbol)
        if state is None:
            p = self.params
            state = self.symbols[symbol] = _SymbolState(
                TacticalFeatures(BARS_PER_YEAR_OF_DAY_SECONDS / p.tactical_timeframe_s),
                StrategicFeatures(
                    BARS_PER_YEAR_OF_DAY_SECONDS / p.strategic_timeframe_s, p.lvn_bin_width
                ),
                SynergyDetector(symbol, p.synergy_window, p.synergy_min_confidence),
            )
        return state

    def on_bar(self, msg: Bar) -> None:
        p = self.params
        if msg.timeframe_s == p.tactical_timeframe_s:
            tactical = self._state(msg.symbol).tactical
            tactical.update(msg.open, msg.high, msg.low, msg.close, msg.volume)
            self._publish_matrix(TacticalMatrix, tactical.matrix, tactical.atr, msg)
        elif msg.timeframe_s == p.strategic_timeframe_s:
            state = self._state(msg.symbol)
            strategic = state.strategic
            signals = strategic.update(msg.open, msg.high, msg.low, msg.close, msg.volume)
            self._publish_matrix(StrategicMatrix, strategic.matrix, strategic.atr, msg)
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

    def _publish_matrix(
        self,
        kind: type[TacticalMatrix] | type[StrategicMatrix],
        assembler: MatrixAssembler,
        atr: float,
        bar: Bar,
    ) -> None:
        """Publish the matrix once every row holds a real bar (a model never sees padding)."""
        if not assembler.ready:
            return
        message = kind.from_array(
            assembler.matrix(), symbol=bar.symbol, bar_end_ns=bar.end_ns, close=bar.close, atr=atr
        )
        message.origin_ns = bar.origin_ns
        self.out.publish(message)

    inputs = {Bar: on_bar}
    outputs = {"features": Port(TacticalMatrix, StrategicMatrix, Synergy)}
