"""Classic bar indicators updated incrementally in numba: ATR, RSI, MACD, Bollinger bands,
momentum, realized volatility, volume ratio and volume-profile skew.

The bars actor updates them once per closed 5-minute and 30-minute bar on the hot path, so
an update costs O(1) (recursive smoothers) or O(window) (rolling statistics recomputed from
a ring buffer holding the window: exact, where running sums would drift) and never
revisits the history.

Conventions shared by every indicator:
- State: one C-contiguous float64 array per indicator, starting with its parameters, then
  counters and running values, then any ring buffer (the layout is in each class's
  docstring). A snapshot is a copy of the array; `restore` copies one back after checking
  that its parameters match. Counters are floats, exact up to 2**53 bars.
- Kernel: `<name>_update(state, <bar inputs>) -> value(s)`, a `numba.njit` function with an
  explicit signature, so it is compiled (or loaded from numba's cache) at import rather
  than on the first bar, and callable from other numba code. The class's `update` wraps it.
- Warm-up: the value is NaN until the indicator has accepted `warmup` bars; the value
  returned with the `warmup`-th accepted bar is the first finite one.
- Invalid inputs: an input that is NaN or infinite, a close <= 0 where a ratio or logarithm
  of closes is taken, or a volume < 0: the bar is skipped, i.e. the state is left exactly
  as it was and NaN is returned, so a bad bar costs one missing value rather than poisoning
  every later one. Lags and windows count accepted bars.
- Bars are assumed consistent (low <= close <= high); checking that is the replay's job.
"""

import math
from collections.abc import Sequence
from enum import IntEnum

import numba
import numpy as np

_NAN = math.nan


def _check_int(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float | np.floating) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


class Indicator:
    """Holder of one indicator's state array (see the module docstring)."""

    __slots__ = ("state",)
    _N_PARAMS: int  # leading state slots that hold the parameters

    def __init__(self, state: np.ndarray) -> None:
        self.state = state

    def move_to(self, view: np.ndarray) -> None:
        """Copy the state into `view`, which holds it from now on: e.g. a slice of a buffer
        shared by several indicators, so that the set is snapshotted with one copy."""
        if (
            not isinstance(view, np.ndarray)
            or view.dtype != np.float64
            or view.shape != self.state.shape
            or not view.flags.c_contiguous
            or not view.flags.writeable
        ):
            raise ValueError(
                f"view must be a writeable C-contiguous float64 array of shape {self.state.shape}"
            )
        view[:] = self.state
        self.state = view

    def snapshot(self) -> np.ndarray:
        """A copy of the state, for `restore`."""
        return self.state.copy()

    def check_snapshot(self, snapshot: np.ndarray) -> None:
        """Raise ValueError unless `snapshot` is a state of this indicator's shape and
        parameters (restoring another configuration's state would misread its layout)."""
        n = self._N_PARAMS
        if (
            not isinstance(snapshot, np.ndarray)
            or snapshot.shape != self.state.shape
            or not np.array_equal(snapshot[:n], self.state[:n])
        ):
            raise ValueError(
                f"not a snapshot of this {type(self).__name__}: expected shape "
                f"{self.state.shape} and parameters {self.state[:n].tolist()}"
            )

    def restore(self, snapshot: np.ndarray) -> None:
        """Continue from a `snapshot` of an indicator with the same parameters."""
        self.check_snapshot(snapshot)
        self.state[:] = snapshot


# ATR -----------------------------------------------------------------------------------

_ATR_PERIOD, _ATR_COUNT, _ATR_PREV_CLOSE, _ATR_TR_SUM, _ATR_VALUE = range(5)


