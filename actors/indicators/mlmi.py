"""MLMI (machine-learning momentum index): a k-nearest-neighbour vote over RSI features.

This is the default form, this project's own. The public original, Zeiierman's "Machine
Learning Momentum Index", is available as `ZeiiermanMLMI` (actors/indicators/
mlmi_zeiierman.py; the features' `mlmi = "zeiierman"` option). This form departs from it:
- features: the raw RSI(5) and RSI(20), where the original smooths both by a 20-bar WMA;
- memory: a point every bar, labelled by the sign of the move over the next `horizon`
  bars once known, where the original stores a point only on a crossing of WMA(close, 5)
  and WMA(close, 20), labelled by the move since the previous stored point;
- vote: exactly k voters (ties at the k-th distance to the most recent) and the sum
  divided by k, where the original sums the labels of every point within the k-th
  distance (ties all vote), unscaled;
- the memory keeps the last `memory` (2,000) points; the original's grows without end;
- SIGNAL: leaving a neutral band, where the original gives none (the canonical form
  signals crossings of the prediction and its WMA).

Bars are indexed t = 0, 1, ... over *valid* bars only (see "Invalid bars" below).

Features. Two RSIs of the closes with Wilder smoothing, periods `fast` and `slow`, each
kept inside this state by `actors.indicators.classic.rsi_update` (average gain AG and loss
AL start as the means of the first n changes, then AG_t = ((n - 1) AG_{t-1} + G_t) / n;
RSI = 100 AG / (AG + AL), 50 when both are 0). The feature point of bar t is
x_t = (RSI_fast_t, RSI_slow_t), defined from t = max(fast, slow); both coordinates share
the 0..100 scale, so plain Euclidean distance is used.

Memory. On bar t >= horizon, the point x_{t-h} (h = `horizon`) gets its label
y = sign(C_t - C_{t-h}) in {-1, 0, +1} and joins the memory, which keeps the `memory` most
recently labelled points (first in, first out). Only labels already known at bar t are
used, so there is no look-ahead.

Vote. With at least k points in memory, the k nearest to x_t (squared Euclidean distance;
ties broken in favour of the more recently labelled point) vote with their labels:
value_t = (sum of their labels) / k, in [-1, 1] (the raw vote in [-k, k] divided by k, so
that the value does not depend on k).

Signal: +1 on the bar where the value leaves the neutral band upwards (value_t > threshold
and value_{t-1} <= threshold), -1 where it leaves it downwards (value_t < -threshold and
value_{t-1} >= -threshold), else 0; the first warm bar has no previous value and gives 0.
A band rather than a bare sign change keeps a vote hovering around 0 from firing every bar.

Outputs (VALUE, SIGNAL) are NaN until x_t is defined and the memory holds k points, i.e.
for t < max(fast, slow) + horizon + k - 1 (220 bars with the defaults).

Invalid bars: a bar whose close is not finite leaves the state untouched and outputs NaN,
so the results at valid bars are exactly those of the series with the invalid bars removed
and a NaN cannot poison the RSI averages or the memory.

Cost per bar: O(memory): one distance per stored point, a histogram of the distances that
locates the k-th smallest, and one pass that sums the votes (see `_vote`); no allocation.

State (the conventions of `actors.indicators.classic`): [k, memory, horizon, fast, slow,
threshold, size of an RSI state, bars accepted, points stored (ever), previous value, the
fast and the slow `Rsi` states, the last horizon + 1 feature pairs and closes (rings, slot
t mod (horizon + 1)), the memory: `memory` fast RSIs, slow RSIs and labels (rings, slot
stored mod memory)]. The vote's scratch space (3 * memory + 992 slots, meaningless between
bars) is the instance's own, outside the state: a bar allocates nothing, and a snapshot
(what the features actor commits) carries none of it.
"""

import math
from typing import Final

import numba
import numpy as np

from actors.indicators.classic import Indicator, Rsi, rsi_update

# Positions in the output tuple of `mlmi_update` / columns of `MLMI.run`.
VALUE: Final = 0
SIGNAL: Final = 1
N_OUTPUTS: Final = 2

