"""Rolling model-input matrices: the last N bars x C features, ready for a policy.

Each closed bar pushes one row of raw features. Columns flagged for normalisation are
replaced by their rolling z-score over the last `zscore_window` bars (population std;
the z-score is 0 until two values were seen or while the std is 0). NaN and inf values,
raw or after normalisation, become 0 and are counted per column: a model never sees a
NaN (design: a NaN in a model input means hold, and the count tells how often).

Work per bar is O(C): the rolling sums are updated with the value entering and the
one leaving the window, and rows live in a ring, copied out in time order on demand.
"""

import msgspec
import numba
import numpy as np


@numba.njit(cache=True)
def _push(
    raw: np.ndarray,
    normalise: np.ndarray,
    ring: np.ndarray,
    history: np.ndarray,
    sums: np.ndarray,
    counters: np.ndarray,
    sanitised: np.ndarray,
) -> None:
    """One bar into the ring; counters = [next row, history slot, history count]."""
    rows, window = ring.shape[0], history.shape[0]
    row, slot, count = counters[0], counters[1], counters[2]
    full = count == window
    if not full:
        count += 1
    for column in range(raw.shape[0]):
        value = raw[column]
        finite = np.isfinite(value)
        if not finite:
            sanitised[column] += 1
            value = 0.0
        out = value
        if normalise[column]:
            if full:
                leaving = history[slot, column]
                sums[0, column] -= leaving
                sums[1, column] -= leaving * leaving
            history[slot, column] = value
            sums[0, column] += value
            sums[1, column] += value * value
            mean = sums[0, column] / count
            variance = max(sums[1, column] / count - mean * mean, 0.0)
            std = np.sqrt(variance)
            out = (value - mean) / std if finite and count >= 2 and std > 1e-12 else 0.0
        ring[row, column] = out
    counters[0] = (row + 1) % rows
    counters[1] = (slot + 1) % window
    counters[2] = count


class AssemblerState(msgspec.Struct, array_like=True):
    """A `MatrixAssembler` as data (its arrays as raw bytes, in their own dtypes)."""

    ring: bytes
    history: bytes
    sums: bytes
    counters: list[int]
    filled: int
    sanitised: list[int]


class MatrixAssembler:
    def __init__(
        self,
        rows: int,
        columns: list[str],
        zscore: list[str] | None = None,
        zscore_window: int = 100,
    ) -> None:
        if rows < 1 or not columns:
            raise ValueError("a matrix needs at least one row and one column")
        unknown = set(zscore or []) - set(columns)
        if unknown:
            raise ValueError(f"z-score columns {sorted(unknown)} are not among the columns")
        if zscore_window < 2:
            raise ValueError("the z-score window needs at least 2 bars")
        self.rows = rows
        self.columns = list(columns)
        self._normalise = np.array([name in (zscore or []) for name in columns])
        self._ring = np.zeros((rows, len(columns)), dtype=np.float32)
        self._history = np.zeros((zscore_window, len(columns)))
        self._sums = np.zeros((2, len(columns)))
        self._counters = np.zeros(3, dtype=np.int64)
        self.filled = 0
        self.sanitised = np.zeros(len(columns), dtype=np.int64)

    @property
    def ready(self) -> bool:
        """True once every row holds a real bar."""
        return self.filled >= self.rows

    def push(self, features: np.ndarray) -> None:
        """Add one bar's raw features (length C, in column order)."""
        raw = np.asarray(features, dtype=np.float64)
        if raw.shape != (len(self.columns),):
            raise ValueError(f"expected {len(self.columns)} features, got shape {raw.shape}")
        _push(
            raw,
            self._normalise,
            self._ring,
            self._history,
            self._sums,
            self._counters,
            self.sanitised,
        )
        self.filled = min(self.filled + 1, self.rows)

    def state(self) -> AssemblerState:
        """The rows, the z-score window and the counters, for a durable state."""
        return AssemblerState(
            self._ring.tobytes(),
            self._history.tobytes(),
            self._sums.tobytes(),
            self._counters.tolist(),
            self.filled,
            self.sanitised.tolist(),
        )

    def restore(self, state: AssemblerState) -> None:
        """Continue from the `state` of an assembler of the same shape (ValueError if not)."""
        arrays = ((self._ring, state.ring), (self._history, state.history))
        for target, data in (*arrays, (self._sums, state.sums)):
            if len(data) != target.nbytes:
                raise ValueError("not the state of an assembler of this shape")
        for target, data in (*arrays, (self._sums, state.sums)):
            target[...] = np.frombuffer(data, dtype=target.dtype).reshape(target.shape)
        self._counters[:] = state.counters
        self.sanitised[:] = state.sanitised
        self.filled = state.filled

    def matrix(self) -> np.ndarray:
        """The (rows x C) float32 matrix, oldest bar first; rows not yet filled are 0."""
        if self.filled < self.rows:
            out = np.zeros_like(self._ring)
            out[self.rows - self.filled :] = self._ring[: self.filled]
            return out
        cut = int(self._counters[0])
        return np.concatenate((self._ring[cut:], self._ring[:cut]))