@numba.njit("float64(float64[::1], float64, float64, float64)", cache=True)
def atr_update(state: np.ndarray, high: float, low: float, close: float) -> float:
    """Add a bar to an `Atr` state; return the ATR (NaN while warming up or for a skipped bar)."""
    if not (math.isfinite(high) and math.isfinite(low) and math.isfinite(close)):
        return _NAN
    n = state[_ATR_PERIOD]
    count = state[_ATR_COUNT] + 1.0
    state[_ATR_COUNT] = count
    if count == 1.0:
        true_range = high - low
    else:
        prev = state[_ATR_PREV_CLOSE]
        true_range = max(high - low, abs(high - prev), abs(low - prev))
    state[_ATR_PREV_CLOSE] = close
    if count < n:
        state[_ATR_TR_SUM] += true_range
    elif count == n:
        state[_ATR_VALUE] = (state[_ATR_TR_SUM] + true_range) / n
    else:
        state[_ATR_VALUE] = ((n - 1.0) * state[_ATR_VALUE] + true_range) / n
    return state[_ATR_VALUE]


class Atr(Indicator):
    """Average true range with Wilder smoothing, in price units.

    With C_{t-1} the previous accepted close, the true range is
    TR_t = max(H_t - L_t, |H_t - C_{t-1}|, |L_t - C_{t-1}|), and TR_1 = H_1 - L_1 for the
    first bar, which has no previous close. Then
    ATR_n = mean(TR_1..TR_n) and ATR_t = ((n - 1) * ATR_{t-1} + TR_t) / n for t > n.
    Warm-up: n bars. Skipped: a bar with a non-finite high, low or close.
    `actors.bars.builder` stamps every bar's `atr` with this indicator (period 14).

    State: [period, bars accepted, previous close, sum of the first n - 1 TRs, ATR].
    """

    __slots__ = ()
    _N_PARAMS = 1

    def __init__(self, period: int = 14) -> None:
        _check_int("period", period, 1)
        fresh = np.array([period, 0.0, _NAN, 0.0, _NAN])
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_ATR_PERIOD])

    def update(self, high: float, low: float, close: float) -> float:
        return atr_update(self.state, high, low, close)


# RSI -----------------------------------------------------------------------------------

_RSI_PERIOD, _RSI_COUNT, _RSI_PREV_CLOSE, _RSI_GAIN, _RSI_LOSS = range(5)


@numba.njit("float64(float64[::1], float64)", cache=True)
def rsi_update(state: np.ndarray, close: float) -> float:
    """Add a close to an `Rsi` state; return the RSI (NaN while warming up or if skipped)."""
    if not math.isfinite(close):
        return _NAN
    count = state[_RSI_COUNT] + 1.0
    state[_RSI_COUNT] = count
    prev = state[_RSI_PREV_CLOSE]
    state[_RSI_PREV_CLOSE] = close
    if count == 1.0:
        return _NAN
    change = close - prev
    gain = max(change, 0.0)
    loss = max(-change, 0.0)
    n = state[_RSI_PERIOD]
    if count <= n:  # changes 1 .. n-1: the slots hold sums
        state[_RSI_GAIN] += gain
        state[_RSI_LOSS] += loss
        return _NAN
    if count == n + 1.0:
        avg_gain = (state[_RSI_GAIN] + gain) / n
        avg_loss = (state[_RSI_LOSS] + loss) / n
    else:
        avg_gain = ((n - 1.0) * state[_RSI_GAIN] + gain) / n
        avg_loss = ((n - 1.0) * state[_RSI_LOSS] + loss) / n
    state[_RSI_GAIN] = avg_gain
    state[_RSI_LOSS] = avg_loss
    total = avg_gain + avg_loss
    if total == 0.0:
        return 50.0
    return 100.0 * avg_gain / total


