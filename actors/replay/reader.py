"""Read a replay file as chunks of validated rows (numpy arrays), in bounded memory.

Each chunk of about `chunk_rows` rows goes through: decode (malformed, bad_number,
bad_timestamp), the per-row value checks, the session filter, then the per-symbol order,
duplicate and gap checks. Under `on_bad_row = "error"` the first bad row raises
`ReplayError` naming the file, its line and the reason; under "skip" bad rows are
dropped and counted in the caller's `ReplayStats`. The schema is in `schema.py`.
"""

from collections.abc import Iterator
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from actors.replay.csv_source import CsvSource
from actors.replay.decode import decode
from actors.replay.parquet_source import ParquetSource
from actors.replay.rows import Rows
from actors.replay.schema import OPTIONAL, PRICES, REQUIRED, Kind, Layout, ReplayError
from actors.replay.sequence import SequenceChecker
from actors.replay.session import SessionFilter, TradingSession
from actors.replay.source import Format, Source, resolve_format
from actors.replay.stats import NS_PER_S, Reason, ReplayStats
from actors.replay.timestamps import TimestampParser, TimestampUnit
from actors.replay.values import check_values
from config.types import AtLeastOne, NonNegative

OnBadRow = Literal["error", "skip"]


class ReplaySource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which file to replay, and how to read and check it."""

    path: str
    format: Format = "auto"
    """"csv", "parquet", or "auto": from the extension (.csv, .csv.gz, .parquet, .pq)."""
    kind: Kind = "ticks"
    on_bad_row: OnBadRow = "error"
    """"error": the first bad row raises ReplayError; "skip": bad rows are counted."""
    timestamp_unit: TimestampUnit = "iso"
    """"iso" for ISO 8601 text, else the unit of integer epoch timestamps."""
    timezone: str | None = None
    """IANA zone of timestamps written without one; None makes such rows bad."""
    session: TradingSession | None = None
    """Replay only rows inside these session hours; None replays every row."""
    max_gap_s: NonNegative = 0.0
    """Count steps longer than this between rows of a symbol as gaps; 0 counts none."""
    chunk_rows: AtLeastOne = 16_384
    """Rows read, checked and held in memory at a time."""

    def __post_init__(self) -> None:
        resolve_format(self.path, self.format)
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (KeyError, ValueError) as e:  # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"unknown timezone {self.timezone!r}") from e


class Chunk(NamedTuple):
    """Validated rows in file order, all arrays of one length.

    `columns` holds every value column of the kind (ticks: price, size, bid, ask,
    bid_size, ask_size; bars: open, high, low, close, volume), prices as float64 and
    sizes as int64; optional columns the file lacks are NaN (prices) or 0 (sizes).
    """

    lines: np.ndarray
    """1-based line of each row (see the schema)."""
    symbol: np.ndarray
    """object array of str."""
    event_ns: np.ndarray
    """int64 ns since the epoch, UTC."""
    columns: dict[str, np.ndarray]

    def tail(self, start: int) -> "Chunk":
        """The rows from index `start` on (views, no copies)."""
        return Chunk(
            self.lines[start:],
            self.symbol[start:],
            self.event_ns[start:],
            {name: column[start:] for name, column in self.columns.items()},
        )


def value_columns(kind: Kind) -> tuple[str, ...]:
    """Every value column of `kind`, optional ones included, in schema order."""
    return REQUIRED[kind] + tuple(name for pair in OPTIONAL[kind] for name in pair)


def _chunk(rows: Rows, layout: Layout, keep: np.ndarray) -> Chunk:
    """The kept rows as a Chunk, absent optional columns filled in."""
    n = int(np.count_nonzero(keep))
    columns = {}
    for name in value_columns(layout.kind):
        if name in layout.values:
            column = rows.values[keep, layout.values.index(name)]
            columns[name] = column if name in PRICES else column.astype(np.int64)
        else:
            columns[name] = np.full(n, np.nan) if name in PRICES else np.zeros(n, np.int64)
    symbols = np.asarray(rows.symbols, dtype=object)[rows.symbol_codes[keep]]
    return Chunk(rows.lines[keep], symbols, rows.event_ns[keep], columns)


def open_source(source: ReplaySource) -> Source:
    """The reader for the file's format, its header already checked."""
    if resolve_format(source.path, source.format) == "csv":
        return CsvSource(source.path, source.kind, source.chunk_rows)
    return ParquetSource(source.path, source.kind, source.chunk_rows, source.timestamp_unit)


def read_chunks(source: ReplaySource, stats: ReplayStats) -> Iterator[Chunk]:
    """Stream `source` as validated chunks; `stats` counts what was read and dropped.

    Chunks with no row left are not yielded. Closing the iterator closes the file.
    """
    zone = ZoneInfo(source.timezone) if source.timezone else None
    parser = TimestampParser(source.timestamp_unit, zone)
    sessions = SessionFilter(source.session) if source.session else None
    sequence = SequenceChecker(round(source.max_gap_s * NS_PER_S), stats)
    with open_source(source) as file:
        for raw in file.chunks():
            rows = decode(raw, file.layout, parser)
            check_values(rows, file.layout)
            good = rows.reason == 0
            if sessions is None:
                inside, opened = np.ones(len(rows), bool), np.zeros(len(rows), np.int64)
            else:
                inside, opened = sessions.classify(rows.event_ns)
            sequence.check(rows, good & inside, opened)
            first = rows.first_bad()
            if first is not None and source.on_bad_row == "error":
                reason = Reason(rows.reason[first]).label
                raise ReplayError(source.path, int(rows.lines[first]), reason, rows.detail[first])
            keep = (rows.reason == 0) & inside
            stats.rows += len(rows)
            stats.count_skipped(rows.reason, rows.lines)
            stats.outside_session += int(np.count_nonzero(good & ~inside))
            stats.emitted += int(np.count_nonzero(keep))
            if keep.any():
                yield _chunk(rows, file.layout, keep)
