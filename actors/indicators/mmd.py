"""MMD regime score: squared maximum mean discrepancy between two windows of log returns.

Bars are indexed t = 0, 1, ... over *valid* bars only (see "Invalid bars" below).

Samples. With the log returns z_t = ln(C_t / C_{t-1}) (t >= 1), the last W = m + n of them
are split into the reference window X (the older m = `reference`) and the recent window Y
(the newest n = `recent`), adjacent, so the score asks "do the latest n returns look like
the m before them?".

Score: the biased (V-statistic) estimator of MMD^2 with the Gaussian kernel
k(x, y) = exp(-(x - y)^2 / (2 sigma^2)):
    MMD^2 = (1/m^2) sum_{i,j} k(x_i, x_j) + (1/n^2) sum_{i,j} k(y_i, y_j)
            - (2/(m n)) sum_{i,j} k(x_i, y_j),
all sums over every ordered pair, diagonal included. This is the squared distance between
the two windows' kernel mean embeddings, so it is >= 0 (the rounding residue of the
cancellation is clipped at 0) and exactly 0 when the windows hold the same values; its
bias, about (1 - E k)(1/m + 1/n), is a constant floor, harmless for a score. (The unbiased
U-statistic drops the diagonals and can go negative, which reads badly as a score.)

Bandwidth: sigma = `bandwidth` when given (> 0, in log-return units), else the median
heuristic: the median of |z_i - z_j| over all pairs of the first full window, frozen from
then on (if that median is 0, as for a constant price, the next bars retry until it is
positive). It has to be frozen: the score is kept incremental by updating the three pair
sums as the windows slide (the oldest return leaves X, the oldest of Y moves into X, the
new return enters Y: about 3 W kernel evaluations per bar), and a bandwidth that moved
would change every term. The sums are computed exactly once, when the score first
becomes available; each later update adds a rounding error of about 1e-16 * S (S <= W^2),
so even a million bars leave the score (divided by m^2, n^2 or m n; of order 0.01 .. 2)
within ~1e-10 of an exact recomputation (tested over 20,000 bars to 1e-9).

Output (`mmd_update` returns it; column SCORE of `MMD.run`): NaN until W returns (W + 1
closes) were seen and sigma is positive.

Invalid bars: a bar whose close is not finite or not positive (no log return) leaves the
state untouched and outputs NaN; the next valid bar's return is taken against the last
valid close. The results at valid bars are therefore exactly those of the series with the
invalid bars removed, and a NaN never enters the sums.

State (the conventions of `actors.indicators.classic`): [reference, recent, bandwidth
parameter (0 = median heuristic), returns accepted, previous close (0 before the first),
ring slot of the oldest return, sigma in use (0 until the sums are initialised), the pair
sums S_XX, S_YY, S_XY, the last W returns (ring)].
"""

import math
from typing import Final

import numba
import numpy as np

from actors.indicators.classic import Indicator

# Column of `MMD.run`.
SCORE: Final = 0
N_OUTPUTS: Final = 1

_NAN = math.nan
(
    _REFERENCE,
    _RECENT,
    _BANDWIDTH,  # the parameter; 0 = median heuristic
    _RETURNS,  # returns accepted
    _PREV_CLOSE,  # 0 before the first accepted close
    _HEAD,  # ring slot of the oldest return once the ring is full
    _SIGMA,  # bandwidth in use; 0 until the pair sums are initialised
    _SXX,
    _SYY,
    _SXY,
    _RING,
) = range(11)


@numba.njit(cache=True)
def _kernel_sum(e: float, ring: np.ndarray, head: int, start: int, stop: int, inv: float) -> float:
    """sum of k(e, z_p) over logical positions start <= p < stop (0 = oldest), walked as at
    most two contiguous runs of the ring (no per-element modulo: an integer division)."""
    size = ring.shape[0]
    first = head + start
    last = head + stop
    if first >= size:
        first -= size
        last -= size
    total = 0.0
    for p in range(first, min(last, size)):
        d = e - ring[p]
        total += math.exp(-d * d * inv)
    for p in range(last - size):
        d = e - ring[p]
        total += math.exp(-d * d * inv)
    return total


