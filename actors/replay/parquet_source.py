"""Parquet replay files, streamed batch by batch with `ParquetFile.iter_batches`.

Whole row groups are not pre-buffered (`pre_buffer=False`, a bounded read buffer per
column), so a file written as one row group of millions of rows reads in memory bounded
by the batch. A row's "line" is its 0-based index + 2, the line it would have in the
same data written as CSV with a header.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actors.replay.rows import RawChunk
from actors.replay.schema import SYMBOL, TIMESTAMP, Kind, Layout, ReplayError
from actors.replay.source import Source
from actors.replay.timestamps import TimestampUnit

READ_BUFFER_BYTES = 1 << 20
"""Read buffer per column when streaming pages."""


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _plain(column: pa.Array) -> pa.Array:
    """A dictionary-encoded column as its values (what the checks expect)."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


class ParquetSource(Source):
    """A Parquet replay file: the schema checked at open, then record batches."""

    def __init__(
        self, path: str, kind: Kind, chunk_rows: int, timestamp_unit: TimestampUnit
    ) -> None:
        self.path = path
        self.chunk_rows = chunk_rows
        self._file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
        try:
            schema = self._file.schema_arrow
            self.layout = Layout.from_header(kind, schema.names, path)
            for name in self.layout.columns:
                self._check_type(name, schema.field(name).type, timestamp_unit)
        except ReplayError:
            self._file.close()
            raise

    def _check_type(self, name: str, kind: pa.DataType, timestamp_unit: TimestampUnit) -> None:
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if name == SYMBOL:
            ok, expected = _is_text(kind), "text"
        elif name == TIMESTAMP:
            ok = (
                pa.types.is_timestamp(kind)
                or _is_text(kind)
                or (pa.types.is_integer(kind) and timestamp_unit != "iso")
            )
            expected = "a timestamp, text, or an integer with `timestamp_unit` set"
        else:
            ok, expected = _is_number(kind) or _is_text(kind), "a number or text"
        if not ok:
            raise ReplayError(self.path, 1, "header", f"`{name}` is {kind}, expected {expected}")

    def chunks(self) -> Iterator[RawChunk]:
        line = 2  # the first row's line, as if the file were CSV with a header
        names = list(self.layout.columns)
        for batch in self._file.iter_batches(batch_size=self.chunk_rows, columns=names):
            columns = {name: _plain(batch.column(name)) for name in names}
            yield RawChunk(np.arange(line, line + batch.num_rows, dtype=np.int64), columns)
            line += batch.num_rows

    def close(self) -> None:
        self._file.close()
