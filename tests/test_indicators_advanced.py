"""FVG, MLMI, NWRQK, LVN and MMD: bar-by-bar numba updates against whole-array numpy
references, known answers, warm-up lengths, skipped (invalid) bars and snapshots.

The references are written from the module docstrings' definitions, straightforwardly and
per bar over the whole history (FVG: every gap's fate from the later lows / highs; MLMI: a
full sort of the memory; LVN: the profile rebuilt from the window; MMD: every kernel pair),
not by replaying the incremental state. Tolerance: |got - ref| <= 1e-9 + 1e-9 * |ref|,
and NaN at the same bars.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest

from actors.indicators import fvg, lvn, mlmi, mmd, nwrqk
from actors.indicators.fvg import FVG
from actors.indicators.lvn import LVN
from actors.indicators.mlmi import MLMI
from actors.indicators.mlmi_zeiierman import ZeiiermanMLMI
from actors.indicators.mmd import MMD
from actors.indicators.nwrqk import NWRQK

TOL = {"rtol": 1e-9, "atol": 1e-9}
BARS = 3000


class Bars(NamedTuple):
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    atr: np.ndarray


def _bars(close: np.ndarray, seed: int, wick: float = 1.0) -> Bars:
    """Bars around a close path: open = previous close plus noise, random wicks and volume,
    and a constant-ish positive ATR (its value only scales distances)."""
    rng = np.random.default_rng(seed)
    open_ = np.r_[close[0], close[:-1]] + rng.normal(0.0, 0.3 * wick, close.size)
    high = np.maximum(open_, close) + rng.exponential(wick, close.size)
    low = np.minimum(open_, close) - rng.exponential(wick, close.size)
    volume = np.round(rng.lognormal(7.0, 0.6, close.size))
    atr = 2.0 + rng.random(close.size)
    return Bars(open_, high, low, close, volume, atr)


def random_walk(seed: int = 1, n: int = BARS) -> Bars:
    rng = np.random.default_rng(seed)
    return _bars(4150.0 + np.cumsum(rng.normal(0.0, 2.0, n)), seed + 100)


def trending(seed: int = 2, n: int = BARS) -> Bars:
    """A geometric walk with a strong drift (RSIs near 100, gaps mostly bullish)."""
    rng = np.random.default_rng(seed)
    return _bars(4150.0 * np.exp(np.cumsum(rng.normal(4e-4, 5e-4, n))), seed + 100, wick=0.5)


SERIES = {"random_walk": random_walk, "trending": trending}


def assert_same(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, **TOL)


# References ----------------------------------------------------------------------------


def fvg_reference(b: Bars, window: int = 20, mult: float = 1.5, max_age: int = 50) -> np.ndarray:
    o, h, lo, c, atr = b.open, b.high, b.low, b.close, b.atr
    n = c.size
    body = np.abs(c - o)
    created = np.zeros(n)
    for i in range(window + 1, n):
        if body[i - 1] > mult * (np.sum(body[i - 1 - window : i - 1]) / window):
            if lo[i] > h[i - 2]:
                created[i] = 1.0
            elif h[i] < lo[i - 2]:
                created[i] = -1.0
    # The bar on which each gap is fully mitigated (n if never), ignoring expiry.
    mitigated_on = np.full(n, n)
    for i in np.flatnonzero(created):
        hits = (
            np.flatnonzero(lo[i + 1 :] <= h[i - 2])
            if created[i] > 0
            else np.flatnonzero(h[i + 1 :] >= lo[i - 2])
        )
        if hits.size:
            mitigated_on[i] = i + 1 + hits[0]
    out = np.full((n, fvg.N_OUTPUTS), np.nan)
    for t in range(window + 1, n):
        bullish = bearish = mitigation = 0.0
        candidates = []
        for i in range(max(0, t - max_age), t + 1):
            if created[i] == 0.0:
                continue
            if mitigated_on[i] == t and t > i:
                mitigation = 1.0
            if mitigated_on[i] <= t:
                continue
            if created[i] > 0:
                bullish = 1.0
                level = lo[i : t + 1].min()
            else:
                bearish = 1.0
                level = h[i : t + 1].max()
            candidates.append((abs(level - c[t]), -i, level))
        row = out[t]
        row[fvg.BULLISH_ACTIVE] = bullish
        row[fvg.BEARISH_ACTIVE] = bearish
        row[fvg.MITIGATION] = mitigation
        row[fvg.SIGNAL] = created[t]
        if candidates:
            _, minus_i, level = min(candidates)
            row[fvg.NEAREST_LEVEL] = (level - c[t]) / atr[t] if atr[t] > 0 else np.nan
            row[fvg.NEAREST_AGE] = (t + minus_i) / 60.0
        else:
            row[fvg.NEAREST_LEVEL] = row[fvg.NEAREST_AGE] = 0.0
    return out


def wilder_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """RSI with Wilder smoothing, in the operation order of `classic.rsi_update`."""
    change = np.diff(close)
    gain = np.maximum(change, 0.0)
    loss = np.maximum(-change, 0.0)
    rsi = np.full(close.size, np.nan)
    average_gain = average_loss = 0.0
    for t in range(1, close.size):
        if t < period:
            average_gain += gain[t - 1]
            average_loss += loss[t - 1]
            continue
        if t == period:
            average_gain = (average_gain + gain[t - 1]) / period
            average_loss = (average_loss + loss[t - 1]) / period
        else:
            average_gain = ((period - 1.0) * average_gain + gain[t - 1]) / period
            average_loss = ((period - 1.0) * average_loss + loss[t - 1]) / period
        total = average_gain + average_loss
        rsi[t] = 50.0 if total == 0.0 else 100.0 * average_gain / total
    return rsi


def mlmi_reference(
    close: np.ndarray,
    k: int = 200,
    memory: int = 2000,
    horizon: int = 1,
    fast: int = 5,
    slow: int = 20,
    threshold: float = 0.2,
) -> np.ndarray:
    n = close.size
    f1 = wilder_rsi(close, fast)
    f2 = wilder_rsi(close, slow)
    first = max(fast, slow)
    label = np.full(n, np.nan)
    label[: n - horizon] = np.sign(close[horizon:] - close[:-horizon])
    out = np.full((n, mlmi.N_OUTPUTS), np.nan)
    previous = np.nan
    for t in range(first, n):
        points = np.arange(max(first, t - horizon - memory + 1), t - horizon + 1)
        if points.size < k:
            continue
        distance = (f1[points] - f1[t]) ** 2 + (f2[points] - f2[t]) ** 2
        nearest = points[np.lexsort((-points, distance))[:k]]
        value = label[nearest].sum() / k
        signal = 0.0
        if value > threshold and previous <= threshold:
            signal = 1.0
        elif value < -threshold and previous >= -threshold:
            signal = -1.0
        out[t] = value, signal
        previous = value
    return out


def nwrqk_reference(
    close: np.ndarray, bandwidth: float = 8.0, alpha: float = 8.0, lookback: int = 25
) -> np.ndarray:
    i = np.arange(lookback)
    weights = (1.0 + i**2 / (2.0 * alpha * bandwidth**2)) ** -alpha
    out = np.full((close.size, nwrqk.N_OUTPUTS), np.nan)
    for t in range(lookback - 1, close.size):
        out[t, nwrqk.VALUE] = np.sum(weights * close[t - i]) / np.sum(weights)
    out[1:, nwrqk.SLOPE] = np.diff(out[:, nwrqk.VALUE])
    last = 0.0
    for t in np.flatnonzero(np.isfinite(out[:, nwrqk.SLOPE])):
        sign = np.sign(out[t, nwrqk.SLOPE])
        out[t, nwrqk.SIGNAL] = sign if sign != 0 and last != 0 and sign != last else 0.0
        last = sign if sign != 0 else last
    return out


def lvn_profile(b: Bars, t: int, window: int, width: float) -> tuple[int, np.ndarray]:
    """(first bin, volume per bin) of the window ending at bar t, on the grid of `width`."""
    bars = range(t - window + 1, t + 1)
    firsts = [math.floor(b.low[j] / width) for j in bars]
    lasts = [
        max(f, math.ceil(b.high[j] / width) - 1) if b.high[j] > b.low[j] else f
        for f, j in zip(firsts, bars, strict=True)
    ]
    first = min(firsts)
    profile = np.zeros(max(lasts) - first + 1)
    for j, f, last in zip(bars, firsts, lasts, strict=True):
        h, lo, v = b.high[j], b.low[j], b.volume[j]
        if h == lo:
            profile[f - first] += v
            continue
        for bin_ in range(f, last + 1):
            overlap = max(0.0, min(h, (bin_ + 1) * width) - max(lo, bin_ * width))
            profile[bin_ - first] += v * overlap / (h - lo)
    return first, profile


def lvn_reference(
    b: Bars, bin_width: float, window: int = 100, max_bins: int = 200, threshold: float = 0.5
) -> np.ndarray:
    out = np.full((b.close.size, lvn.N_OUTPUTS), np.nan)
    for t in range(window - 1, b.close.size):
        factor = 1
        while True:
            width = bin_width * factor
            first, profile = lvn_profile(b, t, window, width)
            if profile.size <= max_bins:
                break
            factor += 1
        v = profile[1:-1]
        nodes = 1 + np.flatnonzero(
            (v <= profile[:-2]) & (v <= profile[2:]) & (v < threshold * profile.mean())
        )
        if nodes.size == 0:
            out[t] = np.nan, 0.0, np.nan
            continue
        levels = (first + nodes + 0.5) * width
        best = np.argmin(np.abs(levels - b.close[t]))  # the first, i.e. lowest, on ties
        node = nodes[best]
        neighbours = (profile[node - 1] + profile[node + 1]) / 2
        strength = 1.0 if neighbours == 0 else np.clip(1 - profile[node] / neighbours, 0, 1)
        out[t] = abs(levels[best] - b.close[t]) / b.atr[t], strength, levels[best]
    return out


def mmd_reference(
    close: np.ndarray, reference: int = 96, recent: int = 24, bandwidth: float | None = None
) -> np.ndarray:
    z = np.diff(np.log(close))  # z[i] is the return of bar i + 1
    size = reference + recent
    out = np.full((close.size, 1), np.nan)
    sigma = bandwidth
    for t in range(size, close.size):
        window = z[t - size : t]
        if sigma is None:
            pairs = np.abs(window[:, None] - window[None, :])[np.triu_indices(size, 1)]
            sigma = float(np.median(pairs)) or None
            if sigma is None:
                continue
        x, y = window[:reference], window[reference:]

        def k(a: np.ndarray, b: np.ndarray, s: float = sigma) -> float:
            return float(np.mean(np.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * s * s))))

        out[t, 0] = max(0.0, k(x, x) + k(y, y) - 2 * k(x, y))
    return out


# Against the references ----------------------------------------------------------------


@pytest.mark.parametrize("series", SERIES)
def test_fvg_equals_reference(series):
    b = SERIES[series]()
    got = FVG().run(b.open, b.high, b.low, b.close, b.atr)
    ref = fvg_reference(b)
    assert_same(got, ref)
    assert np.nansum(ref[:, fvg.SIGNAL] != 0) > 20  # the comparison saw gaps created
    assert np.nansum(ref[:, fvg.MITIGATION]) > 10  # ... and mitigated


def test_fvg_reference_with_short_expiry_and_other_filter():
    b = random_walk(seed=3)
    got = FVG(body_window=10, body_mult=1.2, max_age=4).run(b.open, b.high, b.low, b.close, b.atr)
    assert_same(got, fvg_reference(b, window=10, mult=1.2, max_age=4))


@pytest.mark.parametrize("series", SERIES)
def test_mlmi_equals_reference(series):
    close = SERIES[series]().close
    got = MLMI().run(close)
    ref = mlmi_reference(close)
    assert_same(got, ref)
    assert np.nanstd(ref[:, mlmi.VALUE]) > 0.03  # the vote moved (signals: the next test)


def test_mlmi_reference_with_a_full_memory_and_longer_horizon():
    close = random_walk(seed=4).close
    got = MLMI(k=15, memory=300, horizon=3, fast=3, slow=9, threshold=0.3).run(close)
    ref = mlmi_reference(close, k=15, memory=300, horizon=3, fast=3, slow=9, threshold=0.3)
    assert_same(got, ref)
    assert np.sum(np.abs(ref[:, mlmi.SIGNAL]) == 1) > 20


def test_mlmi_ties_go_to_the_most_recent_points():
    """A periodic series repeats its feature points exactly (once the Wilder averages have
    converged in floating point), so the k nearest are decided by the recency rule alone."""
    close = 100.0 + np.tile([0.0, 1.0, 3.0, 2.0, 1.5], 700)
    got = MLMI(k=7, memory=50, slow=10).run(close)
    ref = mlmi_reference(close, k=7, memory=50, slow=10)
    assert_same(got, ref)
    assert len(set(got[-100:, mlmi.VALUE])) > 1


@pytest.mark.parametrize("series", SERIES)
def test_nwrqk_equals_reference(series):
    close = SERIES[series]().close
    got = NWRQK().run(close)
    ref = nwrqk_reference(close)
    assert_same(got, ref)
    assert np.nansum(np.abs(ref[:, nwrqk.SIGNAL])) >= 2


def jdehorty_kernel_regression(close: np.ndarray, x_0: int, h: float, r: float) -> np.ndarray:
    """A transcription of the public script's `kernel_regression(_src, _size, _h)` with
    `_size` = 1: `for i = 0 to _size + x_0` (Pine's bounds are inclusive), weight
    `pow(1 + pow(i, 2) / (pow(_h, 2) * 2 * r), -r)`, `_src[i]` the close i bars back (na,
    so na out, before the series has them)."""
    out = np.full(close.size, np.nan)
    for t in range(close.size):
        current = cumulative = 0.0
        for i in range(0, 1 + x_0 + 1):
            if t - i < 0:
                current = math.nan
                break
            w = math.pow(1 + math.pow(i, 2) / (math.pow(h, 2) * 2 * r), -r)
            current += close[t - i] * w
            cumulative += w
        out[t] = current / cumulative
    return out


@pytest.mark.parametrize("series", SERIES)
def test_nwrqk_has_the_public_scripts_form_too(series):
    """`NWRQK.jdehorty` is the script's 27-term regression; the default's 25 terms depart
    from it (documented in the module)."""
    close = SERIES[series]().close
    canonical = NWRQK.jdehorty(x_0=25, h=8.0, r=8.0).run(close)[:, nwrqk.VALUE]
    script = jdehorty_kernel_regression(close, 25, 8.0, 8.0)
    np.testing.assert_allclose(canonical, script, rtol=0, atol=1e-9, equal_nan=True)
    assert np.isnan(canonical[:26]).all() and np.isfinite(canonical[26:]).all()
    default = NWRQK().run(close)[:, nwrqk.VALUE]
    assert np.nanmax(np.abs(default[26:] - script[26:])) > 1e-6


def _pine_wma(x: np.ndarray, n: int) -> np.ndarray:
    """Pine's `ta.wma`: weights n (newest) down to 1; na until n values, na in, na out."""
    out = np.full(x.size, np.nan)
    weights = np.arange(1, n + 1, dtype=float)
    for t in range(n - 1, x.size):
        out[t] = np.dot(x[t - n + 1 : t + 1], weights) / weights.sum()
    return out


def _pine_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """Pine's `ta.rsi`: `ta.rma` of the gains and losses (seeded by the SMA of the first n,
    then alpha 1/n), 100 when the average loss is 0, 0 when the average gain is."""
    change = np.diff(close, prepend=np.nan)
    out = np.full(close.size, np.nan)
    up = down = math.nan
    for t in range(n, close.size):
        if t == n:
            up = max(0.0, 0.0) + np.clip(change[1 : n + 1], 0, None).mean()
            down = np.clip(-change[1 : n + 1], 0, None).mean()
        else:
            up = (max(change[t], 0.0) + (n - 1) * up) / n
            down = (max(-change[t], 0.0) + (n - 1) * down) / n
        out[t] = 100.0 if down == 0 else 0.0 if up == 0 else 100.0 - 100.0 / (1.0 + up / down)
    return out


def zeiierman_mlmi_script(close: np.ndarray, k: int) -> np.ndarray:
    """A transcription of the public script: `MA_quick = ta.wma(close, 5)`, `MA_slow =
    ta.wma(close, 20)`, `rsi_quick = ta.wma(ta.rsi(close, 5), 20)`, `rsi_slow =
    ta.wma(ta.rsi(close, 20), 20)`; on `ta.crossover` or `ta.crossunder` of the averages,
    `storePreviousTrade(rsi_slow, rsi_quick)` (arrays that start as [0]; the result is
    `close >= previous price ? 1 : -1`); then `knnPredict`: every distance, sorted, the
    largest of the first k, the sum of the results of every point at that distance or
    closer (an na distance is not). Returns the prediction and its `ta.wma(_, 20)`."""
    ma_quick, ma_slow = _pine_wma(close, 5), _pine_wma(close, 20)
    rsi_quick = _pine_wma(_pine_rsi(close, 5), 20)
    rsi_slow = _pine_wma(_pine_rsi(close, 20), 20)
    p1, p2, prices, results = [0.0], [0.0], [0.0], [0.0]
    prediction = np.full(close.size, np.nan)
    for t in range(close.size):
        if t > 0 and (
            (ma_quick[t] > ma_slow[t] and ma_quick[t - 1] <= ma_slow[t - 1])
            or (ma_quick[t] < ma_slow[t] and ma_quick[t - 1] >= ma_slow[t - 1])
        ):
            results.append(1.0 if close[t] >= prices[-1] else -1.0)
            p1.append(rsi_slow[t])
            p2.append(rsi_quick[t])
            prices.append(close[t])
        if math.isnan(rsi_slow[t]) or math.isnan(rsi_quick[t]):
            continue
        distances = np.sqrt((np.array(p1) - rsi_slow[t]) ** 2 + (np.array(p2) - rsi_quick[t]) ** 2)
        known = np.sort(distances[~np.isnan(distances)])
        widest = known[: min(k, known.size)].max()
        prediction[t] = sum(r for r, d in zip(results, distances, strict=True) if d <= widest)
    return np.column_stack((prediction, _pine_wma(prediction, 20)))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("k", [200, 7])
def test_mlmi_has_zeiiermans_form_too(series, k):
    """`ZeiiermanMLMI` is the public script's prediction, and SIGNAL its crossings of
    the prediction's WMA; the default MLMI is another indicator (its docstring says how)."""
    close = SERIES[series]().close
    got = ZeiiermanMLMI(k=k).run(close)
    script = zeiierman_mlmi_script(close, k)
    np.testing.assert_allclose(got[:, mlmi.VALUE], script[:, 0], rtol=0, atol=1e-9, equal_nan=True)
    assert np.isnan(got[:39, mlmi.VALUE]).all() and np.isfinite(got[39:, mlmi.VALUE]).all()
    prediction, average = script[:, 0], script[:, 1]
    above = prediction > average
    crossings = np.where(
        np.isnan(average) | np.isnan(np.roll(average, 1)),
        np.nan,
        np.where(above & ~np.roll(above, 1), 1.0, 0.0)
        - np.where(~above & (prediction < average) & np.roll(prediction >= average, 1), 1.0, 0.0),
    )
    crossings[0] = np.nan
    np.testing.assert_array_equal(got[:, mlmi.SIGNAL], crossings)
    assert np.nansum(np.abs(crossings)) >= 2
    assert np.nanstd(prediction) > 0  # the vote moves


def test_nwrqk_reference_with_other_parameters():
    close = random_walk(seed=5).close
    assert_same(NWRQK(3.0, 1.5, 40).run(close), nwrqk_reference(close, 3.0, 1.5, 40))


@pytest.mark.parametrize("series", SERIES)
def test_lvn_equals_reference(series):
    b = SERIES[series](n=800)
    ref = lvn_reference(b, 0.25)
    assert_same(LVN(0.25).run(b.high, b.low, b.close, b.volume, b.atr), ref)
    assert np.isfinite(ref[99:, lvn.DISTANCE]).mean() > 0.9


def test_lvn_reference_with_a_coarsened_grid():
    """max_bins small enough that the grid must coarsen (factor > 1) on most bars."""
    b = random_walk(seed=6, n=600)
    ref = lvn_reference(b, 0.25, window=50, max_bins=30, threshold=0.7)
    got = LVN(0.25, window=50, max_bins=30, threshold=0.7).run(
        b.high, b.low, b.close, b.volume, b.atr
    )
    assert_same(got, ref)


@pytest.mark.parametrize("series", SERIES)
def test_mmd_equals_reference(series):
    close = SERIES[series]().close
    got = MMD(reference=60, recent=20).run(close)
    assert_same(got, mmd_reference(close, 60, 20))


def test_mmd_with_a_given_bandwidth_stays_exact_over_a_long_run():
    """The pair sums are updated by adding and subtracting; after 20,000 bars they still
    agree with an exact recomputation."""
    rng = np.random.default_rng(7)
    close = 4150.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, 20_000) * rng.choice([1, 3], 20_000)))
    indicator = MMD(reference=96, recent=24, bandwidth=1e-3)
    got = indicator.run(close)
    ref = mmd_reference(close[:3000], 96, 24, bandwidth=1e-3)
    assert_same(got[:3000], ref)
    tail = mmd_reference(close[-400:], 96, 24, bandwidth=1e-3)
    np.testing.assert_allclose(got[-250:], tail[-250:], **TOL)