class Rsi(Indicator):
    """Relative strength index with Wilder smoothing, in [0, 100].

    With the close-to-close changes d_t = C_t - C_{t-1} (t >= 2), gains g_t = max(d_t, 0)
    and losses l_t = max(-d_t, 0): G_{n+1} = mean(g_2..g_{n+1}), likewise L, then
    G_t = ((n - 1) * G_{t-1} + g_t) / n (Wilder), and
    RSI_t = 100 - 100 / (1 + G_t / L_t) = 100 * G_t / (G_t + L_t),
    which is 100 when L_t = 0 and is defined as 50 when G_t = L_t = 0 (a flat market).
    Warm-up: n + 1 bars (n changes). Skipped: a bar with a non-finite close.

    State: [period, bars accepted, previous close, G, L]; during warm-up G and L hold the
    sums of the gains and losses so far.
    """

    __slots__ = ()
    _N_PARAMS = 1

    def __init__(self, period: int = 14) -> None:
        _check_int("period", period, 1)
        fresh = np.array([period, 0.0, _NAN, 0.0, 0.0])
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_RSI_PERIOD]) + 1

    def update(self, close: float) -> float:
        return rsi_update(self.state, close)


# MACD ----------------------------------------------------------------------------------

(
    _MACD_FAST,
    _MACD_SLOW,
    _MACD_SIGNAL,
    _MACD_COUNT,
    _MACD_EMA_FAST,
    _MACD_EMA_SLOW,
    _MACD_EMA_SIGNAL,
) = range(7)


@numba.njit("UniTuple(float64, 3)(float64[::1], float64)", cache=True)
def macd_update(state: np.ndarray, close: float) -> tuple[float, float, float]:
    """Add a close to a `Macd` state; return (MACD, signal, histogram), NaN while warming up
    or if skipped."""
    if not math.isfinite(close):
        return _NAN, _NAN, _NAN
    count = state[_MACD_COUNT] + 1.0
    state[_MACD_COUNT] = count
    if count == 1.0:
        state[_MACD_EMA_FAST] = close
        state[_MACD_EMA_SLOW] = close
    else:
        state[_MACD_EMA_FAST] += 2.0 / (state[_MACD_FAST] + 1.0) * (close - state[_MACD_EMA_FAST])
        state[_MACD_EMA_SLOW] += 2.0 / (state[_MACD_SLOW] + 1.0) * (close - state[_MACD_EMA_SLOW])
    slow = state[_MACD_SLOW]
    if count < slow:
        return _NAN, _NAN, _NAN
    line = state[_MACD_EMA_FAST] - state[_MACD_EMA_SLOW]
    signal_period = state[_MACD_SIGNAL]
    if count == slow:
        state[_MACD_EMA_SIGNAL] = line
    else:
        state[_MACD_EMA_SIGNAL] += 2.0 / (signal_period + 1.0) * (line - state[_MACD_EMA_SIGNAL])
    if count < slow + signal_period - 1.0:
        return line, _NAN, _NAN
    signal = state[_MACD_EMA_SIGNAL]
    return line, signal, line - signal


class Macd(Indicator):
    """Moving average convergence/divergence, in price units.

    EMA_n with alpha = 2 / (n + 1), seeded with the first value it sees:
    E_1 = x_1, E_t = E_{t-1} + alpha * (x_t - E_{t-1}). The fast and slow EMAs of the close
    run from the first bar; MACD_t = EMA_fast(C)_t - EMA_slow(C)_t is reported from bar
    `slow` on (an EMA seeded with one value is reported once it has seen as many values as
    its period, the warm-up of a simple average). The signal line is the EMA_signal of the
    MACD seeded with the first reported MACD (bar `slow`) and reported from bar
    slow + signal - 1 on; histogram = MACD - signal.
    Warm-up: slow + signal - 1 bars (34 for 12/26/9) for all three values; the MACD line
    alone is finite from bar `slow`. Skipped: a bar with a non-finite close.

    State: [fast, slow, signal, bars accepted, EMA fast, EMA slow, EMA signal].
    """

    __slots__ = ()
    _N_PARAMS = 3

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_int("fast", fast, 1)
        _check_int("slow", slow, fast + 1)
        _check_int("signal", signal, 1)
        fresh = np.array([fast, slow, signal, 0.0, _NAN, _NAN, _NAN])
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_MACD_SLOW] + self.state[_MACD_SIGNAL]) - 1

    def update(self, close: float) -> tuple[float, float, float]:
        return macd_update(self.state, close)