@numba.njit(cache=True)
def _median_distance(ring: np.ndarray) -> float:
    size = ring.shape[0]
    distances = np.empty(size * (size - 1) // 2)
    k = 0
    for i in range(size):
        for j in range(i + 1, size):
            distances[k] = abs(ring[i] - ring[j])
            k += 1
    return np.median(distances)


@numba.njit(cache=True)
def _initialise(state: np.ndarray, ring: np.ndarray, sigma: float, m: int) -> None:
    """Set sigma and compute the three pair sums exactly over the full window (once)."""
    head = int(state[_HEAD])
    size = ring.shape[0]
    inv = 1.0 / (2.0 * sigma * sigma)
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    for p in range(size):
        e = ring[(head + p) % size]
        if p < m:
            sxx += 1.0 + 2.0 * _kernel_sum(e, ring, head, p + 1, m, inv)
            sxy += _kernel_sum(e, ring, head, m, size, inv)
        else:
            syy += 1.0 + 2.0 * _kernel_sum(e, ring, head, p + 1, size, inv)
    state[_SIGMA] = sigma
    state[_SXX] = sxx
    state[_SYY] = syy
    state[_SXY] = sxy


@numba.njit("float64(float64[::1], float64)", cache=True)
def mmd_update(state: np.ndarray, close: float) -> float:
    """Add a close to an `MMD` state; return the score, NaN while warming up or if skipped."""
    if not (math.isfinite(close) and close > 0.0):
        return _NAN
    previous = state[_PREV_CLOSE]
    state[_PREV_CLOSE] = close
    if previous == 0.0:  # the first accepted bar: no return yet
        return _NAN
    z = math.log(close / previous)
    m = int(state[_REFERENCE])
    n = int(state[_RECENT])
    size = m + n
    ring = state[_RING : _RING + size]
    count = int(state[_RETURNS])
    head = int(state[_HEAD])
    sigma = state[_SIGMA]
    state[_RETURNS] = count + 1
    if count < size:
        ring[count] = z
    else:
        if sigma > 0.0:
            # Logical positions (0 = oldest): X = 0 .. m-1, Y = m .. W-1. The oldest return a
            # leaves X, b (position m) moves from Y to X, and z joins Y.
            inv = 1.0 / (2.0 * sigma * sigma)
            a = ring[head]
            b = ring[(head + m) % size]
            sa_x = _kernel_sum(a, ring, head, 1, m, inv)
            sa_y = _kernel_sum(a, ring, head, m, size, inv)
            sb_x = _kernel_sum(b, ring, head, 1, m, inv)
            sb_y = _kernel_sum(b, ring, head, m + 1, size, inv)
            sz_x = _kernel_sum(z, ring, head, 1, m + 1, inv)
            sz_y = _kernel_sum(z, ring, head, m + 1, size, inv)
            state[_SXX] += 2.0 * (sb_x - sa_x)
            state[_SYY] += 2.0 * (sz_y - sb_y)
            state[_SXY] += sb_y + sz_x - sa_y - sb_x
        ring[head] = z
        state[_HEAD] = (head + 1) % size
    if count + 1 < size:
        return _NAN
    if sigma == 0.0:
        sigma = state[_BANDWIDTH] if state[_BANDWIDTH] > 0.0 else _median_distance(ring)
        if sigma == 0.0:
            return _NAN
        _initialise(state, ring, sigma, m)
    score = state[_SXX] / (m * m) + state[_SYY] / (n * n) - 2.0 * state[_SXY] / (m * n)
    return max(0.0, score)


@numba.njit("float64[:, ::1](float64[::1], float64[::1])", cache=True)
def _run(state: np.ndarray, close: np.ndarray) -> np.ndarray:
    out = np.empty((close.shape[0], N_OUTPUTS))
    for i in range(close.shape[0]):
        out[i, SCORE] = mmd_update(state, close[i])
    return out


class MMD(Indicator):
    """Gaussian-kernel MMD^2 between a reference and a recent window of log returns, as
    defined in the module docstring; `bandwidth=None` selects the frozen median heuristic.

    Warm-up: reference + recent + 1 bars (later if the median heuristic first gives 0).
    Skipped: a bar with a non-finite or non-positive close.
    """

    __slots__ = ()
    _N_PARAMS = 3

    def __init__(
        self, reference: int = 96, recent: int = 24, bandwidth: float | None = None
    ) -> None:
        if reference < 2 or recent < 2:
            raise ValueError(
                f"MMD windows need at least 2 returns each, got {reference!r}, {recent!r}"
            )
        if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(
                f"MMD bandwidth must be a finite number > 0 or None, got {bandwidth!r}"
            )
        fresh = np.zeros(_RING + reference + recent)
        fresh[:_RETURNS] = (reference, recent, 0.0 if bandwidth is None else bandwidth)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_REFERENCE] + self.state[_RECENT]) + 1

    @property
    def sigma(self) -> float:
        """The bandwidth in use; NaN until the score is first available."""
        sigma = float(self.state[_SIGMA])
        return sigma if sigma > 0.0 else _NAN

    def update(self, close: float) -> float:
        """Add a closed bar's close; return the score."""
        return mmd_update(self.state, close)

    def run(self, close: np.ndarray) -> np.ndarray:
        """Add a series bar by bar (a backfill), continuing the state; (bars, N_OUTPUTS)."""
        return _run(self.state, np.ascontiguousarray(close, np.float64))
