"""Classic indicators: bar-by-bar numba updates against whole-array numpy references,
known answers, warm-up lengths, skipped bars, snapshots and the per-bar cost of the set.

Tolerance of the reference comparisons: |got - ref| <= 1e-9 + 1e-9 * |ref| for outputs in
price units, percent, RSI points, ratios and skewness (all of scale >= ~0.1 here), and
|got - ref| <= 1e-9 * |ref| (relative only) for realized volatility, whose values are
~1e-3. NaN must be at the same bars in both.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from actors.indicators.classic import (
    Atr,
    Bollinger,
    ClassicIndicators,
    Indicator,
    Macd,
    Momentum,
    Output,
    RealizedVolatility,
    Rsi,
    VolumeProfileSkew,
    VolumeRatio,
    rsi_update,
)

BARS_PER_YEAR = 252.0 * 13  # 30-minute bars of a 6.5-hour session
TOL = {"rtol": 1e-9, "atol": 1e-9}
RELATIVE_TOL = {"rtol": 1e-9, "atol": 0.0}
FIELDS = ("high", "low", "close", "volume")


class Bars(NamedTuple):
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def _bars_from_close(close: np.ndarray, scale: float, rng: np.random.Generator) -> Bars:
    """Bars around a close path: open = previous close, wicks of random size `scale`."""
    open_ = np.r_[close[0], close[:-1]]
    wicks = np.abs(rng.standard_normal((2, close.size))) * scale
    volume = np.round(rng.lognormal(7.0, 0.6, close.size))
    return Bars(
        np.maximum(open_, close) + wicks[0], np.minimum(open_, close) - wicks[1], close, volume
    )


def _geometric(n: int, drift: float, vol: float, start: float, seed: int) -> Bars:
    """A geometric random walk: log returns N(drift, vol^2) per bar."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(drift + vol * rng.standard_normal(n)))
    return _bars_from_close(close, vol * start, rng)


def _spread(n: int, seed: int) -> Bars:
    """An arithmetic random walk crossing zero, like a calendar spread's price."""
    rng = np.random.default_rng(seed)
    close = 2.0 + np.cumsum(0.25 * rng.standard_normal(n))
    assert close.min() < 0 < close.max()
    return _bars_from_close(close, 0.25, rng)


SERIES = {
    "random_walk": _geometric(5000, 0.0, 0.004, 100.0, 1),
    "uptrend": _geometric(5000, 0.002, 0.003, 100.0, 2),
    "downtrend": _geometric(5000, -0.0015, 0.002, 100.0, 3),
    "index_level": _geometric(5000, 0.0001, 0.001, 5000.0, 4),
}
SPREAD = _spread(5000, 5)
STAIRCASE = Bars(
    np.arange(5000) * 0.25 + 100.5,
    np.arange(5000) * 0.25 + 99.5,
    np.arange(5000) * 0.25 + 100.0,
    np.full(5000, 1000.0),
)  # every close higher than the one before: RSI is 100 throughout


def _feed(update: Callable[..., object], bars: Bars, fields: tuple[str, ...]) -> np.ndarray:
    """Feed the bars one at a time; the outputs as a (bars,) or (bars, values) array."""
    columns = [getattr(bars, field).tolist() for field in fields]
    return np.array([update(*row) for row in zip(*columns, strict=True)], dtype=float)


# Whole-array references -----------------------------------------------------------------


def _smooth(seed: float, x: np.ndarray, alpha: float) -> np.ndarray:
    """y_0 = seed, y_t = (1 - alpha) y_{t-1} + alpha x_t (x_0 unused), in closed form as a
    convolution: y_t = (1 - alpha)^t seed + sum_{i=1..t} alpha (1 - alpha)^(t - i) x_i."""
    decay = (1.0 - alpha) ** np.arange(x.size)
    y = seed * decay
    y[1:] += np.convolve(x[1:], alpha * decay)[: x.size - 1]
    return y


def _nan_head(values: np.ndarray, head: int) -> np.ndarray:
    return np.r_[np.full(head, np.nan), values]


def ref_atr(b: Bars, n: int) -> np.ndarray:
    prev = b.close[:-1]
    tr = np.r_[
        b.high[0] - b.low[0],
        np.maximum.reduce(
            [b.high[1:] - b.low[1:], np.abs(b.high[1:] - prev), np.abs(b.low[1:] - prev)]
        ),
    ]
    return _nan_head(_smooth(tr[:n].mean(), tr[n - 1 :], 1.0 / n), n - 1)


