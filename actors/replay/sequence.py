"""Checks of each symbol's rows against its earlier rows: order, duplicates and gaps.

Vectorised per chunk and symbol, with a little state per symbol carried between chunks.
A row is out of order when it is earlier than the latest earlier good row of its symbol,
which is the running maximum of the earlier rows (a late row never raises it, so
dropping late rows does not change the answer for the rows after them). Good rows are
then in time order, so duplicates of a row sit next to it once rows of equal time are
sorted by value; duplicates of the previous chunk's last rows are found through the
values of the rows at the symbol's latest time (`tail`).
"""

from dataclasses import dataclass, field

import numpy as np

from actors.replay.rows import Rows
from actors.replay.stats import Reason, ReplayStats
from actors.replay.timestamps import format_ns


@dataclass(slots=True)
class _SymbolState:
    last_ns: int
    """Time of the symbol's latest good row."""
    session: int
    """The session of that row (see `SessionFilter.classify`)."""
    tail: set[tuple[float, ...]] = field(default_factory=set)
    """Values of the good rows at `last_ns`."""


class SequenceChecker:
    """Rejects late and repeated rows and counts gaps, one file's symbols at a time."""

    def __init__(self, max_gap_ns: int, stats: ReplayStats) -> None:
        self.max_gap_ns = max_gap_ns
        self.stats = stats
        self._state: dict[str, _SymbolState] = {}

    def check(self, rows: Rows, eligible: np.ndarray, sessions: np.ndarray) -> None:
        """Check the `eligible` rows (good so far, inside the session) of a chunk, in order."""
        indices = np.flatnonzero(eligible)
        codes = rows.symbol_codes[indices]
        order = np.argsort(codes, kind="stable")  # by symbol, file order within one
        by_symbol = indices[order]
        starts = np.flatnonzero(np.diff(codes[order])) + 1
        for group in np.split(by_symbol, starts) if len(indices) else ():
            self._check_symbol(rows, rows.symbols[rows.symbol_codes[group[0]]], group, sessions)

    def _check_symbol(
        self, rows: Rows, symbol: str, group: np.ndarray, sessions: np.ndarray
    ) -> None:
        state = self._state.get(symbol)
        times = rows.event_ns[group]
        floor = state.last_ns if state else np.iinfo(np.int64).min
        latest = np.maximum.accumulate(np.concatenate(([floor], times)))[:-1]
        late = times < latest
        rows.reject_at(
            group[late],
            Reason.OUT_OF_ORDER,
            lambda i: (
                f"{format_ns(rows.event_ns[i])} is before {symbol}'s earlier "
                f"{format_ns(latest[np.searchsorted(group, i)])}"
            ),
        )
        group, times = group[~late], times[~late]
        values = rows.values[group]
        repeated = self._duplicates(state, times, values)
        rows.reject_at(
            group[repeated],
            Reason.DUPLICATE,
            lambda _: "the same timestamp, symbol and values as an earlier row",
        )
        group, times, values = group[~repeated], times[~repeated], values[~repeated]
        if not len(group):
            return
        session = sessions[group]
        if self.max_gap_ns:
            self._count_gaps(state, times, session)
        last = int(times[-1])
        tail = {tuple(row) for row in values[times == last].tolist()}
        if state and state.last_ns == last:
            tail |= state.tail
        self._state[symbol] = _SymbolState(last, int(session[-1]), tail)

    @staticmethod
    def _duplicates(
        state: _SymbolState | None, times: np.ndarray, values: np.ndarray
    ) -> np.ndarray:
        """Rows (in time order) equal in time and values to an earlier row."""
        repeated = np.zeros(len(times), bool)
        same_time = times[1:] == times[:-1]
        shared = np.flatnonzero(np.concatenate(([False], same_time)) | np.append(same_time, False))
        if len(shared):  # only rows that share their time with a neighbour can repeat one
            t, v = times[shared], values[shared]
            order = np.lexsort((np.arange(len(shared)), *v.T[::-1], t))
            t, v = t[order], v[order]
            same = np.zeros(len(shared), bool)
            same[1:] = (t[1:] == t[:-1]) & (v[1:] == v[:-1]).all(axis=1)
            repeated[shared[order]] = same
        if state and state.tail:
            for k in np.flatnonzero(times == state.last_ns).tolist():
                repeated[k] |= tuple(values[k].tolist()) in state.tail
        return repeated

    def _count_gaps(
        self, state: _SymbolState | None, times: np.ndarray, session: np.ndarray
    ) -> None:
        """Count steps longer than `max_gap_ns` between rows of one session."""
        steps = np.diff(times, prepend=state.last_ns if state else times[0])
        previous = np.concatenate(([state.session if state else session[0]], session[:-1]))
        gaps = steps[(steps > self.max_gap_ns) & (session == previous)]
        if len(gaps):
            self.stats.gaps += len(gaps)
            self.stats.largest_gap_ns = max(self.stats.largest_gap_ns, int(gaps.max()))
