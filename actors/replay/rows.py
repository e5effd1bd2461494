"""One chunk of rows on their way through the checks: raw text/arrow columns, then typed."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from actors.replay.stats import Reason


@dataclass(slots=True)
class RawChunk:
    """Rows as a source read them: arrow columns by schema name, all of one length.

    `lines` is each row's 1-based line (see the schema); `malformed` maps the index of a
    row whose shape is wrong (a CSV row with the wrong field count, its columns then
    null) to why.
    """

    lines: np.ndarray
    columns: dict[str, pa.Array]
    malformed: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class Rows:
    """A chunk's rows decoded to numpy; `reason` holds each row's `Reason` code, 0 = good.

    Values of rejected rows are meaningless (often 0). `detail` explains the first row
    each `reject` call rejected: only the chunk's first bad row is ever reported, and it
    is necessarily the first one of the call that rejected it.
    """

    lines: np.ndarray
    symbols: list[str]
    symbol_codes: np.ndarray
    """Index into `symbols` per row."""
    event_ns: np.ndarray
    values: np.ndarray
    """float64, one column per `Layout.values` name."""
    reason: np.ndarray
    detail: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)

    def reject(self, mask: np.ndarray, reason: Reason, explain: Callable[[int], str]) -> None:
        """Mark the good rows in `mask` bad for `reason`; `explain(row)` says why."""
        self.reject_at(np.flatnonzero(mask), reason, explain)

    def reject_at(self, rows: np.ndarray, reason: Reason, explain: Callable[[int], str]) -> None:
        """Mark the good ones of `rows` (indices) bad for `reason`; `explain(row)` says why."""
        fresh = rows[self.reason[rows] == 0]
        if len(fresh):
            self.reason[fresh] = reason
            first = int(fresh.min())
            self.detail[first] = explain(first)

    def first_bad(self) -> int | None:
        """Index of the first bad row, None when all are good."""
        bad = np.flatnonzero(self.reason)
        return int(bad[0]) if len(bad) else None
