"""Why a row is bad (`Reason`) and what a replay read, kept and dropped (`ReplayStats`)."""

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

NS_PER_S = 1_000_000_000


class Reason(IntEnum):
    """A bad row's reason, in the order the checks run (the first failing one is named).

    The values are the codes the per-chunk checks write into a uint8 array; 0 means good.
    """

    MALFORMED = 1
    BAD_NUMBER = 2
    BAD_TIMESTAMP = 3
    NAN_PRICE = 4
    NON_POSITIVE_PRICE = 5
    NEGATIVE_SIZE = 6
    CROSSED_QUOTE = 7
    OHLC_INCONSISTENT = 8
    DUPLICATE = 9
    OUT_OF_ORDER = 10

    @property
    def label(self) -> str:
        """The name used in errors, logs and `ReplayStats.skipped`."""
        return self.name.lower()


@dataclass(slots=True)
class ReplayStats:
    """Counters of one pass over a file; logged when the replay ends.

    `rows` counts data rows (not the header or blank lines); every row is either
    emitted, skipped for a `Reason` (`skipped`, keyed by `Reason.label`, with the line of
    the first such row in `first_line` to find it in the file) or outside the session.
    """

    rows: int = 0
    emitted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)
    outside_session: int = 0
    gaps: int = 0
    largest_gap_ns: int = 0

    def count_skipped(self, reasons: np.ndarray, lines: np.ndarray) -> None:
        """Add one chunk's reason codes (uint8, 0 = good) for rows at `lines`."""
        counts = np.bincount(reasons, minlength=len(Reason) + 1)
        for reason in Reason:
            if counts[reason]:
                label = reason.label
                self.skipped[label] = self.skipped.get(label, 0) + int(counts[reason])
                self.first_line.setdefault(label, int(lines[np.argmax(reasons == reason)]))

    def __str__(self) -> str:
        skipped = ", ".join(
            f"{label} {n} (first at line {self.first_line[label]})"
            for label, n in self.skipped.items()
        )
        return (
            f"{self.rows} rows: {self.emitted} emitted, skipped {skipped or 'none'}, "
            f"{self.outside_session} outside the session, {self.gaps} gaps "
            f"(largest {self.largest_gap_ns / NS_PER_S:g} s)"
        )