_NAN = math.nan
(
    _K,
    _MEMORY,
    _HORIZON,
    _FAST,
    _SLOW,
    _THRESHOLD,
    _RSI_SIZE,
    _BARS,  # bars accepted: the index t of the next one
    _STORED,  # points ever labelled; the memory holds the last min(stored, memory)
    _PREV_VALUE,
    _RSI_STATES,
) = range(11)
# Buckets of the k-th-distance search: squared distances from 2^-16 (and below) up to
# 2^15 > 2 * 100^2, 32 buckets per power of two.
_MANTISSA_BITS = 5
_SHIFT = 52 - _MANTISSA_BITS
_FIRST_KEY = (1023 - 16) << _MANTISSA_BITS
_BUCKETS = 31 << _MANTISSA_BITS


@numba.njit(cache=True)
def _select(a: np.ndarray, k: int) -> float:
    """The k-th smallest value (0-based) of `a`, which is reordered: Hoare's selection with a
    median-of-three pivot, O(len(a)) on average."""
    lo = 0
    hi = a.shape[0] - 1
    while lo < hi:
        x = a[lo]
        y = a[(lo + hi) // 2]
        z = a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while pivot < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        # Now a[lo..j] <= pivot <= a[i..hi] and every element between them equals pivot.
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return pivot
    return a[k]


@numba.njit(cache=True)
def _bucket(bits: int) -> int:
    """The histogram bucket of a squared distance d >= 0 from its float64 bits: exponent and
    top _MANTISSA_BITS mantissa bits, clamped. Non-decreasing in d, so every value in a
    lower bucket is smaller; buckets are ~3% wide relative to d."""
    return min(max((bits >> _SHIFT) - _FIRST_KEY, 0), _BUCKETS - 1)


@numba.njit(cache=True)
def _vote(
    distance: np.ndarray, labels: np.ndarray, newest: int, k: int, scratch: np.ndarray
) -> float:
    """Sum of the labels of the k smallest distances (ties to the most recent point: ring
    order, newest at slot `newest`); `scratch` holds 2 len(distance) + _BUCKETS slots.

    A histogram finds the bucket holding the k-th smallest distance; the points of lower
    buckets all vote, and only that bucket's few members are looked at one by one. Unlike a
    selection over all points, the passes barely branch: on 2,000 points quickselect's
    mispredicted comparisons cost ~25 us, this a few."""
    n = distance.shape[0]
    bits = distance.view(np.int64)
    counts = scratch[2 * n : 2 * n + _BUCKETS].view(np.int64)
    counts[:] = 0
    for j in range(n):
        counts[_bucket(bits[j])] += 1
    below = 0
    target = 0
    while below + counts[target] < k:
        below += counts[target]
        target += 1

    members = scratch[:n].view(np.int64)
    values = scratch[n : 2 * n]
    vote = 0.0
    m = 0
    for j in range(n):
        key = _bucket(bits[j])
        vote += labels[j] if key < target else 0.0
        if key == target:
            members[m] = j
            values[m] = distance[j]
            m += 1
    need = k - below  # places left, 1 .. m
    kth = _select(values[:m], need - 1)
    tied = 0
    tied_vote = 0.0
    for i in range(m):
        j = members[i]
        if distance[j] < kth:
            vote += labels[j]
            need -= 1
        elif distance[j] == kth:
            tied += 1
            tied_vote += labels[j]
    if tied == need:
        return vote + tied_vote
    j = newest  # more points at the k-th distance than places: the most recent ones win
    while need > 0:
        if distance[j] == kth:
            vote += labels[j]
            need -= 1
        j = j - 1 if j > 0 else n - 1
    return vote


@numba.njit("UniTuple(float64, 2)(float64[::1], float64[::1], float64)", cache=True)
def mlmi_update(state: np.ndarray, scratch: np.ndarray, close: float) -> tuple[float, float]:
    """Add a close to an `MLMI` state (with `scratch_size(memory)` slots of `scratch`);
    return (value, signal), NaN while warming up or if skipped."""
    if not math.isfinite(close):
        return _NAN, _NAN
    k = int(state[_K])
    memory = int(state[_MEMORY])
    horizon = int(state[_HORIZON])
    rsi_size = int(state[_RSI_SIZE])
    fast_rsi = rsi_update(state[_RSI_STATES : _RSI_STATES + rsi_size], close)
    slow_rsi = rsi_update(state[_RSI_STATES + rsi_size : _RSI_STATES + 2 * rsi_size], close)
    ready = math.isfinite(fast_rsi) and math.isfinite(slow_rsi)

    pending = horizon + 1
    base = _RSI_STATES + 2 * rsi_size
    pend_fast = state[base : base + pending]
    pend_slow = state[base + pending : base + 2 * pending]
    pend_close = state[base + 2 * pending : base + 3 * pending]
    base += 3 * pending
    mem_fast = state[base : base + memory]
    mem_slow = state[base + memory : base + 2 * memory]
    mem_label = state[base + 2 * memory : base + 3 * memory]

    t = int(state[_BARS])
    state[_BARS] = t + 1
    slot = t % pending
    pend_fast[slot] = fast_rsi
    pend_slow[slot] = slow_rsi
    pend_close[slot] = close
    stored = int(state[_STORED])
    if t >= horizon:
        old = (t - horizon) % pending
        if math.isfinite(pend_fast[old]) and math.isfinite(pend_slow[old]):
            write = stored % memory
            mem_fast[write] = pend_fast[old]
            mem_slow[write] = pend_slow[old]
            mem_label[write] = np.sign(close - pend_close[old])
            stored += 1
            state[_STORED] = stored
    if not ready or stored < k:
        return _NAN, _NAN

    n = min(stored, memory)
    distance = scratch[:n]
    for j in range(n):
        a = mem_fast[j] - fast_rsi
        b = mem_slow[j] - slow_rsi
        distance[j] = a * a + b * b
    vote = _vote(distance, mem_label[:n], (stored - 1) % memory, k, scratch[n:])
    value = vote / k

    threshold = state[_THRESHOLD]
    previous = state[_PREV_VALUE]  # NaN before the first value: no crossing
    signal = 0.0
    if value > threshold and previous <= threshold:
        signal = 1.0
    elif value < -threshold and previous >= -threshold:
        signal = -1.0
    state[_PREV_VALUE] = value
    return value, signal


@numba.njit("float64[:, ::1](float64[::1], float64[::1], float64[::1])", cache=True)
def _run(state: np.ndarray, scratch: np.ndarray, close: np.ndarray) -> np.ndarray:
    out = np.empty((close.shape[0], N_OUTPUTS))
    for i in range(close.shape[0]):
        out[i, VALUE], out[i, SIGNAL] = mlmi_update(state, scratch, close[i])
    return out


def scratch_size(memory: int) -> int:
    """The slots of scratch space a vote over `memory` points needs."""
    return 3 * memory + _BUCKETS


class MLMI(Indicator):
    """k-nearest-neighbour momentum vote over (fast RSI, slow RSI), as defined in the module
    docstring.

    Warm-up: max(fast, slow) + horizon + k bars (221 with the defaults). Skipped: a bar with
    a non-finite close.
    """

    __slots__ = ("scratch",)
    _N_PARAMS = 6

    def __init__(
        self,
        k: int = 200,
        memory: int = 2000,
        horizon: int = 1,
        fast: int = 5,
        slow: int = 20,
        threshold: float = 0.2,
    ) -> None:
        if not (1 <= k <= memory and horizon >= 1 and fast >= 1 and slow >= 1):
            raise ValueError(
                f"MLMI needs 1 <= k <= memory, horizon >= 1, fast >= 1 and slow >= 1, got "
                f"k={k!r}, memory={memory!r}, horizon={horizon!r}, fast={fast!r}, slow={slow!r}"
            )
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"MLMI threshold must lie in [0, 1), got {threshold!r}")
        fast_state = Rsi(fast).state
        slow_state = Rsi(slow).state
        rsi_size = fast_state.size
        pending = horizon + 1
        fresh = np.zeros(_RSI_STATES + 2 * rsi_size + 3 * pending + 3 * memory)
        fresh[:_RSI_STATES] = (k, memory, horizon, fast, slow, threshold, rsi_size, 0, 0, _NAN)
        fresh[_RSI_STATES : _RSI_STATES + rsi_size] = fast_state
        fresh[_RSI_STATES + rsi_size : _RSI_STATES + 2 * rsi_size] = slow_state
        super().__init__(fresh)
        self.scratch = np.zeros(scratch_size(memory))

    @property
    def warmup(self) -> int:
        s = self.state
        return int(max(s[_FAST], s[_SLOW]) + s[_HORIZON] + s[_K])

    def update(self, close: float) -> tuple[float, float]:
        """Add a closed bar's close; return (value, signal)."""
        return mlmi_update(self.state, self.scratch, close)

    def run(self, close: np.ndarray) -> np.ndarray:
        """Add a series bar by bar (a backfill), continuing the state; (bars, N_OUTPUTS)."""
        return _run(self.state, self.scratch, np.ascontiguousarray(close, np.float64))
