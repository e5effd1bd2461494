"""NWRQK: Nadaraya-Watson kernel regression of the close with a rational-quadratic kernel.

Bars are indexed t = 0, 1, ... over *valid* bars only (see "Invalid bars" below).

Value: the regression estimate at the current bar over the last `lookback` closes,
    value_t = sum_{i=0}^{L-1} w_i C_{t-i} / sum_{i=0}^{L-1} w_i,
    w_i = (1 + i^2 / (2 alpha h^2))^(-alpha),
with L = `lookback`, h = `bandwidth` and alpha = `alpha` (the kernel's relative weighting
of large and small scales; alpha -> infinity gives the Gaussian kernel), and i the distance
in bars from the current bar (the current bar itself has i = 0 and weight 1). The weights
depend only on i, so they are computed once and each bar costs one O(L) weighted sum.
Defaults h = 8, alpha = 8, L = 25. On a linear series C_t = a + b t the estimate is the
same line shifted by a constant lag: value_t = C_t - b * sum(i w_i) / sum(w_i).

Departure from the public original. The indicator follows jdehorty's "Nadaraya-Watson:
Rational Quadratic Kernel (Non-Repainting)" TradingView script, whose inputs are h
("Lookback Window", our `bandwidth`), r ("Relative Weighting", our `alpha`) and x_0
("Start Regression at Bar"). Its loop `for i = 0 to _size + x_0` runs with _size = 1 and
Pine's inclusive bounds, so it sums x_0 + 2 closes: 27 for x_0 = 25. The default here sums
`lookback` = 25 (up to 0.04 ATR apart from the script on daily data). `NWRQK.jdehorty(x_0,
h, r)` is the script's form exactly (lookback = x_0 + 2), checked against a transcription
of the script's loop in tests/test_indicators_advanced.py.

Slope: slope_t = value_t - value_{t-1}.

Signal: +1 when the slope turns up, -1 when it turns down: the sign of slope_t is nonzero
and differs from the sign of the last nonzero slope before it; 0 otherwise (including at
the first nonzero slope, which has nothing to turn from). Comparing with the last nonzero
sign makes a flat bar (slope exactly 0) neither fire a signal nor re-arm one.

Outputs: VALUE is NaN until L closes were seen (t < L - 1); SLOPE and SIGNAL until L + 1
(t < L).

Invalid bars: a bar whose close is not finite leaves the state untouched and outputs NaN,
so the results at valid bars are exactly those of the series with the invalid bars removed
and a NaN never enters the window.

State (the conventions of `actors.indicators.classic`): [lookback, bandwidth, alpha, bars
accepted, sum of the weights, previous value, sign of the last nonzero slope (0 before
the first), the L weights w_0 .. w_{L-1}, the last L closes (ring, slot t mod L)].
"""

import math
from typing import Final

import numba
import numpy as np

from actors.indicators.classic import Indicator

# Positions in the output tuple of `nwrqk_update` / columns of `NWRQK.run`.
VALUE: Final = 0
SLOPE: Final = 1
SIGNAL: Final = 2
N_OUTPUTS: Final = 3

_NAN = math.nan
(
    _LOOKBACK,
    _BANDWIDTH,
    _ALPHA,
    _BARS,
    _WEIGHT_SUM,
    _PREV_VALUE,
    _LAST_SIGN,
    _WEIGHTS,
) = range(8)


@numba.njit("UniTuple(float64, 3)(float64[::1], float64)", cache=True)
def nwrqk_update(state: np.ndarray, close: float) -> tuple[float, float, float]:
    """Add a close to an `NWRQK` state; return (value, slope, signal), NaN while warming up
    or if skipped."""
    if not math.isfinite(close):
        return _NAN, _NAN, _NAN
    lookback = int(state[_LOOKBACK])
    t = int(state[_BARS])
    weights = state[_WEIGHTS : _WEIGHTS + lookback]
    closes = state[_WEIGHTS + lookback : _WEIGHTS + 2 * lookback]
    closes[t % lookback] = close
    state[_BARS] = t + 1
    if t < lookback - 1:
        return _NAN, _NAN, _NAN
    total = 0.0
    for i in range(lookback):
        total += weights[i] * closes[(t - i) % lookback]
    value = total / state[_WEIGHT_SUM]
    slope = value - state[_PREV_VALUE]  # NaN on the first value
    state[_PREV_VALUE] = value
    if not math.isfinite(slope):
        return value, _NAN, _NAN
    sign = np.sign(slope)
    last = state[_LAST_SIGN]
    signal = sign if sign != 0.0 and last != 0.0 and sign != last else 0.0
    if sign != 0.0:
        state[_LAST_SIGN] = sign
    return value, slope, signal


@numba.njit("float64[:, ::1](float64[::1], float64[::1])", cache=True)
def _run(state: np.ndarray, close: np.ndarray) -> np.ndarray:
    out = np.empty((close.shape[0], N_OUTPUTS))
    for i in range(close.shape[0]):
        out[i, VALUE], out[i, SLOPE], out[i, SIGNAL] = nwrqk_update(state, close[i])
    return out


class NWRQK(Indicator):
    """Nadaraya-Watson rational-quadratic kernel regression, as defined in the module
    docstring.

    Warm-up: lookback + 1 bars (the value alone is finite from bar `lookback`). Skipped: a
    bar with a non-finite close.
    """

    __slots__ = ()
    _N_PARAMS = 3

    def __init__(self, bandwidth: float = 8.0, alpha: float = 8.0, lookback: int = 25) -> None:
        if not (lookback >= 1 and math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(
                f"NWRQK needs lookback >= 1 and a finite bandwidth > 0, got {lookback!r}, "
                f"{bandwidth!r}"
            )
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"NWRQK alpha must be a finite number > 0, got {alpha!r}")
        distance = np.arange(lookback, dtype=np.float64)
        weights = (1.0 + distance * distance / (2.0 * alpha * bandwidth * bandwidth)) ** -alpha
        fresh = np.zeros(_WEIGHTS + 2 * lookback)
        fresh[:_WEIGHTS] = (lookback, bandwidth, alpha, 0, weights.sum(), _NAN, 0)
        fresh[_WEIGHTS : _WEIGHTS + lookback] = weights
        super().__init__(fresh)

    @classmethod
    def jdehorty(cls, x_0: int = 25, h: float = 8.0, r: float = 8.0) -> "NWRQK":
        """The public script's form: its inputs x_0, h and r, and its x_0 + 2 terms."""
        return cls(bandwidth=h, alpha=r, lookback=x_0 + 2)

    @property
    def warmup(self) -> int:
        return int(self.state[_LOOKBACK]) + 1

    def update(self, close: float) -> tuple[float, float, float]:
        """Add a closed bar's close; return (value, slope, signal)."""
        return nwrqk_update(self.state, close)

    def run(self, close: np.ndarray) -> np.ndarray:
        """Add a series bar by bar (a backfill), continuing the state; (bars, N_OUTPUTS)."""
        return _run(self.state, np.ascontiguousarray(close, np.float64))
