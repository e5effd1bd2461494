"""Raw columns to typed rows: the malformed, bad_number and bad_timestamp checks.

The passes run in `Reason` order over all columns (every empty value first, then every
number, then the timestamp), so a row with several problems is named by the first
reason, whatever its column order.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.replay.casting import cast_each
from actors.replay.rows import RawChunk, Rows
from actors.replay.schema import SIZES, SYMBOL, TIMESTAMP, Layout
from actors.replay.stats import Reason
from actors.replay.timestamps import Problem, TimestampParser

WHOLE_LIMIT = 2.0**53
"""Sizes beyond this are not exact in float64 (and no real size comes near it)."""


def _missing(column: pa.Array) -> np.ndarray:
    """Null values, and empty text (what an empty CSV field is)."""
    missing = column.is_null()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        missing = pc.or_(missing, pc.equal(column, "").fill_null(True))
    return missing.to_numpy(zero_copy_only=False)


def _scatter(
    rows: int, present: np.ndarray, values: np.ndarray, failed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values and failures of the present rows, spread back to all `rows` rows."""
    full = np.zeros(rows, values.dtype)
    full[present] = values
    full_failed = np.zeros(rows, bool)
    full_failed[present] = failed
    return full, full_failed


def decode(raw: RawChunk, layout: Layout, parser: TimestampParser) -> Rows:
    """Type a chunk's columns; rows that do not decode are rejected, never raised on."""
    n = len(raw.lines)
    symbol = raw.columns[SYMBOL].cast(pa.string()).dictionary_encode()
    rows = Rows(
        lines=raw.lines,
        symbols=symbol.dictionary.to_pylist(),
        symbol_codes=symbol.indices.fill_null(0).to_numpy(zero_copy_only=False),
        event_ns=np.zeros(n, np.int64),
        values=np.zeros((n, len(layout.values)), np.float64),
        reason=np.zeros(n, np.uint8),
    )
    if raw.malformed:
        shape = np.zeros(n, bool)
        shape[list(raw.malformed)] = True
        rows.reject(shape, Reason.MALFORMED, raw.malformed.__getitem__)
    present: dict[str, np.ndarray] = {}
    for name in layout.columns:
        missing = _missing(raw.columns[name])
        rows.reject(missing, Reason.MALFORMED, lambda _, name=name: f"`{name}` is empty")
        present[name] = ~missing

    for j, name in enumerate(layout.values):
        column = raw.columns[name]
        parsed, failed = cast_each(column.filter(pa.array(present[name])), pa.float64())
        values, failed = _scatter(n, present[name], parsed, failed)
        rows.values[:, j] = values
        rows.reject(
            failed,
            Reason.BAD_NUMBER,
            lambda i, column=column, name=name: f"`{name}` {column[i].as_py()!r} is not a number",
        )
        if name in SIZES:
            whole = (values == np.floor(values)) & (np.abs(values) < WHOLE_LIMIT)
            rows.reject(
                ~whole,
                Reason.BAD_NUMBER,
                lambda i, values=values, name=name: f"`{name}` {values[i]} is not a whole number",
            )

    column = raw.columns[TIMESTAMP]
    ns, problems = parser.parse(column.filter(pa.array(present[TIMESTAMP])))
    rows.event_ns[present[TIMESTAMP]] = ns
    codes = np.zeros(n, np.uint8)
    codes[present[TIMESTAMP]] = problems
    rows.reject(
        codes != 0,
        Reason.BAD_TIMESTAMP,
        lambda i: f"`timestamp` {column[i].as_py()!r} {parser.describe(Problem(codes[i]))}",
    )
    return rows