# Bollinger bands -----------------------------------------------------------------------

_BB_PERIOD, _BB_WIDTH, _BB_COUNT, _BB_POS, _BB_RING = range(5)


@numba.njit("UniTuple(float64, 3)(float64[::1], float64)", cache=True)
def bollinger_update(state: np.ndarray, close: float) -> tuple[float, float, float]:
    """Add a close to a `Bollinger` state; return (middle, upper, lower), NaN while warming
    up or if skipped."""
    if not math.isfinite(close):
        return _NAN, _NAN, _NAN
    n = int(state[_BB_PERIOD])
    pos = int(state[_BB_POS])
    state[_BB_RING + pos] = close
    state[_BB_POS] = (pos + 1) % n
    count = state[_BB_COUNT] + 1.0
    state[_BB_COUNT] = count
    if count < n:
        return _NAN, _NAN, _NAN
    total = 0.0
    for i in range(_BB_RING, _BB_RING + n):
        total += state[i]
    mean = total / n
    squares = 0.0
    for i in range(_BB_RING, _BB_RING + n):
        deviation = state[i] - mean
        squares += deviation * deviation
    half_width = state[_BB_WIDTH] * math.sqrt(squares / n)
    return mean, mean + half_width, mean - half_width


class Bollinger(Indicator):
    """Bollinger bands, in price units.

    Over the last n closes: middle = mean, sd = population standard deviation
    (sqrt(sum((C - mean)^2) / n), as Bollinger defines it), upper = middle + width * sd,
    lower = middle - width * sd. Recomputed from the window each bar (O(n), two-pass), so it
    carries no rounding drift. Warm-up: n bars. Skipped: a bar with a non-finite close.

    State: [period, width, bars accepted, next ring slot, the last n closes (ring)].
    """

    __slots__ = ()
    _N_PARAMS = 2

    def __init__(self, period: int = 20, width: float = 2.0) -> None:
        _check_int("period", period, 1)
        _check_positive("width", width)
        fresh = np.full(_BB_RING + period, _NAN)
        fresh[:_BB_RING] = (period, width, 0.0, 0.0)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_BB_PERIOD])

    def update(self, close: float) -> tuple[float, float, float]:
        return bollinger_update(self.state, close)


# Momentum ------------------------------------------------------------------------------

_MOM_LAG, _MOM_COUNT, _MOM_POS, _MOM_RING = range(4)


@numba.njit("float64(float64[::1], float64)", cache=True)
def momentum_update(state: np.ndarray, close: float) -> float:
    """Add a close to a `Momentum` state; return the momentum in percent (NaN while warming
    up or if skipped)."""
    if not (math.isfinite(close) and close > 0.0):
        return _NAN
    k = int(state[_MOM_LAG])
    slot = _MOM_RING + int(state[_MOM_POS])
    past = state[slot]  # C_{t-k} once k closes are in the ring
    state[slot] = close
    state[_MOM_POS] = (slot - _MOM_RING + 1) % k
    count = state[_MOM_COUNT] + 1.0
    state[_MOM_COUNT] = count
    if count <= k:
        return _NAN
    return (close - past) / past * 100.0


class Momentum(Indicator):
    """Price momentum over k bars, in percent: (C_t - C_{t-k}) / C_{t-k} * 100.

    Warm-up: k + 1 bars. Skipped: a bar whose close is not finite or not > 0 (a percentage
    change from a non-positive price means nothing).

    State: [k, bars accepted, next ring slot, the last k closes (ring)].
    """

    __slots__ = ()
    _N_PARAMS = 1

    def __init__(self, lag: int) -> None:
        _check_int("lag", lag, 1)
        fresh = np.full(_MOM_RING + lag, _NAN)
        fresh[:_MOM_RING] = (lag, 0.0, 0.0)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_MOM_LAG]) + 1

    def update(self, close: float) -> float:
        return momentum_update(self.state, close)


