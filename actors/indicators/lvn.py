"""LVN: the nearest low-volume node of a rolling volume profile, and its strength.

Bars are indexed t = 0, 1, ... over *valid* bars only (see "Invalid bars" below).

Profile. Over the last N = `window` bars, on a fixed price grid of bins
[b w, (b + 1) w) (b an integer, so bins stay put from bar to bar), each bar's volume is
spread uniformly over its [low, high] range: bin b gets
V * max(0, min(H, (b + 1) w) - max(L, b w)) / (H - L), and a bar with H = L puts all its
volume in the bin floor(L / w). A bar therefore covers the bins floor(L / w) ..
max(floor(L / w), ceil(H / w) - 1) (those with a positive share), and the profile spans
the bins from the lowest first bin to the highest last bin over the window. The bin width
is w = f * `bin_width` with f the smallest integer >= 1 for which that span has at most
`max_bins` bins: a wide window coarsens the grid (keeping it nested on the base grid)
instead of growing the work without bound.

Low-volume node: an interior bin b (not the first or last of the span, whose low volume
is just the profile's tail) that is a local minimum, v_b <= v_{b-1} and v_b <= v_{b+1},
and thin, v_b < `threshold` * mean(v) (mean over all bins of the span). Its level is the
bin centre (b + 1/2) w and its strength is 1 - v_b / ((v_{b-1} + v_{b+1}) / 2), clipped
to [0, 1] (how deep the dip is against its neighbours; 1 for an empty bin between empty
neighbours, a volume void). The nearest LVN minimises |level - close|, ties going to the
lower level.

Outputs (positions in the tuple `lvn_update` returns and columns of `LVN.run`):
- DISTANCE = |level - close| / ATR of the nearest LVN (>= 0; the strategic layer's
  support strength is max(0, STRENGTH - min(1, DISTANCE / max_distance)));
- STRENGTH of that LVN, in [0, 1];
- LEVEL, its price.
NaN until N bars were seen; with no LVN in the profile, DISTANCE and LEVEL are NaN and
STRENGTH is 0; DISTANCE is also NaN when ATR is not a positive finite number.

Invalid bars: a bar whose high, low, close or volume is not finite, or with high < low or
volume < 0, leaves the state untouched and outputs NaN, so the results at valid bars are
exactly those of the series with the invalid bars removed and a NaN never enters the
profile.

Cost per bar: the profile is rebuilt from the window's bars (no running sums to drift):
O(N * bins per bar + bins), with bins <= max_bins.

State (the conventions of `actors.indicators.classic`): [window, bin_width, max_bins,
threshold, bars accepted, the last N highs, lows and volumes (rings, slot t mod N), then
max_bins slots of scratch space for the profile (meaningless between bars; kept in the
state so that a bar allocates nothing)].
"""

import math
from typing import Final

import numba
import numpy as np

from actors.indicators.classic import Indicator

# Positions in the output tuple of `lvn_update` / columns of `LVN.run`.
DISTANCE: Final = 0
STRENGTH: Final = 1
LEVEL: Final = 2
N_OUTPUTS: Final = 3

_NAN = math.nan
_WINDOW, _BIN_WIDTH, _MAX_BINS, _THRESHOLD, _BARS, _RINGS = range(6)


@numba.njit(cache=True)
def _first_bin(low: float, width: float) -> int:
    return math.floor(low / width)


@numba.njit(cache=True)
def _last_bin(low: float, high: float, width: float) -> int:
    first = _first_bin(low, width)
    if high > low:
        return max(first, math.ceil(high / width) - 1)
    return first


@numba.njit(cache=True)
def _span(highs: np.ndarray, lows: np.ndarray, width: float) -> tuple[int, int]:
    """First bin and bin count of the profile of the window's bars at this width."""
    first = _first_bin(lows[0], width)
    last = _last_bin(lows[0], highs[0], width)
    for j in range(1, highs.shape[0]):
        first = min(first, _first_bin(lows[j], width))
        last = max(last, _last_bin(lows[j], highs[j], width))
    return first, last - first + 1