def ref_rsi(close: np.ndarray, n: int) -> np.ndarray:
    change = np.diff(close)
    gain = _smooth(np.maximum(change, 0)[:n].mean(), np.maximum(change, 0)[n - 1 :], 1.0 / n)
    loss = _smooth(np.maximum(-change, 0)[:n].mean(), np.maximum(-change, 0)[n - 1 :], 1.0 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + gain / loss)
    return _nan_head(np.where((gain == 0) & (loss == 0), 50.0, rsi), n)


def ref_macd(close: np.ndarray, fast: int, slow: int, signal: int) -> np.ndarray:
    line = _smooth(close[0], close, 2 / (fast + 1)) - _smooth(close[0], close, 2 / (slow + 1))
    line[: slow - 1] = np.nan
    sig = _nan_head(_smooth(line[slow - 1], line[slow - 1 :], 2 / (signal + 1)), slow - 1)
    sig[: slow + signal - 2] = np.nan
    return np.column_stack([line, sig, line - sig])


def ref_bollinger(close: np.ndarray, n: int, width: float) -> np.ndarray:
    windows = sliding_window_view(close, n)
    mid, sd = windows.mean(axis=1), windows.std(axis=1)
    bands = np.column_stack([mid, mid + width * sd, mid - width * sd])
    return np.vstack([np.full((n - 1, 3), np.nan), bands])


def ref_momentum(close: np.ndarray, k: int) -> np.ndarray:
    return _nan_head((close[k:] / close[:-k] - 1.0) * 100.0, k)


def ref_volatility(close: np.ndarray, n: int, bars_per_year: float) -> np.ndarray:
    # ln(C_t / C_{t-1}), not diff(ln C): differencing logs of ~4.6 loses digits that a
    # window of two nearly equal returns (n = 2) needs to the last 1e-9.
    returns = np.log(close[1:] / close[:-1])
    per_bar = _nan_head(sliding_window_view(returns, n).std(axis=1, ddof=1), n)
    return np.column_stack([per_bar, per_bar * math.sqrt(bars_per_year)])


def ref_volume_ratio(volume: np.ndarray, n: int) -> np.ndarray:
    ratio = volume / _smooth(volume[0], volume, 2 / (n + 1))
    ratio[: n - 1] = np.nan
    return np.column_stack([ratio, np.tanh(np.log(np.maximum(ratio, 1.0)))])


def ref_skew(b: Bars, n: int) -> np.ndarray:
    prices = sliding_window_view((b.high + b.low + b.close) / 3, n)
    weights = sliding_window_view(b.volume, n)
    mean = np.average(prices, weights=weights, axis=1)
    deviation = prices - mean[:, None]
    m2 = np.average(deviation**2, weights=weights, axis=1)
    m3 = np.average(deviation**3, weights=weights, axis=1)
    return _nan_head(m3 / m2**1.5, n - 1)


# Against the references -----------------------------------------------------------------

PRICE_SERIES = {**SERIES, "spread": SPREAD, "staircase": STAIRCASE}
POSITIVE_SERIES = {**SERIES, "staircase": STAIRCASE}


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize("n", [14, 3, 1])
def test_atr_matches_reference(series, n):
    b = PRICE_SERIES[series]
    got = _feed(Atr(n).update, b, ("high", "low", "close"))
    np.testing.assert_allclose(got, ref_atr(b, n), **TOL)


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize("n", [14, 7])
def test_rsi_matches_reference(series, n):
    b = PRICE_SERIES[series]
    got = _feed(Rsi(n).update, b, ("close",))
    np.testing.assert_allclose(got, ref_rsi(b.close, n), **TOL)
    if series == "staircase":
        assert np.all(got[n:] == 100.0)


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize("periods", [(12, 26, 9), (5, 35, 5)])
def test_macd_matches_reference(series, periods):
    b = PRICE_SERIES[series]
    got = _feed(Macd(*periods).update, b, ("close",))
    np.testing.assert_allclose(got, ref_macd(b.close, *periods), **TOL)


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize(("n", "width"), [(20, 2.0), (10, 1.5)])
def test_bollinger_matches_reference(series, n, width):
    b = PRICE_SERIES[series]
    got = _feed(Bollinger(n, width).update, b, ("close",))
    np.testing.assert_allclose(got, ref_bollinger(b.close, n, width), **TOL)