# Realized volatility -------------------------------------------------------------------

_RV_WINDOW, _RV_BARS_PER_YEAR, _RV_COUNT, _RV_POS, _RV_PREV_CLOSE, _RV_RING = range(6)


@numba.njit("UniTuple(float64, 2)(float64[::1], float64)", cache=True)
def realized_volatility_update(state: np.ndarray, close: float) -> tuple[float, float]:
    """Add a close to a `RealizedVolatility` state; return (per bar, annualized), NaN while
    warming up or if skipped."""
    if not (math.isfinite(close) and close > 0.0):
        return _NAN, _NAN
    count = state[_RV_COUNT] + 1.0
    state[_RV_COUNT] = count
    prev = state[_RV_PREV_CLOSE]
    state[_RV_PREV_CLOSE] = close
    if count == 1.0:
        return _NAN, _NAN
    n = int(state[_RV_WINDOW])
    pos = int(state[_RV_POS])
    state[_RV_RING + pos] = math.log(close / prev)
    state[_RV_POS] = (pos + 1) % n
    if count <= n:
        return _NAN, _NAN
    total = 0.0
    for i in range(_RV_RING, _RV_RING + n):
        total += state[i]
    mean = total / n
    squares = 0.0
    for i in range(_RV_RING, _RV_RING + n):
        deviation = state[i] - mean
        squares += deviation * deviation
    per_bar = math.sqrt(squares / (n - 1))
    return per_bar, per_bar * math.sqrt(state[_RV_BARS_PER_YEAR])


class RealizedVolatility(Indicator):
    """Realized volatility: the sample standard deviation of the last n log returns.

    r_t = ln(C_t / C_{t-1}); per_bar = sqrt(sum((r - mean(r))^2) / (n - 1)) over the last n
    returns (ddof 1: the unbiased variance estimate), a fraction per bar, not annualized;
    annualized = per_bar * sqrt(bars_per_year), with bars_per_year the number of bars of this
    timeframe in a trading year, e.g. 252 * 13 = 3276 for 30-minute bars of a 6.5-hour
    session. Recomputed from the window each bar (O(n), two-pass).
    Warm-up: n + 1 bars (n returns). Skipped: a bar whose close is not finite or not > 0.

    State: [n, bars_per_year, bars accepted, next ring slot, previous close,
    the last n log returns (ring)].
    """

    __slots__ = ()
    _N_PARAMS = 2

    def __init__(self, window: int = 30, *, bars_per_year: float) -> None:
        _check_int("window", window, 2)
        _check_positive("bars_per_year", bars_per_year)
        fresh = np.full(_RV_RING + window, _NAN)
        fresh[:_RV_RING] = (window, bars_per_year, 0.0, 0.0, _NAN)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_RV_WINDOW]) + 1

    def update(self, close: float) -> tuple[float, float]:
        return realized_volatility_update(self.state, close)


# Volume ratio --------------------------------------------------------------------------

_VR_PERIOD, _VR_COUNT, _VR_EMA = range(3)


@numba.njit("UniTuple(float64, 2)(float64[::1], float64)", cache=True)
def volume_ratio_update(state: np.ndarray, volume: float) -> tuple[float, float]:
    """Add a bar's volume to a `VolumeRatio` state; return (ratio, feature), NaN while
    warming up, if skipped, or while no volume has traded."""
    if not (math.isfinite(volume) and volume >= 0.0):
        return _NAN, _NAN
    count = state[_VR_COUNT] + 1.0
    state[_VR_COUNT] = count
    if count == 1.0:
        ema = volume
    else:
        ema = state[_VR_EMA] + 2.0 / (state[_VR_PERIOD] + 1.0) * (volume - state[_VR_EMA])
    state[_VR_EMA] = ema
    if count < state[_VR_PERIOD] or ema == 0.0:
        return _NAN, _NAN
    ratio = volume / ema
    return ratio, math.tanh(math.log1p(max(0.0, ratio - 1.0)))


