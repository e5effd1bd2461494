"""MLMI in its public original's form: Zeiierman's "Machine Learning Momentum Index".

The canonical form of the indicator (the features' `mlmi = "zeiierman"` option; the
default, actors/indicators/mlmi.py, is a different kNN, its docstring says how). On each
bar, with WMA(x, n) = sum_{i<n} (n - i) x_{t-i} / (n (n + 1) / 2):

- the moving averages MA_quick = WMA(close, `quick_ma`) and MA_slow = WMA(close,
  `slow_ma`) (5 and 20), and the features p1 = WMA(RSI(close, `slow_rsi`), `trend`) and
  p2 = WMA(RSI(close, `quick_rsi`), `trend`) (RSI 20 and 5, both smoothed over 20 bars);
- a point is stored only on a bar where MA_quick crosses MA_slow (over: MA_quick > MA_slow
  after MA_quick <= MA_slow on the bar before; under: the reverse): its features (p1, p2),
  the close, and its label +1 if that close is at or above the close of the point stored
  before it, else -1. The memory starts with one point (0, 0) of close 0 and label 0, as
  the original's arrays do, so the first stored point is labelled +1;
- the prediction (VALUE) is then, with the bar's (p1, p2): the Euclidean distance to every
  stored point, the k-th smallest of them (all of them when fewer than k), and the sum of
  the labels of every point at that distance or closer: ties at the k-th distance all
  vote, so more than k points can. A point stored on this bar votes (store, then predict).
  A point stored while its features were still undefined (a crossing during the RSIs'
  warm-up) keeps its place in the chain of closes but never votes, nor counts towards k:
  its distances are undefined, and the original's `<=` on them is false.

Warm-up: VALUE is NaN until both features are defined (slow_rsi + trend bars, 40 with the
defaults). SIGNAL: the original draws the prediction and its WMA(`signal_ma`) (20) and
leaves trading to the reader; here SIGNAL is +1 on the bar where the prediction crosses
above its WMA, -1 where it crosses below, else 0 (NaN until the WMA is defined).

Departures from the original, all of them:
- the memory keeps the `memory` most recent points (default 2,000, as the default form's;
  the original's arrays grow without end); past it the oldest go, the initial (0, 0)
  point first;
- RSI is `actors.indicators.classic.rsi_update`: Wilder's averages seeded with the mean of
  the first n changes, as Pine's `ta.rsi`, except on a flat market (no gain, no loss),
  where it is 50 and Pine's is 100;
- the k-th distance is found by selection over the stored distances, not by sorting them
  (the same value);
- a bar whose close is not finite leaves the state untouched and outputs NaN.

Cost per bar: O(memory) (one distance per stored point, a selection, a pass for the vote).

State: [k, memory, quick_ma, slow_ma, quick_rsi, slow_rsi, trend, signal_ma, bars,
points stored (ever, the initial one included), MA_quick and MA_slow of the bar before,
prediction and its WMA of the bar before, the quick and slow `Rsi` states, rings of the
last closes, quick RSIs, slow RSIs and predictions, the memory (p1, p2, close, label;
slot = stored mod memory)]; the 2 * memory slots of scratch space are the instance's own,
outside the state (snapshots carry none of it).
"""

import math

import numba
import numpy as np

from actors.indicators.classic import Indicator, Rsi, rsi_update
from actors.indicators.mlmi import N_OUTPUTS, SIGNAL, VALUE, _select

__all__ = ["N_OUTPUTS", "SIGNAL", "VALUE", "ZeiiermanMLMI", "zeiierman_update"]

_NAN = math.nan
(
    _K,
    _MEMORY,
    _QUICK_MA,
    _SLOW_MA,
    _QUICK_RSI,
    _SLOW_RSI,
    _TREND,
    _SIGNAL_MA,
    _RSI_SIZE,
    _BARS,
    _STORED,
    _PREV_QUICK_MA,
    _PREV_SLOW_MA,
    _PREV_PREDICTION,
    _PREV_PREDICTION_MA,
    _RSI_STATES,
) = range(16)


