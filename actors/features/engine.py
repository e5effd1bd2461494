"""The feature engine: one closed bar -> every indicator -> both matrix rows -> signals.

One engine per symbol and bar stream. `update` runs the classic set and FVG, MLMI,
NWRQK, LVN and MMD on the bar, pushes the tactical (design §6: FVG state, momentum,
volume) and strategic (13 columns) rows into their assemblers and returns the three
synergy signals of the bar. The tactical layer reads `tactical.matrix()` on 5-minute
bars, the strategic layer `strategic.matrix()` on 30-minute bars.
"""

import math
from dataclasses import dataclass

import numpy as np

from actors.indicators.classic import ClassicIndicators, Output
from actors.indicators.fvg import FVG
from actors.indicators.lvn import LVN
from actors.indicators.mlmi import MLMI
from actors.indicators.mmd import MMD
from actors.indicators.nwrqk import NWRQK
from actors.matrices import STRATEGIC_COLUMNS, STRATEGIC_ZSCORE, TACTICAL_COLUMNS, MatrixAssembler
from actors.matrices.schemas import STRATEGIC_ROWS, TACTICAL_ROWS


@dataclass(frozen=True)
class Signals:
    """The bar's synergy inputs: -1, 0 or +1 each."""

    mlmi: int
    nwrqk: int
    fvg: int


def _sign(value: float) -> int:
    return 0 if not math.isfinite(value) or value == 0 else (1 if value > 0 else -1)


class FeatureEngine:
    def __init__(self, bars_per_year: float, lvn_bin_width: float) -> None:
        self.classic = ClassicIndicators(bars_per_year=bars_per_year)
        self.fvg = FVG()
        self.mlmi = MLMI()
        self.nwrqk = NWRQK()
        self.lvn = LVN(lvn_bin_width)
        self.mmd = MMD()
        self.tactical = MatrixAssembler(TACTICAL_ROWS, TACTICAL_COLUMNS)
        self.strategic = MatrixAssembler(STRATEGIC_ROWS, STRATEGIC_COLUMNS, zscore=STRATEGIC_ZSCORE)
        self._tactical_row = np.zeros(len(TACTICAL_COLUMNS))
        self._strategic_row = np.zeros(len(STRATEGIC_COLUMNS))

    def update(self, open_: float, high: float, low: float, close: float, volume: float) -> Signals:
        classic = self.classic.update(high, low, close, volume)
        atr = classic[Output.ATR]
        bull, bear, level, age, mitigation, fvg_signal = self.fvg.update(
            open_, high, low, close, atr
        )
        mlmi_value, mlmi_signal = self.mlmi.update(close)
        nwrqk_value, nwrqk_slope, nwrqk_signal = self.nwrqk.update(close)
        lvn_distance, lvn_strength, _ = self.lvn.update(high, low, close, volume, atr)
        mmd_score = self.mmd.update(close)

        tactical = self._tactical_row
        tactical[:5] = (bull, bear, level, age, mitigation)
        tactical[5] = math.tanh(classic[Output.MOMENTUM_SHORT] / 5.0)
        tactical[6] = classic[Output.VOLUME_FEATURE]
        self.tactical.push(tactical)

        strategic = self._strategic_row
        strategic[:9] = (
            mlmi_value,
            mlmi_signal,
            nwrqk_value,
            nwrqk_slope,
            lvn_distance,
            lvn_strength,
            bull,
            bear,
            mmd_score,
        )
        strategic[9] = classic[Output.MOMENTUM_MEDIUM]
        strategic[10] = classic[Output.MOMENTUM_LONG]
        strategic[11] = classic[Output.VOLATILITY]
        strategic[12] = classic[Output.VOLUME_PROFILE_SKEW]
        self.strategic.push(strategic)
        return Signals(_sign(mlmi_signal), _sign(nwrqk_signal), _sign(fvg_signal))
