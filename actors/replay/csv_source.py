"""CSV replay files, streamed with pyarrow's CSV reader, every value read as text.

Arrow parses in C++ without holding the GIL, so the read-ahead thread does not compete
with the event loop the way the csv module would (and is about ten times faster). What
arrow does not give is each row's line number: it skips a row with the wrong number of
fields (reporting it to `invalid_row_handler` with its record number, possibly a block
ahead) and numbers records, not lines. So this reader numbers the records itself
(valid rows fill the numbers the invalid ones leave free), turns a record number into a
line by adding the line breaks inside earlier records' quoted values, and puts the
invalid rows back in their place as malformed rows. A blank line (arrow's row of empty
values) is no row at all. Line breaks are "\\n" or "\\r\\n".
"""

import csv
import gzip
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from actors.replay.rows import RawChunk
from actors.replay.schema import Kind, Layout, ReplayError
from actors.replay.source import Source

BLOCK_BYTES = 1 << 18
"""Parse block size. Arrow reads up to 32 blocks ahead, so this bounds that buffer (8 MiB)
independently of `chunk_rows`; chunks are assembled from the blocks' batches. A record
longer than a block is an error ("straddling"), and no market data row is near it."""


def _open_binary(path: str) -> BinaryIO:
    """The file's bytes, decompressed for ".gz".

    A Python file object rather than a path: given a path, arrow reads dozens of blocks
    ahead in its I/O threads, and memory grows with that instead of with the chunk.
    """
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_header(path: str) -> list[str]:
    """The column names on the first line."""
    with _open_binary(path) as file:
        first = file.readline()
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), None)
    except UnicodeDecodeError as e:
        raise ReplayError(path, 1, "header", f"not UTF-8: {e}") from None
    if not header:
        raise ReplayError(path, 1, "header", "the file is empty; a header row is required")
    return header


@dataclass(frozen=True, slots=True)
class _Invalid:
    """A record arrow skipped for its field count."""

    record: int
    breaks: int
    """Line breaks inside it."""
    why: str


class CsvSource(Source):
    """A CSV replay file: the header checked at open, then chunks of records."""

    def __init__(self, path: str, kind: Kind, chunk_rows: int) -> None:
        self.path = path
        self.chunk_rows = chunk_rows
        header = _read_header(path)
        self.layout = Layout.from_header(kind, header, path)
        # Reported by arrow's parser thread, not yet placed; in record order.
        self._invalid: deque[_Invalid] = deque()
        self._record = 2  # number of the next record (the header is record 1)
        self._breaks = 0  # line breaks inside the records so far: a line is record + breaks
        self._file = _open_binary(path)
        try:
            self._reader = self._open(header)
        except ReplayError:
            self._file.close()
            raise

    def _open(self, header: list[str]) -> pcsv.CSVStreamingReader:
        try:
            return pcsv.open_csv(
                self._file,
                read_options=pcsv.ReadOptions(
                    use_threads=False,  # serial parsing: invalid rows come with their number
                    skip_rows=1,
                    column_names=header,
                    block_size=BLOCK_BYTES,
                ),
                parse_options=pcsv.ParseOptions(
                    newlines_in_values=True,
                    ignore_empty_lines=False,
                    invalid_row_handler=self._on_invalid,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in header}
                ),
            )
        except pa.ArrowInvalid as e:
            raise ReplayError(self.path, 2, "malformed", f"in the first block: {e}") from None

    def _on_invalid(self, row: pcsv.InvalidRow) -> str:
        why = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        self._invalid.append(_Invalid(row.number, row.text.count("\n"), why))
        return "skip"

    def chunks(self) -> Iterator[RawChunk]:
        parts: list[pa.RecordBatch] = []
        rows = 0
        for batch in self._batches():
            start = 0
            while start < batch.num_rows:
                part = batch.slice(start, self.chunk_rows - rows)
                parts.append(part)
                rows += part.num_rows
                start += part.num_rows
                if rows == self.chunk_rows:
                    yield from self._place(pa.Table.from_batches(parts).combine_chunks())
                    parts, rows = [], 0
        if parts:
            yield from self._place(pa.Table.from_batches(parts).combine_chunks())
        if self._invalid:
            yield from self._place(None)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                yield self._reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                line = self._record + self._breaks
                raise ReplayError(
                    self.path, line, "malformed", f"in the block from here: {e}"
                ) from None

    def _place(self, table: pa.Table | None) -> Iterator[RawChunk]:
        """The rows of `table` (not empty; None at the end of the file) with the invalid
        records among and before them, as a chunk, unless all were blank lines."""
        record = self._record
        reported = list(self._invalid)  # one C call under the GIL: arrow's thread appends
        pending = np.fromiter((row.record for row in reported), np.int64, len(reported))
        if table is None:
            end = int(pending[-1]) + 1
        else:  # the rows take the first numbers from `record` on that are not invalid
            candidates = np.arange(record, record + table.num_rows + len(pending))
            end = int(candidates[~np.isin(candidates, pending)][table.num_rows - 1]) + 1
        invalid = [self._invalid.popleft() for _ in range(np.searchsorted(pending, end))]
        valid = np.ones(end - record, bool)
        valid[[row.record - record for row in invalid]] = False
        columns, inner_breaks, blank = self._columns(table, valid)
        inner_breaks[~valid] = [row.breaks for row in invalid]
        lines = np.arange(record, end) + self._breaks + np.cumsum(inner_breaks) - inner_breaks
        self._record, self._breaks = end, self._breaks + int(inner_breaks.sum())
        malformed = {
            int(i): row.why for i, row in zip(np.flatnonzero(~valid), invalid, strict=True)
        }
        chunk = RawChunk(lines, columns, malformed)
        if blank.any():
            chunk = _without(chunk, ~blank)
        if len(chunk.lines):
            yield chunk

    def _columns(
        self, table: pa.Table | None, valid: np.ndarray
    ) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray]:
        """The layout's columns over all records (null for invalid ones), the line breaks
        inside each valid record, and which records are blank lines."""
        n = len(valid)
        inner_breaks = np.zeros(n, np.int64)
        blank = np.zeros(n, bool)
        if table is None:
            empty = pa.nulls(n, pa.string())
            return {name: empty for name in self.layout.columns}, inner_breaks, blank
        every = [table.column(i).chunk(0) for i in range(table.num_columns)]
        inner_breaks[valid] = sum(
            pc.count_substring(column, "\n").to_numpy(zero_copy_only=False).astype(np.int64)
            for column in every
        )
        blank[valid] = np.logical_and.reduce(
            [pc.equal(column, "").to_numpy(zero_copy_only=False) for column in every]
        )
        columns = {name: table.column(name).chunk(0) for name in self.layout.columns}
        if not valid.all():
            positions = np.full(n, -1, np.int64)
            positions[valid] = np.arange(table.num_rows)
            take = pa.array(positions, mask=~valid)
            columns = {name: column.take(take) for name, column in columns.items()}
        return columns, inner_breaks, blank

    def close(self) -> None:
        self._reader.close()
        self._file.close()


def _without(chunk: RawChunk, keep: np.ndarray) -> RawChunk:
    """`chunk` without the rows `keep` leaves out (blank lines, never malformed rows)."""
    new_index = np.cumsum(keep) - 1
    return RawChunk(
        chunk.lines[keep],
        {name: column.filter(pa.array(keep)) for name, column in chunk.columns.items()},
        {int(new_index[i]): why for i, why in chunk.malformed.items()},
    )
