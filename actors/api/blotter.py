"""The blotter: orders as execution last committed them, fills as the journal recorded them.

Both are read, never asked for: the order table from execution's durable record in
shared memory (exact as of its last commit, so a crash or a replay never shows an order
twice), the fills from the journal's SQLite file, read-only. Messages come out in the
API's JSON form (`as_json`: enums by name, NaN as null).
"""

from pathlib import Path
from typing import Any

import msgspec

from actors.api.state import as_json
from actors.common.recent import SavedTail
from actors.execution.orders import Order
from actors.journal.query import connect, select_records
from actors.messages import Fill
from kernel.durable import read_record

MAX_ROWS = 1_000
"""The most rows one request returns (`limit` is capped to it)."""


class _CommittedOrders(msgspec.Struct):
    """The part of execution's durable state the blotter reads (the rest is skipped)."""

    orders: dict[str, Order] = {}
    retired: list[msgspec.Raw] = []


def committed_orders(system: str, execution: str) -> tuple[list[Order], list[Order]] | None:
    """(working orders, the newest finished ones, newest first) as execution last
    committed them; None before its first commit."""
    record = read_record(system, execution)
    if record is None or not record.state:
        return None
    committed = msgspec.msgpack.decode(record.state, type=_CommittedOrders)
    finished = SavedTail.load(committed.retired, Order)
    return list(committed.orders.values()), list(reversed(list(finished)))


def order_json(order: Order) -> dict[str, Any]:
    body = as_json(order)
    body["fill_ids"] = sorted(order.fill_ids)
    return body


def journal_fills(path: str, since_ns: int | None, limit: int) -> list[dict[str, Any]]:
    """The journal's fills from `since_ns` (market time), oldest first, at most `limit`.
    JournalError when there is no readable journal at `path`."""
    db = connect(Path(path))
    try:
        rows = select_records(db, since_ns=since_ns, types=["Fill"], limit=limit)
    finally:
        db.close()
    # The journal stores each message as an object of its fields; a Fill travels as its
    # tag and then its fields in an array (array_like), which is what msgspec converts.
    tag, fields = Fill.__struct_config__.tag, Fill.__struct_fields__
    return [
        as_json(msgspec.convert([tag, *(row["payload"][f] for f in fields)], Fill)) for row in rows
    ]
