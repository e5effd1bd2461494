"""The feature engine: every indicator into both matrices, and signals for synergy."""

import numpy as np

from actors.features import FeatureEngine
from actors.indicators.classic import ClassicIndicators, Output
from actors.indicators.fvg import FVG
from actors.indicators.nwrqk import NWRQK
from actors.synergy import BarSignals, SynergyDetector


def bars(count: int, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 4150.0 + np.cumsum(rng.normal(0.0, 2.0, count))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + rng.exponential(1.0, count)
    low = np.minimum(open_, close) - rng.exponential(1.0, count)
    return np.column_stack((open_, high, low, close, rng.integers(100, 5000, count)))


def test_rows_hold_the_indicators_of_the_bar():
    data = bars(400)
    engine = FeatureEngine(bars_per_year=252 * 78, lvn_bin_width=0.25)
    classic = ClassicIndicators(bars_per_year=252 * 78)
    fvg, nwrqk = FVG(), NWRQK()
    for open_, high, low, close, volume in data:
        engine.update(open_, high, low, close, volume)
        values = classic.update(high, low, close, volume)
        gap = fvg.update(open_, high, low, close, values[Output.ATR])
        trend = nwrqk.update(close)
    tactical, strategic = engine.tactical.matrix(), engine.strategic.matrix()
    assert tactical.shape == (60, 7) and strategic.shape == (48, 13)
    assert np.isfinite(tactical).all() and np.isfinite(strategic).all()
    np.testing.assert_allclose(tactical[-1, :5], np.nan_to_num(np.array(gap[:5])), rtol=1e-6)
    assert tactical[-1, 5] == np.float32(np.tanh(values[Output.MOMENTUM_SHORT] / 5))
    assert strategic[-1, 6] == gap[0] and strategic[-1, 7] == gap[1]
    assert abs(strategic[-1, 2]) < 10  # nwrqk_value is z-scored, not a price
    assert np.isfinite(trend[0])


def test_signals_drive_the_synergy_detector():
    data = bars(3000, seed=8)
    engine = FeatureEngine(bars_per_year=252 * 78, lvn_bin_width=0.25)
    detector = SynergyDetector("ES", window=20)
    fired = counts = 0
    for i, (open_, high, low, close, volume) in enumerate(data):
        signals = engine.update(open_, high, low, close, volume)
        counts += abs(signals.mlmi) + abs(signals.nwrqk) + abs(signals.fvg)
        synergy = detector.on_bar(BarSignals(i, i, close, signals.mlmi, signals.nwrqk, signals.fvg))
        fired += synergy is not None
    assert counts > 0
    assert fired > 0, "a 3000-bar random walk should produce at least one synergy"
