"""Rolling model-input matrices: the last N bars x C features, ready for a policy.

Each closed bar pushes one row of raw features. Columns flagged for normalisation are
replaced by their rolling z-score over the last `zscore_window` bars (population std;
the z-score is 0 until two values were seen or while the std is 0). NaN and inf values,
raw or after normalisation, become 0 and are counted per column: a model never sees a
NaN (design: a NaN in a model input means hold, and the count tells how often).

Work per bar is O(C): the rolling sums are updated with the value entering and the
one leaving the window, and rows live in a ring, copied out in time order on demand.
"""

import numpy as np


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
        self._next = 0
        self.filled = 0
        self._window = zscore_window
        self._history = np.zeros((zscore_window, len(columns)))
        self._history_next = 0
        self._history_count = 0
        self._sum = np.zeros(len(columns))
        self._sum_sq = np.zeros(len(columns))
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
        finite = np.isfinite(raw)
        clean = np.where(finite, raw, 0.0)
        row = clean.copy()
        if self._normalise.any():
            row = np.where(self._normalise, self._zscore(clean, finite), row)
        self.sanitised += ~finite
        self._ring[self._next] = row
        self._next = (self._next + 1) % self.rows
        self.filled = min(self.filled + 1, self.rows)

    def _zscore(self, value: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Update the rolling sums with this bar (non-finite values count as absent)."""
        slot = self._history_next
        if self._history_count == self._window:
            leaving = self._history[slot]
            self._sum -= leaving
            self._sum_sq -= leaving * leaving
        else:
            self._history_count += 1
        entering = np.where(finite, value, 0.0)
        self._history[slot] = entering
        self._sum += entering
        self._sum_sq += entering * entering
        self._history_next = (slot + 1) % self._window
        n = self._history_count
        mean = self._sum / n
        variance = np.maximum(self._sum_sq / n - mean * mean, 0.0)
        std = np.sqrt(variance)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where((std > 1e-12) & (n >= 2) & finite, (value - mean) / std, 0.0)
        return z

    def matrix(self) -> np.ndarray:
        """The (rows x C) float32 matrix, oldest bar first; rows not yet filled are 0."""
        if self.filled < self.rows:
            out = np.zeros_like(self._ring)
            out[self.rows - self.filled :] = self._ring[: self.filled]
            return out
        return np.concatenate((self._ring[self._next :], self._ring[: self._next]))
