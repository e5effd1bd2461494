"""Reading a journal: records by time range, order id or decision id, events, CSV/Parquet export.

Readers open the file read-only; in WAL mode they see every committed batch and never
block the journal actor that writes it.
"""

import csv
import datetime
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from actors.journal.store import JournalError

RECORD_COLUMNS = (
    "time_ns",
    "epoch",
    "stream",
    "seq",
    "type",
    "symbol",
    "order_id",
    "decision_id",
    "origin_ns",
    "payload",
)
EVENT_COLUMNS = ("time_ns", "id", "kind", "detail")
EXPORT_FORMATS = (".csv", ".parquet")


def connect(path: str | Path) -> sqlite3.Connection:
    """The journal at `path`, read-only; JournalError when there is none or it is not one."""
    path = Path(path)
    if not path.is_file():
        raise JournalError(path, "no journal there")
    try:
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        db.execute("SELECT 1 FROM records LIMIT 1")
    except sqlite3.Error as error:
        raise JournalError(path, f"not a readable journal: {error}") from error
    return db


def select_records(
    db: sqlite3.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    order_id: str | None = None,
    decision_id: str | None = None,
    types: Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Records in time order (then stream and seq). `decision_id` selects the decision's
    whole chain: the rows that carry it (intent, verdict, orders) and every row of the
    orders it led to (acks, rejects, fills, cancels)."""
    where, args = _window(since_ns, until_ns)
    if order_id is not None:
        where.append("order_id = ?")
        args.append(order_id)
    if decision_id is not None:
        where.append(
            "(decision_id = ? OR order_id IN (SELECT order_id FROM records"
            " WHERE decision_id = ? AND order_id IS NOT NULL))"
        )
        args += [decision_id, decision_id]
    if types:
        where.append(f"type IN ({','.join('?' * len(types))})")
        args += types
    sql = _select("records", RECORD_COLUMNS, where, "time_ns, stream, seq", limit, args)
    rows = db.execute(sql, args).fetchall()
    return [_entry(RECORD_COLUMNS, row, "payload") for row in rows]


def select_events(
    db: sqlite3.Connection,
    since_ns: int | None = None,
    until_ns: int | None = None,
    kinds: Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Kill-switch, trading-state, model-version and journal-fault events in time order."""
    where, args = _window(since_ns, until_ns)
    if kinds:
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        args += kinds
    sql = _select("events", EVENT_COLUMNS, where, "time_ns, id", limit, args)
    return [_entry(EVENT_COLUMNS, row, "detail") for row in db.execute(sql, args).fetchall()]


def _window(since_ns: int | None, until_ns: int | None) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and arguments of a time range [since, until)."""
    where: list[str] = []
    args: list[Any] = []
    if since_ns is not None:
        where.append("time_ns >= ?")
        args.append(since_ns)
    if until_ns is not None:
        where.append("time_ns < ?")
        args.append(until_ns)
    return where, args


def _select(
    table: str,
    columns: Sequence[str],
    where: list[str],
    order: str,
    limit: int | None,
    args: list[Any],
) -> str:
    """The SELECT statement; a limit is appended to `args`."""
    sql = f"SELECT {', '.join(columns)} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql


def _entry(columns: Sequence[str], row: Sequence[Any], json_column: str) -> dict[str, Any]:
    entry = dict(zip(columns, row, strict=True))
    entry["time"] = iso_time(entry["time_ns"])
    entry[json_column] = orjson.loads(entry[json_column])
    return entry


def iso_time(time_ns: int) -> str:
    """UTC, microseconds: `2026-12-03T08:15:00.123456Z`."""
    moment = datetime.datetime.fromtimestamp(time_ns / 1e9, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """An ISO 8601 time (UTC unless it names an offset) as ns since the epoch; ValueError
    naming the accepted form otherwise."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601, e.g. 2026-12-03T08:15:00 (UTC) "
            "or 2026-12-03T09:15:00+01:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return round(moment.timestamp() * 1e9)


def export(entries: list[dict[str, Any]], columns: Sequence[str], path: str | Path) -> None:
    """Write entries to CSV or Parquet (by the file's suffix); the JSON column (payload or
    detail) as JSON text, times as ns since the epoch plus an ISO `time` column."""
    path = Path(path)
    names = ["time", *columns]
    table = {
        name: [
            orjson.dumps(entry[name]).decode() if isinstance(entry[name], dict) else entry[name]
            for entry in entries
        ]
        for name in names
    }
    if path.suffix == ".csv":
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(names)
            writer.writerows(zip(*table.values(), strict=True) if entries else ())
    elif path.suffix == ".parquet":
        import pyarrow as pa  # here: every other use of the CLI would pay for its import
        import pyarrow.parquet as pq

        pq.write_table(pa.table(table), path)
    else:
        raise ValueError(f"{path}: export to one of {', '.join(EXPORT_FORMATS)}")
