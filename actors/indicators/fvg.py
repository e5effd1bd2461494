"""Fair value gaps (FVG): incremental detection and tracking of active gaps, per bar.

Bars are indexed t = 0, 1, ... over *valid* bars only (see "Invalid bars" below).

Detection, on the three bars t-2, t-1, t, with body B_j = |C_j - O_j| and the body filter
B_{t-1} > body_mult * mean(B_{t-1-body_window} .. B_{t-2}) (the `body_window` bars before
the middle bar; the middle bar is left out of its own baseline so that one huge candle
cannot raise the bar it has to clear):
- bullish gap if L_t > H_{t-2}: zone [bottom, top] = [H_{t-2}, L_t];
- bearish gap if H_t < L_{t-2}: zone [bottom, top] = [H_t, L_{t-2}].
The two cannot hold together (that would need L_t > H_{t-2} >= L_{t-2} > H_t >= L_t), so a
bar creates at most one gap. Detection needs body_window + 2 bars: t >= body_window + 1.

Tracking, on every bar t after the creation bar c (age = t - c, counted in valid bars),
in this order:
- expiry: a gap whose age exceeds `max_age` is dropped (no mitigation signal);
- full mitigation: price trades through the whole zone (bullish: L_t <= bottom; bearish:
  H_t >= top): the gap is dropped and the bar's mitigation signal is 1;
- partial mitigation: price trades into the zone without crossing it (bullish:
  bottom < L_t < top; bearish: bottom < H_t < top): the filled part is cut off, so the zone
  keeps only its unfilled remainder (bullish top := L_t; bearish bottom := H_t).
So an active bullish gap always lies at or below the close (its top is the lowest low since
creation) and an active bearish gap at or above it. A gap is active on bars with age
0 .. max_age, so at most max_age + 1 gaps are active at once: the gap table has that many
slots, and the gap created on bar t takes slot t mod (max_age + 1), whose previous gap
(created max_age + 1 bars earlier) has just expired.

Outputs per bar (positions in the tuple `fvg_update` returns and columns of `FVG.run`):
- BULLISH_ACTIVE, BEARISH_ACTIVE: 1.0 if a gap of that direction is active, else 0.0;
- NEAREST_LEVEL: (level - close) / ATR of the nearest active gap, where a gap's level is the
  edge price meets first (bullish: top, so the value is <= 0; bearish: bottom, >= 0); the
  nearest gap minimises |level - close|, ties going to the younger gap. 0.0 when no gap is
  active; NaN when a gap is active but ATR is not a positive finite number;
- NEAREST_AGE: that gap's age / AGE_SCALE (60, the tactical matrix length); 0.0 if none;
- MITIGATION: 1.0 if a gap was fully mitigated on this bar, else 0.0;
- SIGNAL: +1.0 / -1.0 when a bullish / bearish gap was created on this bar, else 0.0 (the
  synergy detector's "FVG fired" event).
All outputs are NaN before detection is possible (t < body_window + 1).

Invalid bars: a bar whose open, high, low or close is not finite leaves the state
untouched and outputs NaN; it neither ages gaps nor enters the body baseline. The results
at valid bars are therefore exactly those of the series with the invalid bars removed, and
a NaN cannot poison the state. ATR only scales NEAREST_LEVEL, so a NaN ATR affects that
output alone.

Cost per bar: O(body_window + max_age).

State (the conventions of `actors.indicators.classic`): [body_window, body_mult, max_age,
bars accepted, the last body_window + 1 bodies (ring, slot t mod (body_window + 1)), the
last 2 highs and 2 lows (rings, slot t mod 2), the gap table: max_age + 1 rows of
(direction +1 / -1 / 0 = free, bottom, top, creation bar)].
"""

import math
from typing import Final

import numba
import numpy as np

from actors.indicators.classic import Indicator

# Positions in the output tuple of `fvg_update` / columns of `FVG.run`.
BULLISH_ACTIVE: Final = 0
BEARISH_ACTIVE: Final = 1
NEAREST_LEVEL: Final = 2
NEAREST_AGE: Final = 3
MITIGATION: Final = 4
SIGNAL: Final = 5
N_OUTPUTS: Final = 6
AGE_SCALE: Final = 60.0

_NAN = math.nan
_NAN_OUTPUTS = (_NAN, _NAN, _NAN, _NAN, _NAN, _NAN)
_BODY_WINDOW, _BODY_MULT, _MAX_AGE, _BARS, _RINGS = range(5)
# Fields of a gap-table row.
_DIRECTION, _BOTTOM, _TOP, _CREATED, _GAP_FIELDS = range(5)


