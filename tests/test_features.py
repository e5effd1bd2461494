"""The feature engines: each timeframe's indicators into its matrix, and signals for synergy."""

import msgspec
import numpy as np
import pytest

from actors.features import StrategicFeatures, TacticalFeatures
from actors.indicators.classic import Atr, ClassicIndicators, Output
from actors.indicators.fvg import FVG
from actors.indicators.lvn import LVN
from actors.indicators.mlmi import MLMI
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
)
from actors.synergy import BarSignals, SynergyDetector


def bars(count: int, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 4150.0 + np.cumsum(rng.normal(0.0, 2.0, count))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + rng.exponential(1.0, count)
    low = np.minimum(open_, close) - rng.exponential(1.0, count)
    return np.column_stack((open_, high, low, close, rng.integers(100, 5000, count)))


def _expected_matrices(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two matrices rebuilt from separate indicators, each row filled by column name,
    independently of the engines' code."""
    tactical = MatrixAssembler(TACTICAL_ROWS, TACTICAL_COLUMNS)
    strategic = MatrixAssembler(STRATEGIC_ROWS, STRATEGIC_COLUMNS, zscore=STRATEGIC_ZSCORE)
    classic5, classic30 = (ClassicIndicators(bars_per_year=y) for y in (252 * 78, 252 * 13))
    fvg5, fvg30 = FVG(), FVG()
    mlmi, nwrqk, lvn, mmd = MLMI(), NWRQK(), LVN(0.25), MMD()
    for open_, high, low, close, volume in data:
        c5 = classic5.update(high, low, close, volume).copy()
        g5 = fvg5.update(open_, high, low, close, c5[Output.ATR])
        row5 = {
            "fvg_bullish_active": g5[0],
            "fvg_bearish_active": g5[1],
            "fvg_nearest_level": g5[2],
            "fvg_age": g5[3],
            "fvg_mitigation_signal": g5[4],
            "momentum_5": np.tanh(c5[Output.MOMENTUM_SHORT] / 5),
            "volume_ratio": c5[Output.VOLUME_FEATURE],
        }
        tactical.push(np.array([row5[name] for name in TACTICAL_COLUMNS]))
        c30 = classic30.update(high, low, close, volume)
        g30 = fvg30.update(open_, high, low, close, c30[Output.ATR])
        ml, nw, lv = (
            mlmi.update(close),
            nwrqk.update(close),
            lvn.update(high, low, close, volume, c30[Output.ATR]),
        )
        row30 = {
            "mlmi_value": ml[0],
            "mlmi_signal": ml[1],
            "nwrqk_value": nw[0],
            "nwrqk_slope": nw[1],
            "lvn_distance": lv[0],
            "lvn_strength": lv[1],
            "fvg_bullish": g30[0],
            "fvg_bearish": g30[1],
            "mmd_score": mmd.update(close),
            "momentum_20": c30[Output.MOMENTUM_MEDIUM],
            "momentum_50": c30[Output.MOMENTUM_LONG],
            "volatility_30": c30[Output.VOLATILITY],
            "volume_profile_skew": c30[Output.VOLUME_PROFILE_SKEW],
        }
        strategic.push(np.array([row30[name] for name in STRATEGIC_COLUMNS]))
    return tactical.matrix(), strategic.matrix()


def test_each_engine_fills_its_matrix_by_column_name():
    data = bars(400)
    tactical = TacticalFeatures(bars_per_year=252 * 78)
    strategic = StrategicFeatures(bars_per_year=252 * 13, lvn_bin_width=0.25)
    for row in data:
        tactical.update(*row)
        strategic.update(*row)
    expected_tactical, expected_strategic = _expected_matrices(data)
    assert tactical.matrix.matrix().shape == (60, 7)
    assert strategic.matrix.matrix().shape == (48, 13)
    np.testing.assert_array_equal(tactical.matrix.matrix(), expected_tactical)
    np.testing.assert_array_equal(strategic.matrix.matrix(), expected_strategic)
    assert np.isfinite(expected_tactical).all() and np.isfinite(expected_strategic).all()
    assert abs(strategic.matrix.matrix()[-1, StrategicColumn.NWRQK_VALUE]) < 10  # z-scored
    atr = Atr(14)
    last_atr = [atr.update(high, low, close) for _, high, low, close, _ in data][-1]
    assert tactical.atr == strategic.atr == last_atr  # the ATR the matrix messages carry


def test_the_strategic_engine_computes_either_mlmi_form():
    from actors.indicators import mlmi
    from actors.indicators.mlmi_zeiierman import ZeiiermanMLMI

    data = bars(400)
    engine = StrategicFeatures(bars_per_year=252 * 13, lvn_bin_width=0.25, mlmi="zeiierman")
    signals = [engine.update(*row).mlmi for row in data]
    expected = ZeiiermanMLMI().run(data[:, 3])[:, mlmi.SIGNAL]
    np.testing.assert_array_equal(signals, np.nan_to_num(expected).astype(int))
    assert any(signals)
    default = StrategicFeatures(bars_per_year=252 * 13, lvn_bin_width=0.25)
    with pytest.raises(ValueError):  # the other form's state is not this engine's
        default.restore(engine.state())


def test_each_engine_builds_only_its_own_matrix():
    tactical = TacticalFeatures(bars_per_year=252 * 78)
    strategic = StrategicFeatures(bars_per_year=252 * 13, lvn_bin_width=0.25)
    assert tactical.matrix.columns == TACTICAL_COLUMNS
    assert strategic.matrix.columns == STRATEGIC_COLUMNS
    # The strategic-only indicators are not run on the tactical bars.
    assert not {"mlmi", "nwrqk", "lvn", "mmd"} & set(vars(tactical))


def test_signals_drive_the_synergy_detector():
    data = bars(3000, seed=8)
    engine = StrategicFeatures(bars_per_year=252 * 13, lvn_bin_width=0.25)
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
    strategic = next(m for m in reversed(out.messages) if type(m) is StrategicMatrix)
    assert strategic.volatility == actor.symbols["ES"].strategic.volatility > 0  # raw, annual
    assert np.isfinite(last.array()).all()


async def test_the_actor_continues_every_symbol_from_its_durable_state(capture):
    """Matrices and synergies of two symbols, interrupted half way and resumed from the
    saved state (encoded and decoded, as the kernel commits it), are exactly those of an
    uninterrupted run: indicators, matrix rows, z-score windows and pending signals all
    carried over, per symbol."""
    from actors.features import FeaturesActor, FeaturesParams
    from actors.features.actor import FeaturesState
    from actors.messages import AnyMessage, Bar
    from kernel.codec import Codec
    from kernel.messages import Message
    from tests.helpers import actor_context

    codec = Codec.from_union(AnyMessage)
    series = {"ES": bars(900, seed=8).tolist(), "NQ": bars(900, seed=9).tolist()}
    messages = [
        Bar(
            symbol=symbol,
            timeframe_s=timeframe,
            start_ns=i * 10**9,
            end_ns=(i + 1) * 10**9,
            open=row[0],
            high=row[1],
            low=row[2],
            close=row[3],
            volume=int(row[4]),
            origin_ns=i + 1,
        )
        for i in range(900)
        for symbol in ("ES", "NQ")
        for timeframe in (300, 1800)
        for row in (series[symbol][i],)
    ]

    async def run(tag: str, bars_in: list[Bar], state: FeaturesState | None = None):
        out = capture(f"features-{tag}", codec)
        actor = FeaturesActor(
            FeaturesParams(synergy_window=20), actor_context("features", {"features": out.stream})
        )
        if state is not None:
            actor.state = state
        await actor.on_start()
        for bar in bars_in:
            actor.on_message(bar)
        return actor, out.messages

    envelope = set(Message.__struct_fields__)

    def domain(msgs: list) -> list[bytes]:
        return [
            msgspec.msgpack.encode(
                [getattr(m, f) for f in m.__struct_fields__ if f not in envelope]
            )
            for m in msgs
        ]

    _, whole = await run("whole", messages)
    half = len(messages) // 2 + 2  # between the two symbols of one bar time
    first, before = await run("first", messages[:half])
    saved = msgspec.msgpack.decode(
        msgspec.msgpack.encode(first.state_to_save()), type=FeaturesState
    )
    assert set(saved.symbols) == {"ES", "NQ"}
    _, after = await run("second", messages[half:], saved)
    assert {m.symbol for m in whole} == {"ES", "NQ"}
    assert domain(before) + domain(after) == domain(whole)
    _, cold = await run("cold", messages[half:])
    assert domain(before) + domain(cold) != domain(whole)  # the state matters