@numba.njit(
    "UniTuple(float64, 3)(float64[::1], float64, float64, float64, float64, float64)", cache=True
)
def lvn_update(
    state: np.ndarray, high: float, low: float, close: float, volume: float, atr: float
) -> tuple[float, float, float]:
    """Add a bar (with its ATR) to an `LVN` state; return (distance, strength, level), NaN
    while warming up or if skipped."""
    finite = (
        math.isfinite(high)
        and math.isfinite(low)
        and math.isfinite(close)
        and math.isfinite(volume)
    )
    if not finite or high < low or volume < 0.0:
        return _NAN, _NAN, _NAN
    window = int(state[_WINDOW])
    max_bins = int(state[_MAX_BINS])
    t = int(state[_BARS])
    highs = state[_RINGS : _RINGS + window]
    lows = state[_RINGS + window : _RINGS + 2 * window]
    volumes = state[_RINGS + 2 * window : _RINGS + 3 * window]
    slot = t % window
    highs[slot] = high
    lows[slot] = low
    volumes[slot] = volume
    state[_BARS] = t + 1
    if t < window - 1:
        return _NAN, _NAN, _NAN

    # The base-grid span n bounds the minimal factor: span(f) > (n - 2) / f, so it
    # exceeds (n - 2) / max_bins; starting one below that absorbs rounding in floor/ceil.
    base = state[_BIN_WIDTH]
    first, n_bins = _span(highs, lows, base)
    factor = max(1, (n_bins - 2) // max_bins)
    width = base * factor
    first, n_bins = _span(highs, lows, width)
    while n_bins > max_bins:
        factor += 1
        width = base * factor
        first, n_bins = _span(highs, lows, width)

    profile = state[_RINGS + 3 * window : _RINGS + 3 * window + n_bins]
    profile[:] = 0.0
    for j in range(window):
        h = highs[j]
        lo = lows[j]
        b0 = _first_bin(lo, width)
        if h == lo:
            profile[b0 - first] += volumes[j]
            continue
        for b in range(b0, _last_bin(lo, h, width) + 1):
            overlap = max(0.0, min(h, (b + 1) * width) - max(lo, b * width))
            profile[b - first] += volumes[j] * overlap / (h - lo)
    cutoff = state[_THRESHOLD] * (profile.sum() / n_bins)

    best = -1
    best_distance = np.inf
    for b in range(1, n_bins - 1):
        v = profile[b]
        if v <= profile[b - 1] and v <= profile[b + 1] and v < cutoff:
            distance = abs((first + b + 0.5) * width - close)
            if distance < best_distance:
                best = b
                best_distance = distance
    if best < 0:
        return _NAN, 0.0, _NAN
    neighbours = 0.5 * (profile[best - 1] + profile[best + 1])
    strength = 1.0 if neighbours == 0.0 else min(1.0, max(0.0, 1.0 - profile[best] / neighbours))
    relative = best_distance / atr if math.isfinite(atr) and atr > 0.0 else _NAN
    return relative, strength, (first + best + 0.5) * width


@numba.njit(
    "float64[:, ::1](float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], "
    "float64[::1])",
    cache=True,
)
def _run(
    state: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    atr: np.ndarray,
) -> np.ndarray:
    out = np.empty((close.shape[0], N_OUTPUTS))
    for i in range(close.shape[0]):
        out[i, DISTANCE], out[i, STRENGTH], out[i, LEVEL] = lvn_update(
            state, high[i], low[i], close[i], volume[i], atr[i]
        )
    return out


class LVN(Indicator):
    """Nearest low-volume node of a rolling volume profile, as defined in the module
    docstring.

    `bin_width` is in price units (the tick size or a multiple of it), so it has no
    instrument-free default. Warm-up: `window` bars. Skipped: a bar with a non-finite high,
    low, close or volume, high < low, or volume < 0.
    """

    __slots__ = ()
    _N_PARAMS = 4

    def __init__(
        self, bin_width: float, window: int = 100, max_bins: int = 200, threshold: float = 0.5
    ) -> None:
        if not (math.isfinite(bin_width) and bin_width > 0):
            raise ValueError(f"LVN bin_width must be a finite price > 0, got {bin_width!r}")
        if window < 1 or max_bins < 3 or not (0.0 < threshold <= 1.0):
            raise ValueError(
                f"LVN needs window >= 1, max_bins >= 3 and 0 < threshold <= 1, got "
                f"{window!r}, {max_bins!r}, {threshold!r}"
            )
        fresh = np.zeros(_RINGS + 3 * window + max_bins)
        fresh[:_RINGS] = (window, bin_width, max_bins, threshold, 0)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_WINDOW])

    def update(
        self, high: float, low: float, close: float, volume: float, atr: float
    ) -> tuple[float, float, float]:
        """Add a closed bar and its ATR; return (distance, strength, level)."""
        return lvn_update(self.state, high, low, close, volume, atr)

    def run(
        self,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        atr: np.ndarray,
    ) -> np.ndarray:
        """Add a series bar by bar (a backfill), continuing the state; (bars, N_OUTPUTS)."""
        return _run(
            self.state,
            np.ascontiguousarray(high, np.float64),
            np.ascontiguousarray(low, np.float64),
            np.ascontiguousarray(close, np.float64),
            np.ascontiguousarray(volume, np.float64),
            np.ascontiguousarray(atr, np.float64),
        )
