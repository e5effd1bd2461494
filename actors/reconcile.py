"""Reconciliation: do the venue's account, the journal, the risk book and execution agree?

Each keeps its own account of the same fills: the venue books every fill it executes,
execution and risk every fill they receive (each once, by fill id), and the journal holds
every fill message. Read from what each has committed (durable records, journal rows),
per symbol:

- quantities are equal exactly;
- average prices agree within `PRICE_TOLERANCE` (0.01 %);
- realized P&L (net of fees) is preserved: equal within `PNL_TOLERANCE`.

The journal also answers for the orders: every order sent got an outcome from the venue
(an ack or a reject; none `lost`), every approved verdict became an order, and no client
order id was executed twice (`duplicated`: two different fills under one fill id; the
same fill twice is the venue answering a re-sent order with its original outcome).
"""

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from actors.common.positions import Position, PositionState
from actors.journal.query import connect, select_records
from kernel.durable import read_record

PRICE_TOLERANCE = 1e-4
PNL_TOLERANCE = 1e-6

Positions = dict[str, PositionState]
"""Symbol -> position, as one source sees it."""


_AUDITED = {"RiskVerdict", "OrderRequest", "OrderAck", "OrderReject", "Fill"}


class Mismatch(msgspec.Struct, frozen=True):
    """One field of one symbol on which the sources disagree; `values` by source."""

    symbol: str
    field: str
    values: dict[str, float]

    def __str__(self) -> str:
        seen = ", ".join(f"{source} {value:g}" for source, value in self.values.items())
        return f"{self.symbol} {self.field}: {seen}"


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
    positions: dict[str, Positions] = {}
    """By source, what was compared."""

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatches or self.missing_rows)


class _WithPositions(msgspec.Struct):
    """The part of the venue's and execution's durable state read here."""

    positions: list[PositionState] = []


class _RiskBook(msgspec.Struct, array_like=True):
    positions: list[PositionState]


class _RiskRecord(msgspec.Struct):
    book: _RiskBook | None = None


def compare(views: Mapping[str, Positions]) -> list[Mismatch]:
    """The fields on which the sources disagree. A symbol a source never traded counts as
    flat there (quantity 0, realized 0)."""
    mismatches: list[Mismatch] = []
    symbols = sorted({symbol for view in views.values() for symbol in view})
    for symbol in symbols:
        held = {source: view.get(symbol) for source, view in views.items()}
        quantity = {source: p.quantity if p else 0 for source, p in held.items()}
        if len(set(quantity.values())) > 1:
            mismatches.append(Mismatch(symbol, "quantity", quantity))
            continue
        realized = {source: p.realized if p else 0.0 for source, p in held.items()}
        if _spread(realized.values()) > PNL_TOLERANCE * max(1.0, *map(abs, realized.values())):
            mismatches.append(Mismatch(symbol, "realized_pnl", realized))
        if next(iter(quantity.values())):
            average = {source: p.avg_price if p else math.nan for source, p in held.items()}
            unknown = any(math.isnan(price) for price in average.values())
            reference = max(map(abs, average.values()))
            if unknown or _spread(average.values()) > PRICE_TOLERANCE * reference:
                mismatches.append(Mismatch(symbol, "avg_price", average))
    return mismatches


def _spread(values: Iterable[float]) -> float:
    numbers = list(values)
    return max(numbers) - min(numbers)


def committed_positions(system: str, actor: str, source: str) -> Positions:
    """The positions in the committed durable record of `actor`, the `source` "venue",
    "execution" or "risk"; empty without a record."""
    record = read_record(system, actor)
    if record is None or not record.state:
        return {}
    if source == "risk":
        book = msgspec.msgpack.decode(record.state, type=_RiskRecord).book
        saved = book.positions if book is not None else []
    else:
        saved = msgspec.msgpack.decode(record.state, type=_WithPositions).positions
    return {held.symbol: held for held in saved}


def audit_journal(
    path: str | Path,
    point_values: Mapping[str, float],
    audit: Audit,
    produced: Mapping[str, int] | None = None,
) -> Positions:
    """Orders, outcomes and fills as journaled: fills `audit` (orders, fills, lost,
    duplicated; `missing_rows` for each stream of `produced`, stream -> the producer's
    last committed seq, whose rows of the newest epoch do not run 1..that seq) and
    returns the positions the journal's fills add up to."""
    db = connect(path)
    try:
        rows = select_records(db)
    finally:
        db.close()
    rows.sort(key=lambda row: (row["epoch"], row["stream"], row["seq"]))
    epoch = rows[-1]["epoch"] if rows else 0
    for stream, last in (produced or {}).items():
        seqs = [row["seq"] for row in rows if row["epoch"] == epoch and row["stream"] == stream]
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
            held = account.get(msg["symbol"])
            if held is None:
                held = account[msg["symbol"]] = Position(msg["symbol"])
            point_value = point_values[msg["symbol"]]
            held.apply(msg["side"], msg["quantity"], msg["price"], msg["fee"], point_value)
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