@pytest.mark.parametrize("series", POSITIVE_SERIES)
@pytest.mark.parametrize("k", [5, 20, 50])
def test_momentum_matches_reference(series, k):
    b = POSITIVE_SERIES[series]
    got = _feed(Momentum(k).update, b, ("close",))
    np.testing.assert_allclose(got, ref_momentum(b.close, k), **TOL)


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("n", [30, 2])
def test_realized_volatility_matches_reference(series, n):
    b = SERIES[series]
    got = _feed(RealizedVolatility(n, bars_per_year=BARS_PER_YEAR).update, b, ("close",))
    np.testing.assert_allclose(got, ref_volatility(b.close, n, BARS_PER_YEAR), **RELATIVE_TOL)


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("n", [20, 5])
def test_volume_ratio_matches_reference(series, n):
    b = SERIES[series]
    got = _feed(VolumeRatio(n).update, b, ("volume",))
    np.testing.assert_allclose(got, ref_volume_ratio(b.volume, n), **TOL)


@pytest.mark.parametrize("series", PRICE_SERIES)
@pytest.mark.parametrize("n", [48, 10])
def test_volume_profile_skew_matches_reference(series, n):
    b = PRICE_SERIES[series]
    got = _feed(VolumeProfileSkew(n).update, b, FIELDS)
    np.testing.assert_allclose(got, ref_skew(b, n), **TOL)


# Known answers -----------------------------------------------------------------------------

# The 14-period example of Wilder's "New Concepts in Technical Trading Systems" as tabulated
# by StockCharts (ChartSchool, "Relative Strength Index"), closes to four decimals, and the
# RSI values published there for the 15th close on.
WILDER_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
    45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
    46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
    43.4205, 42.6628, 43.1314,
]  # fmt: skip
WILDER_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
    41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]  # fmt: skip


def test_rsi_reproduces_wilders_published_example():
    rsi = Rsi(14)
    got = [rsi.update(close) for close in WILDER_CLOSES]
    assert all(math.isnan(value) for value in got[:14])
    np.testing.assert_allclose(got[14:], WILDER_RSI, rtol=0, atol=0.01)


def test_rsi_of_the_two_decimal_closes_is_70_46_not_70_53():
    """The example as often quoted, rounded to cents: 14 changes with gains summing to 3.34
    and losses to 1.40, so RSI = 100 * 3.34 / 4.74 = 70.46. The published 70.53 belongs to
    the four-decimal closes above."""
    closes = [round(close, 2) for close in WILDER_CLOSES[:15]]
    assert closes[:3] == [44.34, 44.09, 44.15] and closes[-1] == 46.28
    rsi = Rsi(14)
    got = [rsi.update(close) for close in closes][-1]
    assert got == pytest.approx(100 * 3.34 / 4.74, abs=1e-9)
    assert round(got, 2) == 70.46


def test_atr_known_values():
    # TR: 1 (first bar: H - L), 1 (|10.5 - 9.5|), 1.75 (gap up: |12 - 10.25|),
    # 2.25 (|9.25 - 11.5|), 0.5 (H - L). ATR(3): mean(1, 1, 1.75) = 1.25,
    # then (2 * 1.25 + 2.25) / 3 = 19/12, then (2 * 19/12 + 0.5) / 3 = 11/9.
    high = [10.0, 10.5, 12.0, 11.25, 9.75]
    low = [9.0, 9.75, 11.0, 9.25, 9.25]
    close = [9.5, 10.25, 11.5, 9.5, 9.5]
    atr = Atr(3)
    got = [atr.update(*bar) for bar in zip(high, low, close, strict=True)]
    np.testing.assert_allclose(got, [np.nan, np.nan, 1.25, 19 / 12, 11 / 9], rtol=1e-15)


def test_atr_of_constant_range_bars_is_the_range():
    atr = Atr(14)
    got = [atr.update(101.0 + i, 99.0 + i, 100.0 + i) for i in range(40)]
    assert got[13:] == [2.0] * 27


