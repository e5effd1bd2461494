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


async def test_the_actor_publishes_matrices_and_synergies_on_a_real_ring(capture):
    from actors.features import FeaturesActor, FeaturesParams
    from actors.messages import AnyMessage, Bar, StrategicMatrix, Synergy, TacticalMatrix
    from kernel.codec import Codec
    from tests.helpers import actor_context

    out = capture("features", Codec.from_union(AnyMessage))
    params = FeaturesParams(synergy_window=20)
    actor = FeaturesActor(params, actor_context("features", {"features": out.stream}))
    await actor.on_start()
    data = bars(3000, seed=8)
    for i, row in enumerate(data.tolist()):  # plain floats, as decoded messages hold
        open_, high, low, close, volume = row
        for timeframe in (300, 1800):
            actor.on_message(
                Bar(
                    symbol="ES",
                    timeframe_s=timeframe,
                    start_ns=i * 10**9,
                    end_ns=(i + 1) * 10**9,
                    open=open_,
                    high=high,
                    low=low,
                    close=close,
                    volume=int(volume),
                    origin_ns=i + 1,
                )
            )
    kinds = [type(m) for m in out.messages]
    assert kinds.count(TacticalMatrix) == 3000 - 59
    assert kinds.count(StrategicMatrix) == 3000 - 47
    assert kinds.count(Synergy) > 0
    last = next(m for m in reversed(out.messages) if type(m) is TacticalMatrix)
    assert last.array().shape == (60, 7) and last.origin_ns == 3000
    assert np.isfinite(last.array()).all()
