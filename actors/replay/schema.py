"""The replay file schema: ticks or OHLCV bars, in CSV or Parquet.

One row per tick (a trade print, optionally with the top of book) or per bar. Columns are
found by their (exact, lower-case) names, in any order; other columns are ignored.

    ticks:  timestamp, symbol, price, size [, bid, ask [, bid_size, ask_size]]
    bars:   timestamp, symbol, open, high, low, close, volume

timestamp
    When the print happened (ticks) or when the bar opened (bars: the bar covers
    [timestamp, timestamp + timeframe_s)). One of:

    - ISO 8601 text (the default, `timestamp_unit = "iso"`): date, "T" or a space, time
      with up to nine fraction digits, then a zone "Z" or +HH:MM / +HHMM / +HH, e.g.
      "2024-03-01T14:30:00.123456789Z", "2024-03-01 09:30:00-05:00". Text without a
      zone ("2024-03-01T09:30:00") is wall-clock time in the `timezone` param (an IANA
      name such as "America/New_York"); without `timezone` such a row is bad
      (bad_timestamp), because silently reading local time as UTC shifts a whole file.
      A wall-clock time that does not exist (skipped by a DST change) is bad; one that
      occurs twice (the hour repeated when DST ends) is read as its first occurrence.
    - An integer count of `timestamp_unit` ("s", "ms", "us" or "ns") since the Unix
      epoch, which is UTC whatever `timezone` says.
    - Parquet only: a timestamp column. With a time zone it is absolute; without one it
      is wall-clock time in `timezone`, like zoneless text.

symbol
    Non-empty text (Parquet: a string or dictionary-of-string column).
price, bid, ask, open, high, low, close
    Finite numbers > 0 (Parquet: any integer, float or decimal type, or text).
size, bid_size, ask_size, volume
    Whole numbers >= 0 ("12" and "12.0" are both 12).
bid, ask
    Optional, both or neither; bid <= ask (a locked book, bid == ask, is allowed).
    Without them a Tick's bid and ask are NaN, "not known" (the venue fills only
    against a quote, so a trades-only file drives the pipeline but fills nothing).
bid_size, ask_size
    Optional, both or neither, only together with bid and ask; absent means 0.

Within one symbol, time must not go backwards; rows of different symbols may interleave.

CSV: UTF-8 (a leading BOM is ignored; other invalid UTF-8 fails the file), comma-separated,
RFC 4180 quoting (a quoted value may hold commas and line breaks), a header row naming the
columns on the first line, "\\n" or "\\r\\n" line ends; "name.csv", or gzip-compressed
"name.csv.gz". Blank lines, and lines of empty fields only, are no rows. Values are taken
verbatim: surrounding spaces make a value bad. Line numbers in errors are 1-based physical
lines: the header is line 1, a row's line is the one it starts on.
Parquet: a row's "line" is its 0-based row index + 2, the line it would have in the same
data written as CSV with a header.

Every row is checked, and the first check that fails names the reason (`Reason`):

    malformed           wrong number of fields (CSV), or an empty / null value
    bad_number          a value that is not a number, or a size that is not whole
    bad_timestamp       unparsable, out of the ns range (1677-2262), zoneless without
                        `timezone`, or a wall-clock time that does not exist
    nan_price           a price that is NaN or infinite
    non_positive_price  a price <= 0
    negative_size       a size or volume < 0
    crossed_quote       bid > ask
    ohlc_inconsistent   high < max(open, close) or low > min(open, close)
    duplicate           the same timestamp, symbol and values as an earlier row (the
                        first is kept)
    out_of_order        earlier than a previous row of the same symbol

The session filter runs between the checks of a row on its own and those against
earlier rows (duplicate, out_of_order, gaps), which therefore see in-session rows only.

`on_bad_row = "error"` raises ReplayError("<file>, line <n>: <reason>: <detail>") at the
first bad row; "skip" drops bad rows and counts them per reason in `ReplayStats.skipped`.
Counted but never an error, whatever the policy:

    outside_session     rows outside the trading session filter (always dropped)
    gaps                consecutive rows of a symbol more than `max_gap_s` apart (kept);
                        with a session filter, the first row of a session is no gap

This module holds the column names and `Layout`, which checks a header against them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["ticks", "bars"]

TIMESTAMP = "timestamp"
SYMBOL = "symbol"
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "ticks": ("price", "size"),
    "bars": ("open", "high", "low", "close", "volume"),
}
OPTIONAL: dict[Kind, tuple[tuple[str, str], ...]] = {
    "ticks": (("bid", "ask"), ("bid_size", "ask_size")),
    "bars": (),
}
"""Pairs of columns a file has both or neither of; a later pair needs the earlier ones."""
PRICES = frozenset({"price", "bid", "ask", "open", "high", "low", "close"})
SIZES = frozenset({"size", "bid_size", "ask_size", "volume"})


class ReplayError(ValueError):
    """A replay file is unusable at `line` (1-based; a bad header is line 1)."""

    def __init__(self, path: str, line: int, reason: str, detail: str) -> None:
        super().__init__(f"{path}, line {line}: {reason}: {detail}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Layout:
    """Which schema columns a file has: the value columns in schema order."""

    kind: Kind
    values: tuple[str, ...]

    @classmethod
    def from_header(cls, kind: Kind, header: Sequence[str], path: str) -> "Layout":
        """Check a file's column names against the schema of `kind`."""
        names = list(header)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ReplayError(path, 1, "header", f"repeated columns {repeated}")
        present = set(names)
        missing = [n for n in (TIMESTAMP, SYMBOL, *REQUIRED[kind]) if n not in present]
        if missing:
            raise ReplayError(path, 1, "header", f"{kind} need columns {missing}, got {names}")
        values = list(REQUIRED[kind])
        absent: tuple[str, str] | None = None  # the first optional pair the file lacks
        for pair in OPTIONAL[kind]:
            has = [name in present for name in pair]
            if any(has) and not all(has):
                raise ReplayError(path, 1, "header", f"columns {list(pair)} go together")
            if not all(has):
                absent = absent or pair
            elif absent:
                raise ReplayError(path, 1, "header", f"columns {list(pair)} need {list(absent)}")
            else:
                values.extend(pair)
        return cls(kind, tuple(values))

    @property
    def prices(self) -> tuple[str, ...]:
        return tuple(name for name in self.values if name in PRICES)

    @property
    def sizes(self) -> tuple[str, ...]:
        return tuple(name for name in self.values if name in SIZES)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column read from the file."""
        return (TIMESTAMP, SYMBOL, *self.values)