def test_macd_known_values():
    # fast 1 (EMA = close), slow 2 (alpha 2/3): EMA_slow = 1, 5/3, 23/9, 95/27;
    # MACD from bar 2: 1/3, 4/9, 13/27; signal (alpha 2/3) seeded 1/3 at bar 2, reported
    # from bar 3: 11/27, 37/81; histogram 1/27, 2/81.
    macd = Macd(1, 2, 2)
    got = np.array([macd.update(close) for close in (1.0, 2.0, 3.0, 4.0)])
    expected = [
        [np.nan, np.nan, np.nan],
        [1 / 3, np.nan, np.nan],
        [4 / 9, 11 / 27, 1 / 27],
        [13 / 27, 37 / 81, 2 / 81],
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_bollinger_known_values():
    bollinger = Bollinger(5, 2.0)
    got = [bollinger.update(close) for close in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)]
    # population sd of 1..5 is sqrt(2)
    np.testing.assert_allclose(got[4], [3.0, 3.0 + 2 * math.sqrt(2), 3.0 - 2 * math.sqrt(2)])
    np.testing.assert_allclose(got[5], [4.0, 4.0 + 2 * math.sqrt(2), 4.0 - 2 * math.sqrt(2)])


def test_momentum_known_values():
    momentum = Momentum(2)
    got = [momentum.update(close) for close in (100.0, 50.0, 110.0, 75.0)]
    np.testing.assert_allclose(got, [np.nan, np.nan, 10.0, 50.0], rtol=1e-15)


def test_realized_volatility_known_values():
    # log returns 0.01, 0.02, -0.01: deviations from the mean 1/300, 4/300, -5/300,
    # sample variance (1 + 16 + 25) / 90000 / 2, sd = sqrt(21) / 300.
    volatility = RealizedVolatility(3, bars_per_year=100.0)
    got = [volatility.update(math.exp(x)) for x in (0.0, 0.01, 0.03, 0.02)]
    assert all(math.isnan(v) for v in got[2])
    np.testing.assert_allclose(got[3], [math.sqrt(21) / 300, math.sqrt(21) / 30], rtol=1e-9)


def test_volume_ratio_known_values():
    ratio = VolumeRatio(20)
    got = [ratio.update(volume) for volume in [100.0] * 19 + [300.0, 100.0]]
    assert all(math.isnan(value) for value in got[18])
    assert got[19][0] == pytest.approx(300 / (100 + 2 / 21 * 200), rel=1e-14)  # 2.52
    assert got[19][1] == pytest.approx(math.tanh(math.log(2.52)), rel=1e-14)
    assert got[20][0] < 1.0 and got[20][1] == 0.0  # below average: feature 0


def test_volume_profile_skew_known_values():
    skew = VolumeProfileSkew(3)
    # typical prices 1, 1, 4 (H = L = C) with equal volume: mean 2, deviations -1, -1, 2,
    # m2 = 2, m3 = 2, skew = 2 / 2^1.5 = 1 / sqrt(2).
    got = [skew.update(p, p, p, 10.0) for p in (1.0, 1.0, 4.0)]
    assert got[2] == pytest.approx(1 / math.sqrt(2), rel=1e-14)
    # prices 1 and 4 with volumes 20 and 10: the same profile, weighted by volume
    weighted = VolumeProfileSkew(2)
    got = [weighted.update(p, p, p, v) for p, v in ((1.0, 20.0), (4.0, 10.0))]
    assert got[1] == pytest.approx(1 / math.sqrt(2), rel=1e-14)
    # the volume at the high price instead: the mirror image
    mirrored = VolumeProfileSkew(2)
    got = [mirrored.update(p, p, p, v) for p, v in ((1.0, 10.0), (4.0, 20.0))]
    assert got[1] == pytest.approx(-1 / math.sqrt(2), rel=1e-14)


def test_volume_profile_skew_edge_cases():
    skew = VolumeProfileSkew(3)
    flat = [skew.update(101.3, 99.1, 100.7, v) for v in (5.0, 9.0, 1.0)]
    assert flat[2] == 0.0  # one price: no spread, exactly zero
    quiet = VolumeProfileSkew(2)
    assert math.isnan([quiet.update(p, p, p, 0.0) for p in (1.0, 2.0)][1])  # no volume
    lone = VolumeProfileSkew(2)
    assert [lone.update(p, p, p, v) for p, v in ((1.0, 0.0), (2.0, 7.0))][1] == 0.0