class VolumeRatio(Indicator):
    """Volume relative to its EMA, and the tactical volume feature.

    EMA_n of the volume with alpha = 2 / (n + 1), seeded with the first volume and
    including the current bar: E_1 = V_1, E_t = E_{t-1} + alpha * (V_t - E_{t-1});
    ratio_t = V_t / E_t; feature_t = tanh(ln(1 + max(0, ratio_t - 1))), in [0, 1): 0 at or
    below average volume, rising with the surge. Both are NaN while E_t = 0 (no volume has
    traded yet, so the ratio is 0/0). Warm-up: n bars, as for MACD's EMAs.
    Skipped: a bar whose volume is not finite or is < 0.

    State: [n, bars accepted, EMA].
    """

    __slots__ = ()
    _N_PARAMS = 1

    def __init__(self, period: int = 20) -> None:
        _check_int("period", period, 1)
        fresh = np.array([period, 0.0, _NAN])
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_VR_PERIOD])

    def update(self, volume: float) -> tuple[float, float]:
        return volume_ratio_update(self.state, volume)


# Volume-profile skew -------------------------------------------------------------------

_VPS_WINDOW, _VPS_COUNT, _VPS_POS, _VPS_RING = range(4)


@numba.njit("float64(float64[::1], float64, float64, float64, float64)", cache=True)
def volume_profile_skew_update(
    state: np.ndarray, high: float, low: float, close: float, volume: float
) -> float:
    """Add a bar to a `VolumeProfileSkew` state; return the skewness (NaN while warming up,
    if skipped, or when the window holds no volume)."""
    if not (
        math.isfinite(high)
        and math.isfinite(low)
        and math.isfinite(close)
        and math.isfinite(volume)
        and volume >= 0.0
    ):
        return _NAN
    n = int(state[_VPS_WINDOW])
    pos = int(state[_VPS_POS])
    price = (high + low + close) / 3.0
    state[_VPS_RING + pos] = price
    state[_VPS_RING + n + pos] = volume
    state[_VPS_POS] = (pos + 1) % n
    count = state[_VPS_COUNT] + 1.0
    state[_VPS_COUNT] = count
    if count < n:
        return _NAN
    prices = state[_VPS_RING : _VPS_RING + n]
    volumes = state[_VPS_RING + n : _VPS_RING + 2 * n]
    # Deviations from the latest price: exact zeros for equal prices, so a flat window has
    # m2 == 0 exactly instead of rounding noise that would give a skew of +-1.
    weight = 0.0
    first = 0.0
    for i in range(n):
        weight += volumes[i]
        first += volumes[i] * (prices[i] - price)
    if weight == 0.0:
        return _NAN
    mean = first / weight
    m2 = 0.0
    m3 = 0.0
    for i in range(n):
        deviation = prices[i] - price - mean
        squared = deviation * deviation
        m2 += volumes[i] * squared
        m3 += volumes[i] * squared * deviation
    if m2 == 0.0:
        return 0.0
    m2 /= weight
    m3 /= weight
    return m3 / (m2 * math.sqrt(m2))


class VolumeProfileSkew(Indicator):
    """Skewness of the volume profile of the last n bars: where the volume traded, in price.

    Each bar contributes its typical price p = (H + L + C) / 3 with weight V (its volume).
    With W = sum V, mu = sum(V p) / W, m2 = sum(V (p - mu)^2) / W, m3 = sum(V (p - mu)^3) / W:
    skew = m3 / m2^1.5 (the volume-weighted Fisher-Pearson coefficient, no small-sample
    correction). Positive: the volume sits at the low prices of the window with a thin tail
    of trading above (a bottom-heavy profile); negative: the reverse. 0 when every bar of
    the window has one price (m2 = 0); NaN when the window holds no volume (W = 0).
    Recomputed from the window each bar (O(n)). Warm-up: n bars. Skipped: a bar with a
    non-finite high, low, close or volume, or a volume < 0.

    State: [n, bars accepted, next ring slot, the last n typical prices (ring),
    their n volumes (ring, same slots)].
    """

    __slots__ = ()
    _N_PARAMS = 1

    def __init__(self, window: int = 48) -> None:
        _check_int("window", window, 2)
        fresh = np.full(_VPS_RING + 2 * window, _NAN)
        fresh[:_VPS_RING] = (window, 0.0, 0.0)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_VPS_WINDOW])

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        return volume_profile_skew_update(self.state, high, low, close, volume)


