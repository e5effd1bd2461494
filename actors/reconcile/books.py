"""Books that must agree: each party's positions per symbol, compared field by field.

Quantities are equal exactly; average prices agree within `PRICE_TOLERANCE` (0.01 %);
realized P&L (net of fees) is preserved: equal within `PNL_TOLERANCE`. `StartReconciliation`
is the check a party runs at the start of a new run (execution against the venue's account
and the risk book; the journal against the venue's account).
"""

import math
import time
from collections.abc import Iterable, Mapping

import msgspec

from actors.common.positions import PositionState
from actors.risk.killswitch import KillSwitch, restrict_to_reducing
from kernel.actor import Actor
from kernel.durable import read_record

PRICE_TOLERANCE = 1e-4
PNL_TOLERANCE = 1e-6

Views = dict[str, PositionState]
"""Symbol -> position, as one source committed it."""


class Mismatch(msgspec.Struct, frozen=True):
    """One field of one symbol on which the sources disagree; `values` by source."""

    symbol: str
    field: str
    values: dict[str, float]

    def __str__(self) -> str:
        seen = ", ".join(f"{source} {value:g}" for source, value in self.values.items())
        return f"{self.symbol} {self.field}: {seen}"


class _WithViews(msgspec.Struct):
    """The part of the venue's and execution's durable state read here."""

    positions: list[PositionState] = []


class _RiskBook(msgspec.Struct, array_like=True):
    positions: list[PositionState]


class _RiskRecord(msgspec.Struct):
    book: _RiskBook | None = None


def compare(views: Mapping[str, Views]) -> list[Mismatch]:
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


def committed_positions(system: str, actor: str, source: str) -> Views:
    """The positions in the committed durable record of `actor`, the `source` "venue",
    "execution" or "risk"; empty without a record."""
    record = read_record(system, actor)
    if record is None or not record.state:
        return {}
    if source == "risk":
        book = msgspec.msgpack.decode(record.state, type=_RiskRecord).book
        saved = book.positions if book is not None else []
    else:
        saved = msgspec.msgpack.decode(record.state, type=_WithViews).positions
    return {held.symbol: held for held in saved}


class StartReconciliation:
    """Reconciliation at the start of a new run, by one party (as NautilusTrader's execution
    engine does it at start): its own positions against other actors' committed ones.

    The books compared must stand still: with orders flowing, one party's fill may already
    be committed while another's is in flight, and two books that really differ can look
    equal for a moment (a new fill of the same size on one side, the missing one on the
    other). So unless they agree at once with nothing in flight, trading is held (HALTED,
    `KillSwitch.hold`) until they agree or `timeout_s` has passed: the answers to re-sent
    orders settle within moments, a difference that outlasts the timeout is real."""

    def __init__(
        self, actor: Actor, source: str, others: Mapping[str, str], timeout_s: float
    ) -> None:
        self.system = actor.context.system
        self.party = actor.name
        """Who holds trading: the actor's name."""
        self.source = source
        """What its own positions are, beside the others' ("execution", "journal")."""
        self.others = dict(others)
        """Source ("venue", "risk", "execution") -> the actor whose committed record it is."""
        self._deadline = time.monotonic() + timeout_s

    def begin(self, own: Views, settled: bool) -> list[Mismatch] | None:
        """The first check, before the party sends anything. `settled`: nothing the party
        is about to do can change the books (no order to re-send); an agreement then is
        the verdict, [], and trading does not wait. Otherwise trading is held and the
        verdict comes from `check`: None."""
        if settled and not compare(self._views(own)):
            self._release()
            return []
        with KillSwitch.open(self.system) as switch:
            switch.hold(self.party)
        return None

    def check(self, own: Views) -> list[Mismatch] | None:
        """The verdict: [] when everyone agrees (trading no longer held for this party),
        the mismatches once the time is up (`reconciliation_failed` ends the hold), None
        while they disagree and time is left (check again later)."""
        mismatches = compare(self._views(own))
        if mismatches and time.monotonic() < self._deadline:
            return None
        if not mismatches:
            self._release()
        return mismatches

    def _views(self, own: Views) -> dict[str, Views]:
        views = {self.source: own}
        for source, actor in self.others.items():
            views[source] = committed_positions(self.system, actor, source)
        return views

    def _release(self) -> None:
        with KillSwitch.open(self.system) as switch:
            switch.release(self.party)


def must_reconcile(actor: Actor, others: Mapping[str, str]) -> bool:
    """Whether `actor` reconciles at this start: at the start of a new run, or after a
    restart in the middle of its reconciliation (trading still held for it)."""
    if not others:
        return False
    if actor.context.new_run:
        return True
    with KillSwitch.open(actor.context.system) as switch:
        return switch.holds_for(actor.name)


def reconciliation_failed(actor: Actor, mismatches: list[Mismatch]) -> str:
    """What a party does with a lasting difference: trading REDUCING with the difference as
    the reason (only reducing orders pass until an operator has looked), the actor's health
    row and the log say it. The reason."""
    reason = "reconciliation at start: " + "; ".join(map(str, mismatches))
    restrict_to_reducing(actor.context.system, actor.name, reason)
    actor.report_problem(reason)
    actor.log.error("%s: trading REDUCING", reason)
    return reason