def test_volume_ratio_is_nan_until_volume_trades():
    ratio = VolumeRatio(2)
    got = [ratio.update(volume) for volume in (0.0, 0.0, 0.0, 10.0)]
    assert all(math.isnan(v) for pair in got[:3] for v in pair)
    assert got[3] == pytest.approx((10.0 / (2 / 3 * 10.0), math.tanh(math.log(1.5))))


def test_rsi_of_a_flat_market_is_50():
    rsi = Rsi(3)
    assert [rsi.update(100.0) for _ in range(6)][3:] == [50.0, 50.0, 50.0]


# Warm-up, skipped bars, snapshots ----------------------------------------------------------


class Case(NamedTuple):
    make: Callable[[], Indicator]
    fields: tuple[str, ...]
    warmup: int


CASES = {
    "atr": Case(lambda: Atr(), ("high", "low", "close"), 14),
    "rsi": Case(lambda: Rsi(), ("close",), 15),
    "macd": Case(lambda: Macd(), ("close",), 34),
    "bollinger": Case(lambda: Bollinger(), ("close",), 20),
    "momentum_5": Case(lambda: Momentum(5), ("close",), 6),
    "momentum_20": Case(lambda: Momentum(20), ("close",), 21),
    "momentum_50": Case(lambda: Momentum(50), ("close",), 51),
    "volatility": Case(lambda: RealizedVolatility(bars_per_year=BARS_PER_YEAR), ("close",), 31),
    "volume_ratio": Case(lambda: VolumeRatio(), ("volume",), 20),
    "skew": Case(lambda: VolumeProfileSkew(), FIELDS, 48),
}


@pytest.mark.parametrize("name", CASES)
def test_warmup_lengths(name):
    case = CASES[name]
    indicator = case.make()
    assert indicator.warmup == case.warmup
    got = _feed(indicator.update, SERIES["random_walk"], case.fields).reshape(5000, -1)
    first_finite = np.isfinite(got).all(axis=1).argmax()
    assert first_finite == case.warmup - 1
    assert np.isfinite(got[first_finite:]).all()


def test_macd_line_comes_before_its_signal():
    got = _feed(Macd(12, 26, 9).update, SERIES["random_walk"], ("close",))
    assert np.isnan(got[24, 0]) and np.isfinite(got[25, 0])
    assert np.isnan(got[32, 1:]).all() and np.isfinite(got[33, 1:]).all()


def _corrupt(bars: Bars, fields: tuple[str, ...], bad: dict[int, float]) -> Bars:
    """Put bad[i] into one of `fields` of bar i, cycling through the fields."""
    columns = {name: getattr(bars, name).copy() for name in FIELDS}
    for j, (i, value) in enumerate(bad.items()):
        columns[fields[j % len(fields)]][i] = value
    return Bars(**columns)


BAD_BARS = {0: np.nan, 7: np.inf, 60: -np.inf, 61: np.nan, 62: np.nan, 2000: np.inf}


@pytest.mark.parametrize("name", CASES)
def test_a_bad_bar_is_skipped_and_leaves_the_state_unchanged(name):
    case = CASES[name]
    clean = SERIES["random_walk"]
    dirty = _corrupt(clean, case.fields, BAD_BARS)
    indicator = case.make()
    outputs = []
    for i, row in enumerate(zip(*(getattr(dirty, f).tolist() for f in case.fields), strict=True)):
        before = indicator.snapshot()
        outputs.append(indicator.update(*row))
        if i in BAD_BARS:
            assert np.array_equal(indicator.state, before, equal_nan=True), i
    got = np.array(outputs, dtype=float).reshape(5000, -1)
    bad = np.array(sorted(BAD_BARS))
    assert np.isnan(got[bad]).all()
    kept = np.delete(np.arange(5000), bad)
    without = _feed(case.make().update, Bars(*(c[kept] for c in clean)), case.fields)
    np.testing.assert_array_equal(got[kept], without.reshape(kept.size, -1))


