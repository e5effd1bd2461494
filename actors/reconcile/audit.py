"""The audit after a run: do the venue's account, the journal, the risk book and execution
agree, and is anything lost or done twice?

Each keeps its own account of the same fills: the venue books every fill it executes,
execution and risk every fill they receive (each once, by fill id), and the journal holds
every fill message. Read from what each has committed (durable records, journal rows),
they are compared per symbol (books.py: quantities exactly, average prices within 0.01 %,
realized P&L preserved).

The journal also answers for the orders: every order sent got an outcome from the venue
(an ack or a reject; none `lost`), every approved verdict became an order, and no client
order id was executed twice (`duplicated`: two different fills under one fill id; the
same fill twice is the venue answering a re-sent order with its original outcome).
"""

from collections.abc import Mapping
from pathlib import Path

import msgspec

from actors.common.positions import Position, book_fill
from actors.journal.query import connect, select_records
from actors.reconcile.books import Mismatch, Views, committed_positions, compare
from kernel.durable import read_record

_AUDITED = {"RiskVerdict", "OrderRequest", "OrderAck", "OrderReject", "Fill"}


class Audit(msgspec.Struct, kw_only=True):
    """What a reconciliation found; `clean` when nothing is lost, doubled or different."""

    orders: int = 0
    fills: int = 0
    lost: list[str] = []
    """Client order ids sent without an outcome, or approved intents without an order."""
    duplicated: list[str] = []
    """Fill ids the venue executed twice (two different fills under one id)."""
    missing_rows: list[str] = []
    """Journaled streams whose rows do not run 1..N, N the producer's last committed seq."""
    mismatches: list[Mismatch] = []
    positions: dict[str, Views] = {}
    """By source, what was compared."""

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatches or self.missing_rows)


def audit_journal(
    path: str | Path,
    point_values: Mapping[str, float],
    audit: Audit,
    produced: Mapping[str, int] | None = None,
) -> Views:
    """Orders, outcomes and fills as journaled in the newest epoch (the books compared
    restarted with it): fills `audit` (orders, fills, lost,
    duplicated; `missing_rows` for each stream of `produced`, stream -> the producer's
    last committed seq, whose rows of the newest epoch do not run 1..that seq) and
    returns the positions the journal's fills add up to."""
    db = connect(path)
    try:
        rows = select_records(db)
    finally:
        db.close()
    epoch = max((row["epoch"] for row in rows), default=0)
    rows = sorted(
        (row for row in rows if row["epoch"] == epoch), key=lambda row: (row["stream"], row["seq"])
    )
    for stream, last in (produced or {}).items():
        seqs = [row["seq"] for row in rows if row["stream"] == stream]
        if seqs != list(range(1, last + 1)):
            gone = sorted(set(range(1, last + 1)) - set(seqs))
            audit.missing_rows.append(
                f"{stream}: {len(gone)} of {last} messages have no row (first: {gone[:5]})"
            )
    approved: set[str] = set()
    ordered: dict[str, str] = {}  # client order id -> intent id
    answered: set[str] = set()
    fills: dict[str, dict[str, object]] = {}
    account: dict[str, Position] = {}
    for row in rows:
        msg = row["payload"]
        kind = row["type"]
        if kind not in _AUDITED:
            continue
        if kind == "RiskVerdict":
            if msg["approved"]:
                approved.add(msg["intent_id"])
        elif kind == "OrderRequest":
            ordered[msg["client_order_id"]] = msg["intent_id"]
        elif kind in ("OrderAck", "OrderReject"):
            answered.add(msg["client_order_id"])
        else:
            answered.add(msg["client_order_id"])
            fill = {key: msg[key] for key in ("client_order_id", "side", "quantity", "price")}
            first = fills.setdefault(msg["fill_id"], fill)
            if first is not fill:
                if first != fill:
                    audit.duplicated.append(msg["fill_id"])
                continue
            symbol = msg["symbol"]
            point_value = point_values[symbol]
            book_fill(
                account, symbol, msg["side"], msg["quantity"], msg["price"], msg["fee"], point_value
            )
    audit.orders = len(ordered)
    audit.fills = len(fills)
    audit.lost += sorted(set(ordered) - answered)
    audit.lost += sorted(f"intent {intent}" for intent in approved - set(ordered.values()))
    return {symbol: held.state() for symbol, held in account.items()}


def reconcile(
    system: str,
    journal: str | Path | None,
    point_values: Mapping[str, float],
    actors: Mapping[str, str] | None = None,
    journaled: Mapping[str, str] | None = None,
) -> Audit:
    """Compare what the venue, risk and execution committed, and the journal when given.
    `actors` maps each source to compare to its actor's name (default: venue, risk and
    execution, each under its own name); `journaled` maps each stream the journal must
    hold whole to its producer (checked against the producer's committed seq)."""
    names = dict(actors) if actors is not None else {s: s for s in ("venue", "risk", "execution")}
    audit = Audit()
    views = {source: committed_positions(system, name, source) for source, name in names.items()}
    if journal is not None:
        produced = {
            stream: _committed_seq(system, producer, stream)
            for stream, producer in (journaled or {}).items()
        }
        views["journal"] = audit_journal(journal, point_values, audit, produced)
    audit.positions = views
    audit.mismatches = compare(views)
    return audit


def _committed_seq(system: str, producer: str, stream: str) -> int:
    record = read_record(system, producer)
    return record.outputs.get(stream, 0) if record is not None else 0