# The whole set -------------------------------------------------------------------------


class Output(IntEnum):
    """Columns of `ClassicIndicators.values`."""

    ATR = 0
    RSI = 1
    MACD = 2
    MACD_SIGNAL = 3
    MACD_HISTOGRAM = 4
    BB_MIDDLE = 5
    BB_UPPER = 6
    BB_LOWER = 7
    MOMENTUM_SHORT = 8  # momentum_lags[0], 5 by default
    MOMENTUM_MEDIUM = 9  # momentum_lags[1], 20 by default
    MOMENTUM_LONG = 10  # momentum_lags[2], 50 by default
    VOLATILITY = 11  # per bar
    VOLATILITY_ANNUALIZED = 12
    VOLUME_RATIO = 13
    VOLUME_FEATURE = 14
    VOLUME_PROFILE_SKEW = 15


_BARS, _INVALID_BARS, _HEADER = 0, 1, 2  # header slots of ClassicIndicators.state


@numba.njit(
    "void(float64[::1], int64[::1], float64[::1], float64, float64, float64, float64)",
    cache=True,
)
def _update_all(
    state: np.ndarray,
    bounds: np.ndarray,
    out: np.ndarray,
    high: float,
    low: float,
    close: float,
    volume: float,
) -> None:
    """One bar through every indicator of a `ClassicIndicators` (one numba call per bar)."""
    state[_BARS] += 1.0
    if not (
        math.isfinite(high)
        and math.isfinite(low)
        and math.isfinite(volume)
        and math.isfinite(close)
        and close > 0.0
        and volume >= 0.0
    ):
        state[_INVALID_BARS] += 1.0
        out[:] = _NAN
        return
    b = bounds
    out[Output.ATR] = atr_update(state[b[0] : b[1]], high, low, close)
    out[Output.RSI] = rsi_update(state[b[1] : b[2]], close)
    out[Output.MACD], out[Output.MACD_SIGNAL], out[Output.MACD_HISTOGRAM] = macd_update(
        state[b[2] : b[3]], close
    )
    out[Output.BB_MIDDLE], out[Output.BB_UPPER], out[Output.BB_LOWER] = bollinger_update(
        state[b[3] : b[4]], close
    )
    out[Output.MOMENTUM_SHORT] = momentum_update(state[b[4] : b[5]], close)
    out[Output.MOMENTUM_MEDIUM] = momentum_update(state[b[5] : b[6]], close)
    out[Output.MOMENTUM_LONG] = momentum_update(state[b[6] : b[7]], close)
    out[Output.VOLATILITY], out[Output.VOLATILITY_ANNUALIZED] = realized_volatility_update(
        state[b[7] : b[8]], close
    )
    out[Output.VOLUME_RATIO], out[Output.VOLUME_FEATURE] = volume_ratio_update(
        state[b[8] : b[9]], volume
    )
    out[Output.VOLUME_PROFILE_SKEW] = volume_profile_skew_update(
        state[b[9] : b[10]], high, low, close, volume
    )