@pytest.mark.parametrize(
    "make", [lambda: Momentum(5), lambda: RealizedVolatility(5, bars_per_year=1.0)]
)
def test_a_non_positive_close_is_skipped_where_closes_are_divided_or_logged(make):
    indicator = make()
    closes = [100.0 + i for i in range(10)]
    clean = [indicator.update(close) for close in closes]
    indicator = make()
    dirty = [indicator.update(close) for close in [*closes[:8], 0.0, -3.0, *closes[8:]]]
    assert all(np.isnan(dirty[8:10]).flat)
    np.testing.assert_array_equal(dirty[:8] + dirty[10:], clean)


@pytest.mark.parametrize("make", [lambda: VolumeRatio(3), lambda: VolumeProfileSkew(3)])
def test_a_negative_volume_is_skipped(make):
    def run(volumes: list[float]) -> list[object]:
        indicator = make()
        if isinstance(indicator, VolumeRatio):
            return [indicator.update(v) for v in volumes]
        return [indicator.update(10.0 + v % 7, 9.0, 9.5, v) for v in volumes]

    volumes = [float(v) for v in range(1, 9)]
    dirty = run([*volumes[:5], -1.0, *volumes[5:]])
    assert np.isnan(dirty[5]).all()
    np.testing.assert_array_equal(dirty[:5] + dirty[6:], run(volumes))


@pytest.mark.parametrize("name", CASES)
def test_snapshot_and_restore_continue_exactly(name):
    case = CASES[name]
    b = SERIES["uptrend"]
    first, rest = Bars(*(c[:2500] for c in b)), Bars(*(c[2500:] for c in b))
    indicator = case.make()
    _feed(indicator.update, first, case.fields)
    snapshot = indicator.snapshot()
    expected = _feed(indicator.update, rest, case.fields)
    restored = case.make()
    restored.restore(snapshot)
    np.testing.assert_array_equal(_feed(restored.update, rest, case.fields), expected)


@pytest.mark.parametrize(
    ("indicator", "other"),
    [
        (Rsi(14), Rsi(7)),  # same shape, other parameters
        (Bollinger(20, 2.0), Bollinger(20, 2.5)),
        (Momentum(5), Momentum(20)),  # other shape
    ],
)
def test_restore_rejects_a_snapshot_of_other_parameters(indicator, other):
    before = indicator.snapshot()
    with pytest.raises(ValueError, match="not a snapshot"):
        indicator.restore(other.snapshot())
    np.testing.assert_array_equal(indicator.state, before)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Atr(0),
        lambda: Rsi(1.5),
        lambda: Macd(26, 12, 9),
        lambda: Macd(12, 12, 9),
        lambda: Bollinger(20, -1.0),
        lambda: Bollinger(20, math.nan),
        lambda: Momentum(0),
        lambda: RealizedVolatility(1, bars_per_year=252.0),
        lambda: RealizedVolatility(30, bars_per_year=0.0),
        lambda: VolumeRatio(True),
        lambda: VolumeProfileSkew(1),
        lambda: ClassicIndicators(bars_per_year=1.0, momentum_lags=(5, 20)),
    ],
)
def test_invalid_parameters_are_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_kernels_run_inside_other_numba_code():
    @numba.njit
    def rsi_series(closes: np.ndarray, state: np.ndarray) -> np.ndarray:
        out = np.empty_like(closes)
        for i in range(closes.size):
            out[i] = rsi_update(state, closes[i])
        return out

    closes = SERIES["random_walk"].close
    got = rsi_series(closes, Rsi(14).state)
    np.testing.assert_array_equal(got, _feed(Rsi(14).update, SERIES["random_walk"], ("close",)))


# The whole set -----------------------------------------------------------------------------


def _run_set(indicators: ClassicIndicators, bars: Bars) -> np.ndarray:
    return np.array([indicators.update(*row).copy() for row in zip(*bars, strict=True)])