# Known answers -------------------------------------------------------------------------


def _quiet_bars(n: int) -> list[list[float]]:
    """n small bars around 100 (open, high, low, close) with bodies of 1."""
    return [[100.0, 101.5, 98.5, 101.0] if i % 2 else [101.0, 101.5, 98.5, 100.0] for i in range(n)]


def _run_fvg(rows: list[list[float]], max_age: int = 50, atr: float = 2.0) -> np.ndarray:
    a = np.array(rows)
    return FVG(max_age=max_age).run(a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.full(len(a), atr))


def test_bullish_fvg_is_created_partially_filled_then_mitigated():
    rows = _quiet_bars(22)  # bar 21 is the i-2 bar: high 101.5
    rows += [
        [101.0, 111.0, 100.5, 110.5],  # the big middle candle: body 9.5 > 1.5 x 1
        [110.5, 113.0, 108.0, 112.0],  # low 108 > 101.5: gap [101.5, 108]
        [112.0, 112.5, 105.0, 106.0],  # trades into the gap: top -> 105
        [106.0, 108.5, 103.0, 106.5],  # deeper: top -> 103 (high 108.5: no bearish gap)
        [106.5, 107.0, 101.0, 102.0],  # through the bottom: mitigated
    ]
    out = _run_fvg(rows)
    assert np.isnan(out[:21]).all() and np.isfinite(out[21:]).all()
    assert (out[21:23, fvg.SIGNAL] == 0).all()
    created, partial, deeper, done = out[23], out[24], out[25], out[26]
    assert tuple(created) == (1.0, 0.0, (108.0 - 112.0) / 2.0, 0.0, 0.0, 1.0)
    assert tuple(partial) == (1.0, 0.0, (105.0 - 106.0) / 2.0, 1 / 60, 0.0, 0.0)
    assert deeper[fvg.NEAREST_LEVEL] == (103.0 - 106.5) / 2.0
    assert tuple(done) == (0.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def test_bearish_fvg_expires_after_max_age_without_a_mitigation_signal():
    rows = _quiet_bars(22)  # bar 21: low 98.5
    rows += [
        [100.0, 100.5, 90.0, 90.5],  # big bearish middle candle
        [90.5, 96.0, 89.0, 91.0],  # high 96 < 98.5: gap [96, 98.5]
    ]
    rows += [[91.0, 95.0, 89.0, 92.0]] * 6  # below the gap, never touching it
    out = _run_fvg(rows, max_age=5)
    created = out[23]
    assert tuple(created) == (0.0, 1.0, (96.0 - 91.0) / 2.0, 0.0, 0.0, -1.0)
    for age in range(1, 6):
        assert out[23 + age, fvg.BEARISH_ACTIVE] == 1.0
        assert out[23 + age, fvg.NEAREST_AGE] == age / 60
    assert tuple(out[29]) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_fvg_needs_the_big_middle_body():
    rows = _quiet_bars(22)
    rows += [[101.0, 111.0, 100.5, 101.2], [101.2, 113.0, 108.0, 112.0]]  # same gap, body 0.2
    out = _run_fvg(rows)
    assert out[23, fvg.SIGNAL] == 0.0 and out[23, fvg.BULLISH_ACTIVE] == 0.0


def test_nwrqk_on_a_line_is_the_line_shifted_by_the_kernel_lag():
    t = np.arange(200.0)
    close = 50.0 + 0.5 * t
    out = NWRQK().run(close)
    i = np.arange(25.0)
    w = (1 + i**2 / (2 * 8 * 64)) ** -8.0
    lag = np.sum(i * w) / np.sum(w)
    np.testing.assert_allclose(out[24:, nwrqk.VALUE], close[24:] - 0.5 * lag, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out[25:, nwrqk.SLOPE], 0.5, rtol=0, atol=1e-10)
    assert (out[25:, nwrqk.SIGNAL] == 0).all()


def test_nwrqk_signals_once_at_each_turn():
    close = np.r_[np.arange(100.0), np.arange(100.0, 0.0, -1.0), np.arange(0.0, 100.0)]
    signal = NWRQK().run(close)[:, nwrqk.SIGNAL]
    fired = np.flatnonzero(np.nan_to_num(signal))
    assert signal[fired].tolist() == [-1.0, 1.0]
    assert 100 < fired[0] < 115 and 200 < fired[1] < 215


def test_mlmi_trend_up_then_down():
    close = np.r_[np.arange(1000.0, 1400.0), np.arange(1400.0, 1000.0, -1.0)]
    out = MLMI(k=50, memory=400).run(close)
    assert (out[70:400, mlmi.VALUE] == 1.0).all()  # every neighbour was labelled "up"
    fired = np.flatnonzero(np.nan_to_num(out[:, mlmi.SIGNAL]))
    assert out[fired, mlmi.SIGNAL].tolist() == [-1.0]
    assert 400 < fired[0] < 500
    assert out[-1, mlmi.VALUE] == -1.0


def test_lvn_finds_the_void_between_two_volume_clusters():
    indicator = LVN(0.25, window=20)
    for i in range(20):
        high, low = (101.0, 100.0) if i % 2 == 0 else (104.0, 103.0)
        out = indicator.update(high, low, 100.6 if i == 19 else low + 0.5, 1000.0, 2.0)
    # Bins [101, 101.25) .. [102.75, 103) are empty; the nearest to 100.6 is centred 101.125.
    assert out == ((101.125 - 100.6) / 2.0, 1.0, 101.125)


def test_lvn_none_in_a_flat_profile():
    indicator = LVN(0.25, window=10)
    for _ in range(10):
        out = indicator.update(101.0, 100.0, 100.5, 500.0, 2.0)
    assert math.isnan(out[lvn.DISTANCE]) and out[lvn.STRENGTH] == 0.0
    assert math.isnan(out[lvn.LEVEL])


def test_mmd_is_zero_for_identical_windows_and_large_for_shifted_ones():
    rng = np.random.default_rng(8)
    cycle = rng.normal(0.0, 1e-3, 24)
    close = 100.0 * np.exp(np.cumsum(np.tile(cycle, 10)))
    same = MMD(reference=24, recent=24, bandwidth=1e-3).run(close)[:, mmd.SCORE]
    assert np.nanmax(same) < 1e-9 and np.isfinite(same[48:]).all()

    returns = np.r_[rng.normal(0.0, 1e-3, 400), rng.normal(5e-3, 1e-3, 24)]
    score = MMD(reference=96, recent=24, bandwidth=1e-3).run(100.0 * np.exp(np.cumsum(returns)))
    calm = score[200:400, mmd.SCORE]
    assert np.median(calm) < 0.05
    assert score[-1, mmd.SCORE] > 0.8 and score[-1, mmd.SCORE] > 4 * calm.max()


def test_mmd_median_heuristic_waits_for_a_positive_median():
    """Over a constant price most return pairs are 0 apart: the bandwidth is chosen once
    fewer than half of the window's pairs are (9 of 30 returns nonzero)."""
    returns = np.random.default_rng(9).normal(0, 1e-3, 40)
    close = np.r_[np.full(150, 100.0), 100.0 * np.exp(np.cumsum(returns))]
    indicator = MMD(reference=20, recent=10)
    got = indicator.run(close)
    assert_same(got, mmd_reference(close, 20, 10))
    first = np.flatnonzero(np.isfinite(got[:, 0]))[0]
    assert first == 149 + 9 and indicator.sigma > 1e-4


# Warm-up, invalid bars, snapshots -------------------------------------------------------


class Case(NamedTuple):
    make: Callable[[], object]
    fields: tuple[str, ...]  # Bars fields passed to update / run, in order
    invalid: tuple[tuple[str, float], ...]  # (field, value) pairs that make a bar invalid
    always_finite: int  # an output column that is finite on every warm valid bar
    other: Callable[[], object]  # same state size, other parameters


CASES = {
    "fvg": Case(
        FVG,
        ("open", "high", "low", "close", "atr"),
        (("close", np.nan), ("high", np.inf), ("open", -np.inf)),
        fvg.BULLISH_ACTIVE,
        lambda: FVG(body_mult=2.0),
    ),
    "mlmi": Case(
        lambda: MLMI(k=20, memory=200),
        ("close",),
        (("close", np.nan),),
        mlmi.VALUE,
        lambda: MLMI(k=21, memory=200),
    ),
    "nwrqk": Case(
        NWRQK,
        ("close",),
        (("close", np.nan), ("close", -np.inf)),
        nwrqk.SLOPE,
        lambda: NWRQK(bandwidth=5.0),
    ),
    "lvn": Case(
        lambda: LVN(0.25, window=40),
        ("high", "low", "close", "volume", "atr"),
        (("volume", np.nan), ("volume", -1.0), ("low", 1e9), ("close", np.inf)),
        lvn.STRENGTH,
        lambda: LVN(0.5, window=40),
    ),
    "mmd": Case(
        lambda: MMD(reference=30, recent=10),
        ("close",),
        (("close", np.nan), ("close", 0.0), ("close", -5.0)),
        mmd.SCORE,
        lambda: MMD(reference=30, recent=10, bandwidth=1e-3),
    ),
}


def _inputs(b: Bars, case: Case) -> list[np.ndarray]:
    return [getattr(b, f) for f in case.fields]


@pytest.mark.parametrize("name", CASES)
def test_invalid_bars_are_skipped_and_do_not_poison_the_state(name):
    """With invalid bars inserted between the bars of a clean series, the outputs at the
    clean bars are those of the clean series alone, the invalid bars output NaN, and the
    values stay finite right after an invalid bar."""
    case = CASES[name]
    clean = random_walk(seed=10, n=1200)
    n_bad = 90
    n = clean.close.size + n_bad
    rng = np.random.default_rng(11)
    invalid = np.zeros(n, bool)
    invalid[np.sort(rng.choice(np.arange(1, n), n_bad, replace=False))] = True
    previous_clean = np.maximum(np.cumsum(~invalid) - 1, 0)
    dirty = {f: getattr(clean, f)[previous_clean] for f in case.fields}
    kinds = [case.invalid[i % len(case.invalid)] for i in range(n_bad)]
    for j, (field, value) in zip(np.flatnonzero(invalid), kinds, strict=True):
        dirty[field][j] = value

    got = case.make().run(*[dirty[f] for f in case.fields])
    expected = case.make().run(*_inputs(clean, case))
    assert np.isnan(got[invalid]).all()
    assert_same(got[~invalid], expected)
    after = np.flatnonzero(invalid[:-1] & ~invalid[1:]) + 1
    after = after[after > 300]
    assert after.size > 10 and np.isfinite(got[after, case.always_finite]).all()


def test_fvg_nan_atr_blanks_only_the_level():
    b = random_walk(seed=12)
    atr = b.atr.copy()
    atr[::7] = np.nan
    got = FVG().run(b.open, b.high, b.low, b.close, atr)
    ref = FVG().run(b.open, b.high, b.low, b.close, b.atr)
    others = [c for c in range(fvg.N_OUTPUTS) if c != fvg.NEAREST_LEVEL]
    assert_same(got[:, others], ref[:, others])
    blank = np.isnan(atr) & (got[:, fvg.BULLISH_ACTIVE] + got[:, fvg.BEARISH_ACTIVE] > 0)
    assert blank.sum() > 50 and np.isnan(got[blank, fvg.NEAREST_LEVEL]).all()
    assert_same(got[~np.isnan(atr), fvg.NEAREST_LEVEL], ref[~np.isnan(atr), fvg.NEAREST_LEVEL])


@pytest.mark.parametrize("name", CASES)
def test_warmup_update_and_snapshot(name):
    """update == run bar by bar; the first all-finite bar is bar `warmup`; a snapshot taken
    halfway continues identically in another instance; a snapshot of another configuration
    is refused."""
    case = CASES[name]
    inputs = _inputs(random_walk(seed=13, n=900), case)
    reference = case.make().run(*inputs)

    one = case.make()
    rows = np.array([one.update(*(float(x[i]) for x in inputs)) for i in range(450)])
    assert_same(rows.reshape(450, -1), reference[:450])
    warmup = one.warmup
    assert np.isnan(reference[: warmup - 1]).any(axis=1).all()
    assert np.isfinite(reference[warmup - 1]).all()

    other = case.make()
    other.restore(one.snapshot())
    second_half = [x[450:] for x in inputs]
    assert_same(other.run(*second_half), reference[450:])
    assert_same(one.run(*second_half), reference[450:])
    with pytest.raises(ValueError):
        case.other().restore(one.snapshot())


@pytest.mark.parametrize(
    "make",
    [
        lambda: FVG(body_window=0),
        lambda: FVG(body_mult=float("nan")),
        lambda: MLMI(k=10, memory=5),
        lambda: MLMI(threshold=1.0),
        lambda: NWRQK(bandwidth=0.0),
        lambda: NWRQK(alpha=-1.0),
        lambda: LVN(0.0),
        lambda: LVN(0.25, max_bins=2),
        lambda: MMD(recent=1),
        lambda: MMD(bandwidth=float("inf")),
    ],
)
def test_bad_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()