@numba.njit(
    "UniTuple(float64, 6)(float64[::1], float64, float64, float64, float64, float64)", cache=True
)
def fvg_update(
    state: np.ndarray, open_: float, high: float, low: float, close: float, atr: float
) -> tuple[float, float, float, float, float, float]:
    """Add a bar (with its ATR) to an `FVG` state; return (bullish active, bearish active,
    nearest level, nearest age, mitigation, signal), all NaN while warming up or if skipped."""
    if not (
        math.isfinite(open_) and math.isfinite(high) and math.isfinite(low) and math.isfinite(close)
    ):
        return _NAN_OUTPUTS
    window = int(state[_BODY_WINDOW])
    max_age = int(state[_MAX_AGE])
    t = int(state[_BARS])
    n_bodies = window + 1  # bodies of bars t-window-1 .. t-1
    bodies = state[_RINGS : _RINGS + n_bodies]
    highs = state[_RINGS + n_bodies : _RINGS + n_bodies + 2]  # bars t-2, t-1 at t mod 2
    lows = state[_RINGS + n_bodies + 2 : _RINGS + n_bodies + 4]
    gaps = state[_RINGS + n_bodies + 4 :]
    slots = max_age + 1

    mitigated = 0.0
    for s in range(slots):
        row = s * _GAP_FIELDS
        direction = gaps[row + _DIRECTION]
        if direction == 0.0:
            continue
        if t - gaps[row + _CREATED] > max_age:
            gaps[row + _DIRECTION] = 0.0
        elif direction > 0.0:
            if low <= gaps[row + _BOTTOM]:
                gaps[row + _DIRECTION] = 0.0
                mitigated = 1.0
            elif low < gaps[row + _TOP]:
                gaps[row + _TOP] = low
        elif high >= gaps[row + _TOP]:
            gaps[row + _DIRECTION] = 0.0
            mitigated = 1.0
        elif high > gaps[row + _BOTTOM]:
            gaps[row + _BOTTOM] = high

    warm = t >= window + 1
    signal = 0.0
    if warm:
        total = 0.0
        for j in range(t - window - 1, t - 1):
            total += bodies[j % n_bodies]
        if bodies[(t - 1) % n_bodies] > state[_BODY_MULT] * (total / window):
            high_2 = highs[t % 2]
            low_2 = lows[t % 2]
            row = (t % slots) * _GAP_FIELDS
            if low > high_2:
                signal = 1.0
                gaps[row + _BOTTOM] = high_2
                gaps[row + _TOP] = low
            elif high < low_2:
                signal = -1.0
                gaps[row + _BOTTOM] = high
                gaps[row + _TOP] = low_2
            if signal != 0.0:
                gaps[row + _DIRECTION] = signal
                gaps[row + _CREATED] = t

    bodies[t % n_bodies] = abs(close - open_)
    highs[t % 2] = high
    lows[t % 2] = low
    state[_BARS] = t + 1
    if not warm:
        return _NAN_OUTPUTS

    bullish = 0.0
    bearish = 0.0
    best = -1
    best_distance = np.inf
    for s in range(slots):
        row = s * _GAP_FIELDS
        direction = gaps[row + _DIRECTION]
        if direction == 0.0:
            continue
        if direction > 0.0:
            bullish = 1.0
            distance = abs(gaps[row + _TOP] - close)
        else:
            bearish = 1.0
            distance = abs(gaps[row + _BOTTOM] - close)
        if distance < best_distance or (
            distance == best_distance and gaps[row + _CREATED] > gaps[best + _CREATED]
        ):
            best = row
            best_distance = distance
    if best < 0:
        return bullish, bearish, 0.0, 0.0, mitigated, signal
    level = gaps[best + _TOP] if gaps[best + _DIRECTION] > 0.0 else gaps[best + _BOTTOM]
    relative = (level - close) / atr if math.isfinite(atr) and atr > 0.0 else _NAN
    age = (t - gaps[best + _CREATED]) / AGE_SCALE
    return bullish, bearish, relative, age, mitigated, signal


@numba.njit(
    "float64[:, ::1](float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], "
    "float64[::1])",
    cache=True,
)
def _run(
    state: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
) -> np.ndarray:
    out = np.empty((close.shape[0], N_OUTPUTS))
    for i in range(close.shape[0]):
        row = fvg_update(state, open_[i], high[i], low[i], close[i], atr[i])
        for j in range(N_OUTPUTS):
            out[i, j] = row[j]
    return out


class FVG(Indicator):
    """Fair value gap detector and tracker, as defined in the module docstring.

    Warm-up: body_window + 2 bars. Skipped: a bar with a non-finite open, high, low or close.
    """

    __slots__ = ()
    _N_PARAMS = 3

    def __init__(self, body_window: int = 20, body_mult: float = 1.5, max_age: int = 50) -> None:
        if body_window < 1 or max_age < 0 or not (math.isfinite(body_mult) and body_mult > 0):
            raise ValueError(
                f"FVG needs body_window >= 1, max_age >= 0 and a finite body_mult > 0, got "
                f"{body_window!r}, {max_age!r}, {body_mult!r}"
            )
        fresh = np.zeros(_RINGS + (body_window + 1) + 4 + (max_age + 1) * _GAP_FIELDS)
        fresh[:_RINGS] = (body_window, body_mult, max_age, 0.0)
        super().__init__(fresh)

    @property
    def warmup(self) -> int:
        return int(self.state[_BODY_WINDOW]) + 2

    def update(
        self, open_: float, high: float, low: float, close: float, atr: float
    ) -> tuple[float, float, float, float, float, float]:
        """Add a closed bar and its ATR; return the outputs (indexed BULLISH_ACTIVE .. SIGNAL)."""
        return fvg_update(self.state, open_, high, low, close, atr)

    def run(
        self,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        atr: np.ndarray,
    ) -> np.ndarray:
        """Add a series bar by bar (a backfill), continuing the state; (bars, N_OUTPUTS)."""
        return _run(
            self.state,
            np.ascontiguousarray(open_, np.float64),
            np.ascontiguousarray(high, np.float64),
            np.ascontiguousarray(low, np.float64),
            np.ascontiguousarray(close, np.float64),
            np.ascontiguousarray(atr, np.float64),
        )