@numba.njit(cache=True)
def _wma(ring: np.ndarray, newest: int, count: int, n: int) -> float:
    """WMA over the last n values of `ring` (slot i mod len), the newest at slot `newest`,
    NaN unless n values were seen and all are finite."""
    if count < n:
        return _NAN
    size = ring.shape[0]
    total = 0.0
    for i in range(n):
        total += (n - i) * ring[(newest - i) % size]
    return total / (n * (n + 1) / 2.0)


@numba.njit("UniTuple(float64, 2)(float64[::1], float64[::1], float64)", cache=True)
def zeiierman_update(state: np.ndarray, scratch: np.ndarray, close: float) -> tuple[float, float]:
    """Add a close to a `ZeiiermanMLMI` state (with 2 * memory slots of `scratch`); return
    (value, signal)."""
    if not math.isfinite(close):
        return _NAN, _NAN
    k, memory = int(state[_K]), int(state[_MEMORY])
    quick_ma, slow_ma = int(state[_QUICK_MA]), int(state[_SLOW_MA])
    trend, signal_ma = int(state[_TREND]), int(state[_SIGNAL_MA])
    rsi_size = int(state[_RSI_SIZE])
    quick = rsi_update(state[_RSI_STATES : _RSI_STATES + rsi_size], close)
    slow = rsi_update(state[_RSI_STATES + rsi_size : _RSI_STATES + 2 * rsi_size], close)

    closes_size = max(quick_ma, slow_ma)
    base = _RSI_STATES + 2 * rsi_size
    closes = state[base : base + closes_size]
    base += closes_size
    quick_rsis = state[base : base + trend]
    slow_rsis = state[base + trend : base + 2 * trend]
    base += 2 * trend
    predictions = state[base : base + signal_ma]
    base += signal_ma
    mem_p1 = state[base : base + memory]
    mem_p2 = state[base + memory : base + 2 * memory]
    mem_close = state[base + 2 * memory : base + 3 * memory]
    mem_label = state[base + 3 * memory : base + 4 * memory]
    distance = scratch[memory:]

    # Rings of the last values, slot t mod size; a NaN (an RSI warming up) in a window
    # makes its WMA NaN.
    t = int(state[_BARS])
    seen = t + 1
    state[_BARS] = seen
    closes[t % closes_size] = close
    quick_rsis[t % trend] = quick
    slow_rsis[t % trend] = slow
    ma_quick = _wma(closes, t % closes_size, seen, quick_ma)
    ma_slow = _wma(closes, t % closes_size, seen, slow_ma)
    p1 = _wma(slow_rsis, t % trend, seen, trend)
    p2 = _wma(quick_rsis, t % trend, seen, trend)

    previous_quick, previous_slow = state[_PREV_QUICK_MA], state[_PREV_SLOW_MA]
    state[_PREV_QUICK_MA], state[_PREV_SLOW_MA] = ma_quick, ma_slow
    crossed = (ma_quick > ma_slow and previous_quick <= previous_slow) or (
        ma_quick < ma_slow and previous_quick >= previous_slow
    )  # False while any of them is NaN
    stored = int(state[_STORED])
    if crossed:
        slot = stored % memory
        mem_label[slot] = 1.0 if close >= mem_close[(stored - 1) % memory] else -1.0
        mem_p1[slot], mem_p2[slot], mem_close[slot] = p1, p2, close
        stored += 1
        state[_STORED] = stored

    prediction = _NAN
    if math.isfinite(p1) and math.isfinite(p2):
        n = min(stored, memory)
        for j in range(n):
            a = p1 - mem_p1[j]
            b = p2 - mem_p2[j]
            distance[j] = math.sqrt(a * a + b * b)
        voters = 0  # points whose features were defined when stored
        for j in range(n):
            if distance[j] == distance[j]:
                scratch[voters] = distance[j]
                voters += 1
        prediction = 0.0
        if voters:
            kth = _select(scratch[:voters], min(k, voters) - 1)
            for j in range(n):
                if distance[j] <= kth:  # False for a NaN distance
                    prediction += mem_label[j]
    predictions[t % signal_ma] = prediction
    average = _wma(predictions, t % signal_ma, seen, signal_ma)
    previous, previous_average = state[_PREV_PREDICTION], state[_PREV_PREDICTION_MA]
    state[_PREV_PREDICTION], state[_PREV_PREDICTION_MA] = prediction, average
    if not (math.isfinite(average) and math.isfinite(previous_average)):
        return prediction, _NAN
    signal = 0.0
    if prediction > average and previous <= previous_average:
        signal = 1.0
    elif prediction < average and previous >= previous_average:
        signal = -1.0
    return prediction, signal