def test_classic_indicators_equal_the_standalone_indicators():
    b = SERIES["random_walk"]
    got = _run_set(ClassicIndicators(bars_per_year=BARS_PER_YEAR), b)
    assert got.shape == (5000, len(Output))
    standalone = {
        (Output.ATR,): _feed(Atr().update, b, ("high", "low", "close")),
        (Output.RSI,): _feed(Rsi().update, b, ("close",)),
        (Output.MACD, Output.MACD_SIGNAL, Output.MACD_HISTOGRAM): _feed(
            Macd().update, b, ("close",)
        ),
        (Output.BB_MIDDLE, Output.BB_UPPER, Output.BB_LOWER): _feed(
            Bollinger().update, b, ("close",)
        ),
        (Output.MOMENTUM_SHORT,): _feed(Momentum(5).update, b, ("close",)),
        (Output.MOMENTUM_MEDIUM,): _feed(Momentum(20).update, b, ("close",)),
        (Output.MOMENTUM_LONG,): _feed(Momentum(50).update, b, ("close",)),
        (Output.VOLATILITY, Output.VOLATILITY_ANNUALIZED): _feed(
            RealizedVolatility(bars_per_year=BARS_PER_YEAR).update, b, ("close",)
        ),
        (Output.VOLUME_RATIO, Output.VOLUME_FEATURE): _feed(VolumeRatio().update, b, ("volume",)),
        (Output.VOLUME_PROFILE_SKEW,): _feed(VolumeProfileSkew().update, b, FIELDS),
    }
    covered = [column for columns in standalone for column in columns]
    assert sorted(covered) == list(Output)
    for columns, expected in standalone.items():
        np.testing.assert_array_equal(got[:, list(columns)], expected.reshape(5000, -1))


def test_classic_indicators_warmup_and_names():
    indicators = ClassicIndicators(bars_per_year=BARS_PER_YEAR)
    assert indicators.warmup == 51  # momentum over 50 bars
    got = _run_set(indicators, SERIES["uptrend"])
    assert np.isnan(got[49]).any() and np.isfinite(got[50:]).all()
    assert list(indicators.as_dict()) == [column.name.lower() for column in Output]
    assert indicators.as_dict()["rsi"] == got[-1, Output.RSI]


def test_classic_indicators_skip_an_invalid_bar_everywhere_and_count_it():
    b = SERIES["downtrend"]
    bad = {10: ("close", np.nan), 100: ("volume", -1.0), 101: ("close", 0.0), 700: ("high", np.inf)}
    columns = {name: getattr(b, name).copy() for name in FIELDS}
    for i, (field, value) in bad.items():
        columns[field][i] = value
    indicators = ClassicIndicators(bars_per_year=BARS_PER_YEAR)
    got = []
    for i, row in enumerate(zip(*(columns[name] for name in FIELDS), strict=True)):
        before = indicators.snapshot()
        got.append(indicators.update(*row).copy())
        if i in bad:
            np.testing.assert_array_equal(indicators.state[2:], before[2:])
    got = np.array(got)
    assert indicators.bars == 5000 and indicators.invalid_bars == len(bad)
    assert np.isnan(got[list(bad)]).all()
    kept = np.delete(np.arange(5000), list(bad))
    clean = _run_set(ClassicIndicators(bars_per_year=BARS_PER_YEAR), Bars(*(c[kept] for c in b)))
    np.testing.assert_array_equal(got[kept], clean)


def test_classic_indicators_take_integer_volumes():
    a, b = (ClassicIndicators(bars_per_year=BARS_PER_YEAR) for _ in range(2))
    for i in range(60):
        np.testing.assert_array_equal(
            a.update(101.0 + i, 99.0, 100.0 + i, 500 + i),
            b.update(101.0 + i, 99.0, 100.0 + i, float(500 + i)),
        )


def test_classic_indicators_snapshot_and_restore():
    b = SERIES["index_level"]
    first, rest = Bars(*(c[:3000] for c in b)), Bars(*(c[3000:] for c in b))
    indicators = ClassicIndicators(bars_per_year=BARS_PER_YEAR)
    _run_set(indicators, first)
    snapshot = indicators.snapshot()
    expected = _run_set(indicators, rest)
    restored = ClassicIndicators(bars_per_year=BARS_PER_YEAR)
    restored.restore(snapshot)
    assert restored.bars == 3000 and np.isnan(restored.values).all()
    np.testing.assert_array_equal(_run_set(restored, rest), expected)
    # the standalone views follow the shared state
    np.testing.assert_array_equal(restored.rsi.state, indicators.rsi.state)

    other = ClassicIndicators(bars_per_year=BARS_PER_YEAR, rsi_period=7)  # same shape
    fresh = other.snapshot()
    with pytest.raises(ValueError, match="Rsi"):
        other.restore(snapshot)
    np.testing.assert_array_equal(other.state, fresh)
    with pytest.raises(ValueError, match="shape"):
        ClassicIndicators(bars_per_year=BARS_PER_YEAR, skew_window=20).restore(snapshot)
