"""The feature engines: one closed bar -> the indicators its matrix needs -> one matrix row.

One engine per symbol and timeframe, each building only its own matrix (design §6):
- `TacticalFeatures` (5-minute bars): FVG state, short momentum and the volume surge into
  the tactical 60 x 7 matrix;
- `StrategicFeatures` (30-minute bars): MLMI, NWRQK, LVN, FVG flags, MMD, medium and long
  momentum, volatility and volume-profile skew into the strategic 48 x 13 matrix, and the
  bar's MLMI / NWRQK / FVG signals for the synergy detector.
Rows are written by column name (`TacticalColumn`, `StrategicColumn`), so the schema in
`actors.matrices.schemas` alone decides where a feature lands.

`state()` / `restore()` turn an engine into data and back (the features actor's durable
state, per symbol).

Both run the classic set (`ClassicIndicators`) whole: one numba call per bar that skips
an invalid bar in every indicator at once, cheaper than the separate calls for the few
outputs each engine reads (its unused RSI, MACD and Bollinger cost well under 1 us).
"""

import math
from dataclasses import dataclass

import msgspec
import numpy as np

from actors.indicators import fvg as fvg_out
from actors.indicators.classic import ClassicIndicators, Output
from actors.indicators.fvg import FVG
from actors.indicators.lvn import LVN
from actors.indicators.mlmi import MLMI
from actors.indicators.mlmi_zeiierman import ZeiiermanMLMI
from actors.indicators.mmd import MMD
from actors.indicators.nwrqk import NWRQK
from actors.matrices import (
    STRATEGIC_COLUMNS,
    STRATEGIC_ROWS,
    STRATEGIC_ZSCORE,
    TACTICAL_COLUMNS,
    TACTICAL_ROWS,
    MatrixAssembler,
    StrategicColumn,
    TacticalColumn,
)
from actors.matrices.assembler import AssemblerState

MOMENTUM_SCALE = 5.0
"""The tactical momentum column is tanh(momentum_5 / 5): a 5% move maps to tanh(1)."""


class EngineState(msgspec.Struct, array_like=True):
    """A feature engine as data: each indicator's state (float64 bytes) and its matrix."""

    indicators: list[bytes]
    matrix: AssemblerState


class _Engine:
    """What both engines share: their indicators' and matrix's state as data."""

    matrix: MatrixAssembler

    def _indicators(self) -> tuple:
        raise NotImplementedError

    def state(self) -> EngineState:
        snapshots = [indicator.snapshot().tobytes() for indicator in self._indicators()]
        return EngineState(snapshots, self.matrix.state())

    def restore(self, state: EngineState) -> None:
        """Continue from the `state` of an engine with the same parameters (ValueError,
        from the indicator that does not match, if not)."""
        indicators = self._indicators()
        if len(state.indicators) != len(indicators):
            raise ValueError("not the state of this engine")
        for indicator, data in zip(indicators, state.indicators, strict=True):
            indicator.restore(np.frombuffer(data, dtype=np.float64).copy())
        self.matrix.restore(state.matrix)


@dataclass(frozen=True)
class Signals:
    """The bar's synergy inputs: -1, 0 or +1 each."""

    mlmi: int
    nwrqk: int
    fvg: int


def _sign(value: float) -> int:
    return 0 if not math.isfinite(value) or value == 0 else (1 if value > 0 else -1)


class TacticalFeatures(_Engine):
    """5-minute bars -> the tactical matrix (`matrix`, 60 x 7)."""

    def __init__(self, bars_per_year: float) -> None:
        self.classic = ClassicIndicators(bars_per_year=bars_per_year)
        self.fvg = FVG()
        self.matrix = MatrixAssembler(TACTICAL_ROWS, TACTICAL_COLUMNS)
        self._row = np.zeros(len(TacticalColumn))

    def _indicators(self) -> tuple:
        return (self.classic, self.fvg)

    @property
    def atr(self) -> float:
        """ATR(14) of the latest bar (NaN while warming up)."""
        return float(self.classic.values[Output.ATR])

    def update(self, open_: float, high: float, low: float, close: float, volume: float) -> None:
        """Add a closed bar: its row goes into `matrix`."""
        classic = self.classic.update(high, low, close, volume)
        gap = self.fvg.update(open_, high, low, close, classic[Output.ATR])
        row = self._row
        row[TacticalColumn.FVG_BULLISH_ACTIVE] = gap[fvg_out.BULLISH_ACTIVE]
        row[TacticalColumn.FVG_BEARISH_ACTIVE] = gap[fvg_out.BEARISH_ACTIVE]
        row[TacticalColumn.FVG_NEAREST_LEVEL] = gap[fvg_out.NEAREST_LEVEL]
        row[TacticalColumn.FVG_AGE] = gap[fvg_out.NEAREST_AGE]
        row[TacticalColumn.FVG_MITIGATION_SIGNAL] = gap[fvg_out.MITIGATION]
        row[TacticalColumn.MOMENTUM_5] = math.tanh(classic[Output.MOMENTUM_SHORT] / MOMENTUM_SCALE)
        row[TacticalColumn.VOLUME_RATIO] = classic[Output.VOLUME_FEATURE]
        self.matrix.push(row)