@numba.njit("float64[:, ::1](float64[::1], float64[::1], float64[::1])", cache=True)
def _run(state: np.ndarray, scratch: np.ndarray, close: np.ndarray) -> np.ndarray:
    out = np.empty((close.shape[0], N_OUTPUTS))
    for i in range(close.shape[0]):
        out[i, VALUE], out[i, SIGNAL] = zeiierman_update(state, scratch, close[i])
    return out


class ZeiiermanMLMI(Indicator):
    """Zeiierman's MLMI, as defined in the module docstring (same outputs as `MLMI`).

    Warm-up: slow_rsi + trend bars for VALUE (40 with the defaults), signal_ma - 1 more
    for SIGNAL. Skipped: a bar with a non-finite close."""

    __slots__ = ("scratch",)
    _N_PARAMS = 9

    def __init__(
        self,
        k: int = 200,
        memory: int = 2000,
        quick_ma: int = 5,
        slow_ma: int = 20,
        quick_rsi: int = 5,
        slow_rsi: int = 20,
        trend: int = 20,
        signal_ma: int = 20,
    ) -> None:
        lengths = (quick_ma, slow_ma, quick_rsi, slow_rsi, trend, signal_ma)
        if not (k >= 1 and memory >= 2 and all(n >= 1 for n in lengths)):
            raise ValueError(
                f"Zeiierman MLMI needs k >= 1, memory >= 2 and lengths >= 1, got k={k!r}, "
                f"memory={memory!r}, lengths {lengths!r}"
            )
        quick_state, slow_state = Rsi(quick_rsi).state, Rsi(slow_rsi).state
        rsi_size = quick_state.size
        rings = max(quick_ma, slow_ma) + 2 * trend + signal_ma
        fresh = np.zeros(_RSI_STATES + 2 * rsi_size + rings + 4 * memory)
        fresh[:_RSI_STATES] = (
            k,
            memory,
            *lengths,
            rsi_size,
            0,
            1,  # the initial point (0, 0), close 0, label 0: memory slot 0 (zeros)
            _NAN,
            _NAN,
            _NAN,
            _NAN,
        )
        fresh[_RSI_STATES : _RSI_STATES + rsi_size] = quick_state
        fresh[_RSI_STATES + rsi_size : _RSI_STATES + 2 * rsi_size] = slow_state
        super().__init__(fresh)
        self.scratch = np.zeros(2 * memory)

    @property
    def warmup(self) -> int:
        return int(self.state[_SLOW_RSI] + self.state[_TREND])

    def update(self, close: float) -> tuple[float, float]:
        """Add a closed bar's close; return (value, signal)."""
        return zeiierman_update(self.state, self.scratch, close)

    def run(self, close: np.ndarray) -> np.ndarray:
        """Add a series bar by bar (a backfill), continuing the state; (bars, N_OUTPUTS)."""
        return _run(self.state, self.scratch, np.ascontiguousarray(close, np.float64))