class ClassicIndicators:
    """Every classic indicator of one symbol and timeframe, updated with one call per bar.

    All the indicators' states are views into one array, `state`
    ([bars seen, invalid bars, then each indicator's state in the order of the attributes
    atr, rsi, macd, bollinger, momentum (3), volatility, volume, skew]), so a snapshot of
    the set is one copy. A bar is invalid, and skipped by every indicator at once so that
    they all count the same bars, when a field is not finite, the close is <= 0, or the
    volume is < 0: its values are all NaN and it is counted in `invalid_bars`.

    `update` writes the bar's values into `values` (float64, indexed by `Output`) and
    returns that array, which is reused: copy it to keep a bar's values.
    """

    __slots__ = (
        "_bounds",
        "atr",
        "bollinger",
        "macd",
        "momentum",
        "rsi",
        "skew",
        "state",
        "values",
        "volatility",
        "volume",
    )

    def __init__(
        self,
        *,
        bars_per_year: float,
        atr_period: int = 14,
        rsi_period: int = 14,
        macd_periods: tuple[int, int, int] = (12, 26, 9),
        bollinger_period: int = 20,
        bollinger_width: float = 2.0,
        momentum_lags: Sequence[int] = (5, 20, 50),
        volatility_window: int = 30,
        volume_period: int = 20,
        skew_window: int = 48,
    ) -> None:
        if len(momentum_lags) != 3:
            raise ValueError(f"momentum_lags must be three lags, got {list(momentum_lags)}")
        self.atr = Atr(atr_period)
        self.rsi = Rsi(rsi_period)
        self.macd = Macd(*macd_periods)
        self.bollinger = Bollinger(bollinger_period, bollinger_width)
        self.momentum = tuple(Momentum(lag) for lag in momentum_lags)
        self.volatility = RealizedVolatility(volatility_window, bars_per_year=bars_per_year)
        self.volume = VolumeRatio(volume_period)
        self.skew = VolumeProfileSkew(skew_window)
        indicators = self._indicators()
        bounds = np.cumsum([_HEADER, *(ind.state.size for ind in indicators)]).astype(np.int64)
        self.state = np.zeros(int(bounds[-1]))
        for indicator, start, stop in zip(indicators, bounds[:-1], bounds[1:], strict=True):
            indicator.move_to(self.state[start:stop])
        self._bounds = bounds
        self.values = np.full(len(Output), _NAN)

    def _indicators(self) -> tuple[Indicator, ...]:
        return (
            self.atr,
            self.rsi,
            self.macd,
            self.bollinger,
            *self.momentum,
            self.volatility,
            self.volume,
            self.skew,
        )

    def update(self, high: float, low: float, close: float, volume: float) -> np.ndarray:
        """Add a closed bar; return `values`, this bar's values indexed by `Output`."""
        _update_all(self.state, self._bounds, self.values, high, low, close, volume)
        return self.values

    @property
    def bars(self) -> int:
        """Bars passed to `update`, valid or not."""
        return int(self.state[_BARS])

    @property
    def invalid_bars(self) -> int:
        """Bars skipped for a non-finite field, a close <= 0 or a volume < 0."""
        return int(self.state[_INVALID_BARS])

    @property
    def warmup(self) -> int:
        """Bars after which every value is finite (the slowest indicator's warm-up)."""
        return max(indicator.warmup for indicator in self._indicators())

    def as_dict(self) -> dict[str, float]:
        """The latest values by lower-case `Output` name (for logs and explanations)."""
        return {column.name.lower(): float(self.values[column]) for column in Output}

    def snapshot(self) -> np.ndarray:
        """A copy of the whole state, for `restore`."""
        return self.state.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        """Continue from a `snapshot` of a `ClassicIndicators` with the same parameters;
        raise ValueError, changing nothing, if it is not one. `values` is NaN until the
        next `update`."""
        if not isinstance(snapshot, np.ndarray) or snapshot.shape != self.state.shape:
            raise ValueError(f"not a ClassicIndicators snapshot of shape {self.state.shape}")
        bounds = self._bounds
        for i, indicator in enumerate(self._indicators()):
            indicator.check_snapshot(snapshot[bounds[i] : bounds[i + 1]])
        self.state[:] = snapshot
        self.values[:] = _NAN