MLMI_FORMS: dict[str, type[MLMI] | type[ZeiiermanMLMI]] = {
    "knn-rsi": MLMI,
    "zeiierman": ZeiiermanMLMI,
}
"""The MLMI forms a strategic engine can compute: this project's kNN over raw RSIs (the
default, which the shipped models were fitted on) and the public original's."""


class StrategicFeatures(_Engine):
    """30-minute bars -> the strategic matrix (`matrix`, 48 x 13) and synergy signals."""

    def __init__(self, bars_per_year: float, lvn_bin_width: float, mlmi: str = "knn-rsi") -> None:
        self.classic = ClassicIndicators(bars_per_year=bars_per_year)
        self.fvg = FVG()
        self.mlmi = MLMI_FORMS[mlmi]()
        self.nwrqk = NWRQK()
        self.lvn = LVN(lvn_bin_width)
        self.mmd = MMD()
        self.matrix = MatrixAssembler(STRATEGIC_ROWS, STRATEGIC_COLUMNS, zscore=STRATEGIC_ZSCORE)
        self._row = np.zeros(len(StrategicColumn))

    def _indicators(self) -> tuple:
        return (self.classic, self.fvg, self.mlmi, self.nwrqk, self.lvn, self.mmd)

    @property
    def atr(self) -> float:
        """ATR(14) of the latest bar (NaN while warming up)."""
        return float(self.classic.values[Output.ATR])

    @property
    def volatility(self) -> float:
        """Annualised realized volatility of the latest bar, raw (NaN while warming up)."""
        return float(self.classic.values[Output.VOLATILITY_ANNUALIZED])

    def update(self, open_: float, high: float, low: float, close: float, volume: float) -> Signals:
        """Add a closed bar: its row goes into `matrix`; return its synergy signals."""
        classic = self.classic.update(high, low, close, volume)
        atr = classic[Output.ATR]
        gap = self.fvg.update(open_, high, low, close, atr)
        mlmi_value, mlmi_signal = self.mlmi.update(close)
        nwrqk_value, nwrqk_slope, nwrqk_signal = self.nwrqk.update(close)
        lvn_distance, lvn_strength, _ = self.lvn.update(high, low, close, volume, atr)
        row = self._row
        row[StrategicColumn.MLMI_VALUE] = mlmi_value
        row[StrategicColumn.MLMI_SIGNAL] = mlmi_signal
        row[StrategicColumn.NWRQK_VALUE] = nwrqk_value
        row[StrategicColumn.NWRQK_SLOPE] = nwrqk_slope
        row[StrategicColumn.LVN_DISTANCE] = lvn_distance
        row[StrategicColumn.LVN_STRENGTH] = lvn_strength
        row[StrategicColumn.FVG_BULLISH] = gap[fvg_out.BULLISH_ACTIVE]
        row[StrategicColumn.FVG_BEARISH] = gap[fvg_out.BEARISH_ACTIVE]
        row[StrategicColumn.MMD_SCORE] = self.mmd.update(close)
        row[StrategicColumn.MOMENTUM_20] = classic[Output.MOMENTUM_MEDIUM]
        row[StrategicColumn.MOMENTUM_50] = classic[Output.MOMENTUM_LONG]
        row[StrategicColumn.VOLATILITY_30] = classic[Output.VOLATILITY]
        row[StrategicColumn.VOLUME_PROFILE_SKEW] = classic[Output.VOLUME_PROFILE_SKEW]
        self.matrix.push(row)
        return Signals(_sign(mlmi_signal), _sign(nwrqk_signal), _sign(gap[fvg_out.SIGNAL]))
