"""JournalActor: the audit trail, one SQLite row per decision, intent, verdict, order, ack,
reject, fill, cancel and control message, plus the kill-switch, trading-state and
model-version changes it sees.

Never in trading's way: its input rings drop when full (`full_policy = "drop"` on the
actor; the rings count what they drop), it runs in a node off the order path, and a
journal that cannot be written costs the journal, not an order.

Exactly once. Handlers only collect rows; the batch is written in one transaction just
before the kernel commits the journal's input positions (`before_commit`), so a row
is in the file before its message counts as handled. A crash after the write and
before the commit redelivers those messages: their (epoch, stream, seq) keys are
already there and nothing is written twice (store.py).

Faults. A journal that cannot be written (read-only file, disk full, I/O error) keeps
its rows in memory (at most `max_pending_rows`, then counts the rest as lost) and
retries at every commit and every `poll_interval_s`; a corrupt file (integrity check,
not a database) is moved aside as `<path>.corrupt-<UTC time>` and a new one started.
Either way trading goes to REDUCING (an incomplete audit trail is a risk fault) with
the reason, the actor's health row shows the problem, and the fault is journaled as
soon as the file takes writes again. Trading stays REDUCING until an operator resumes,
and health keeps saying why until then. Rows held in memory die with the process if it
is killed before the file takes them again (counted nowhere: the producers' rings
committed them); the audit trail has a hole exactly where the fault was reported.
"""

import datetime
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson

from actors.common.instruments import InstrumentParams, ServesInstruments
from actors.common.positions import Position, Positions, PositionState, book_fill
from actors.common.recent import RecentIds
from actors.journal.store import JournalError, JournalStore, Row, set_aside
from actors.messages import (
    CancelRequest,
    Control,
    DecisionRecord,
    Fill,
    OrderAck,
    OrderReject,
    OrderRequest,
    PositionSnapshot,
    RiskSnapshot,
    RiskVerdict,
    StrategicDecision,
    Synergy,
    TradeIntent,
    TradingState,
)
from actors.reconcile.books import (
    Mismatch,
    StartReconciliation,
    must_reconcile,
    reconciliation_failed,
)
from actors.risk.killswitch import KillSwitch, restrict_to_reducing, restriction_by
from config.types import AtLeastOne, Positive
from kernel.actor import Actor

POLL_TIMER = "poll"
REMEMBERED_FILLS = 100_000
PERSISTED_FILL_IDS = 1_024
"""Fill ids kept in the durable state: a redelivery after a crash repeats only the newest."""
JOURNAL = "journal"
"""How the journal signs the trading-state change it makes."""
JOURNALED: tuple[type[msgspec.Struct], ...] = (
    DecisionRecord,
    StrategicDecision,
    Synergy,
    TradeIntent,
    RiskVerdict,
    OrderRequest,
    OrderAck,
    OrderReject,
    Fill,
    CancelRequest,
    Control,
)
"""What gets a row. Market data (ticks, bars, matrices) and snapshots do not: they are
reproducible from the feed or re-published every interval."""
_VERSIONED = (DecisionRecord, StrategicDecision, TradeIntent)
"""Messages that name the model version that made them."""


class JournalParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where and how to journal; `registry` (every registered instrument by default) gives
    the point values of the positions the journaled fills add up to."""

    path: str = "state/journal.sqlite"
    """The SQLite file (relative paths from the working directory, like every state path)."""
    max_pending_rows: AtLeastOne = 100_000
    """Rows kept in memory while the file cannot be written; beyond it they are lost (and
    counted)."""
    poll_interval_s: Positive = 0.05
    """How often the kill switch and trading state are read for changes, and a failed
    write is retried."""
    reconcile_with: dict[str, str] = msgspec.field(default_factory=lambda: {"venue": "venue"})
    """At the start of a new run, the positions the journaled fills add up to are compared
    with these actors' committed ones (source -> actor name; {} to skip)."""
    reconcile_timeout_s: Positive = 5.0
    """How long they may disagree while what was in flight settles."""


class JournalState(msgspec.Struct, kw_only=True):
    """What the journal must not forget across restarts: its epoch and its counters."""

    epoch: int = -1
    """-1 until the file first opens: then `JournalStore.new_epoch` (a journal whose own
    record was reset must not take the producers' new seqs for redeliveries)."""
    written: int = 0
    """Rows in the file: every row of a written batch, including those a predecessor
    killed before its commit had written (its count died with it, the rows did not)."""
    repeated: int = 0
    """Rows of a batch found already in the file: written by a predecessor killed between
    its write and its commit, delivered again (not written twice)."""
    lost: int = 0
    """Rows dropped because the file could not be written for too long."""
    models: dict[str, str] = {}
    """The model version last seen per message type."""
    positions: list[PositionState] = []
    """What the journaled fills add up to, per symbol (each fill id once)."""
    fill_ids: list[msgspec.Raw] = []
    """The newest fill ids booked (a fill repeated under a new seq is booked once;
    `RecentIds.saved`)."""
    reconciliation_mismatches: int = 0


def _wall_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC now: turns a message's ts_ns into a wall time."""
    return time.time_ns() - time.monotonic_ns()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class JournalActor(ServesInstruments, Actor):
    Params = JournalParams
    params: JournalParams
    State = JournalState
    state: JournalState

    def __init__(self, params: JournalParams, context: Any) -> None:
        super().__init__(params, context)
        self._rows: list[tuple[Any, ...]] = []
        """Rows collected since the last write (without their epoch, added when written)."""
        self._events: list[tuple[int, str, str]] = []
        self._store: JournalStore | None = None
        self._fault: str | None = None
        """The fault now (None: the file takes writes)."""
        self._recovered: str | None = None
        """A past fault, shown in health while trading stays in the REDUCING it caused."""
        self._offset_ns = _wall_offset_ns()
        self._switch: KillSwitch | None = None
        self._seen_switch: dict[str, str] = {}
        self._account: Positions = {}
        self._fill_ids = RecentIds(REMEMBERED_FILLS, PERSISTED_FILL_IDS)
        self._reconciliation: StartReconciliation | None = None

    def input_handlers(self, stream: str) -> dict[type[msgspec.Struct], Any]:
        def collect(msg: Any) -> None:
            self._collect(stream, msg)

        return {kind: collect for kind in JOURNALED}

    async def on_start(self) -> None:
        state, params = self.state, self.params
        self._account = {saved.symbol: Position.from_state(saved) for saved in state.positions}
        self._fill_ids = RecentIds(REMEMBERED_FILLS, PERSISTED_FILL_IDS, state.fill_ids)
        self._switch = KillSwitch.open(self.context.system)
        restricted = restriction_by(self._switch, JOURNAL)
        if restricted is not None:  # a fault of an earlier incarnation, not yet resolved
            self._recovered = restricted
            self.report_problem(f"{restricted} (trading REDUCING until an operator resumes)")
        self._open()
        self._poll()
        if must_reconcile(self, params.reconcile_with):
            # Settled: the journal sends nothing; it starts before the actors that trade.
            self._reconciliation = StartReconciliation(
                self, "journal", params.reconcile_with, params.reconcile_timeout_s
            )
            verdict = self._reconciliation.begin(self._own_positions(), settled=True)
            if verdict is not None:
                self._conclude(verdict)
        self.set_timer(POLL_TIMER, params.poll_interval_s)

    def state_to_save(self) -> JournalState:
        state = self.state
        state.positions = [held.state() for held in self._account.values()]
        state.fill_ids = self._fill_ids.saved()
        return state

    # ----------------------------------------------------------------- collecting
    def _collect(self, stream: str, msg: Any) -> None:
        if len(self._rows) >= self.params.max_pending_rows:
            self.state.lost += 1
            return
        kind = type(msg).__name__
        time_ns = msg.ts_ns + self._offset_ns
        decision_id = _text(getattr(msg, "intent_id", None)) or _text(
            getattr(msg, "decision_id", None)
        )
        self._rows.append(
            (
                stream,
                msg.seq,
                kind,
                time_ns,
                msg.origin_ns,
                _text(getattr(msg, "symbol", None)),
                _text(getattr(msg, "client_order_id", None)),
                decision_id,
                orjson.dumps(msgspec.structs.asdict(msg)).decode(),
            )
        )
        terms = self.params.registry.get(msg.symbol) if type(msg) is Fill else None
        # A fill of an instrument the registry does not list is journaled, not booked:
        # the reconciliation's audit then shows the position the journal lacks.
        if terms is not None and self._fill_ids.add(msg.fill_id):
            book_fill(
                self._account,
                msg.symbol,
                msg.side,
                msg.quantity,
                msg.price,
                msg.fee,
                terms.point_value,
            )
        if isinstance(msg, _VERSIONED):
            version = msg.model_version
            if version and self.state.models.get(kind) != version:
                self.state.models[kind] = version
                detail = {"type": kind, "version": version, "stream": stream, "seq": msg.seq}
                self._event(time_ns, "model_version", detail)

    def _event(self, time_ns: int, kind: str, detail: dict[str, Any]) -> None:
        self._events.append((time_ns, kind, orjson.dumps(detail).decode()))

    def _poll(self) -> None:
        """Journal a change of the kill switch or of the trading state (their details carry
        the change's time and count, so the same state seen again is the same event)."""
        assert self._switch is not None
        state = self._switch.state()
        changes = {
            "kill_switch": (
                max(state.engaged_at_ns, state.reset_at_ns),
                {
                    "engaged": state.engaged,
                    "engage_count": state.engage_count,
                    "engaged_at_ns": state.engaged_at_ns,
                    "reason": state.reason,
                    "engaged_by": state.engaged_by,
                    "reset_at_ns": state.reset_at_ns,
                    "reset_by": state.reset_by,
                },
            ),
            "trading_state": (
                state.state_changed_at_ns,
                {
                    "state": state.trading_state.name,
                    "changed_at_ns": state.state_changed_at_ns,
                    "reason": state.state_reason,
                    "by": state.state_by,
                },
            ),
        }
        if self._recovered is not None and not (
            state.trading_state is TradingState.REDUCING and state.state_by == JOURNAL
        ):
            self._recovered = None  # resolved by an operator (or overruled: HALTED)
            self.report_problem(None)
        for kind, (at_ns, detail) in changes.items():
            text = orjson.dumps(detail).decode()
            if self._seen_switch.get(kind) != text:
                self._seen_switch[kind] = text
                self._events.append((at_ns or time.time_ns(), kind, text))

    def on_timer(self, name: str) -> None:
        if name == POLL_TIMER:
            self._poll()
            if self._reconciliation is not None:
                self._reconcile()
            if self._fault is not None or self._events:
                self._write()

    def _reconcile(self) -> None:
        """The journal's fills against the venue's account, at the start of a new run: rows
        lost (full rings, an unwritable file, a whole-tree crash whose rings were removed)
        show as a difference. Journaled either way."""
        assert self._reconciliation is not None
        mismatches = self._reconciliation.check(self._own_positions())
        if mismatches is not None:
            self._conclude(mismatches)

    def _own_positions(self) -> dict[str, PositionState]:
        return {symbol: held.state() for symbol, held in self._account.items()}

    def _conclude(self, mismatches: list[Mismatch]) -> None:
        self._reconciliation = None
        others = sorted(self.params.reconcile_with)
        if mismatches:
            self.state.reconciliation_mismatches += len(mismatches)
            reason = reconciliation_failed(self, mismatches)
            detail = {"agree": False, "with": others, "reason": reason, "at_ns": time.time_ns()}
        else:
            self.log.info("reconciled with %s: positions agree", ", ".join(others))
            detail = {"agree": True, "with": others, "at_ns": time.time_ns()}
        self._event(time.time_ns(), "reconciliation", detail)

    # ------------------------------------------------------------------- writing
    def before_commit(self) -> None:
        self._write()

    def _write(self) -> None:
        if not (self._rows or self._events):
            return
        if self._store is None and not self._open():
            return
        assert self._store is not None
        epoch = self.state.epoch
        rows: list[Row] = [(epoch, *row) for row in self._rows]  # type: ignore[misc]
        try:
            inserted = self._store.write(rows, self._events)
        except JournalError as error:
            self._fail(error.cause)
            return
        self.state.written += len(rows)
        self.state.repeated += len(rows) - inserted
        self._rows.clear()
        self._events.clear()
        if self._fault is not None:
            self.log.warning("journal writable again after: %s", self._fault)
            self._recovered = f"journal recovered from: {self._fault}"
            self._fault = None
            self.report_problem(f"{self._recovered} (trading REDUCING until an operator resumes)")

    def _open(self) -> bool:
        """Open (or reopen) the file; False, with the fault reported, when it cannot be."""
        path = self.params.path
        # The check reads the whole file: at the start of a run, not after a crash of this
        # process (a killed process does not corrupt SQLite), which must restart quickly.
        check = self.context.new_run or self.state.epoch < 0
        try:
            self._store = JournalStore(path, check)
        except JournalError as error:
            if not error.corrupt:
                self._fail(error.cause)
                return False
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
            try:
                moved = set_aside(Path(path), stamp)
            except OSError as cannot:  # retried at the next write, like any fault
                self._fail(f"{error.cause}; cannot set it aside: {cannot}")
                return False
            self._fail(f"{error.cause}; set aside as {moved.name}, a new journal started")
            try:
                self._store = JournalStore(path)
            except JournalError as again:
                self._fail(again.cause)
                return False
        if self.state.epoch < 0:
            try:
                self.state.epoch = self._store.new_epoch(self.context.run_id)
            except JournalError as error:
                self._store.close()
                self._store = None
                self._fail(error.cause)
                return False
        return True

    def _fail(self, reason: str) -> None:
        """A journal fault: REDUCING (once per fault), health shows it, journaled later."""
        if reason == self._fault:
            return
        first = self._fault is None
        self._fault = reason
        self.log.error("journal fault (%s): %s", self.params.path, reason)
        # Trading restricted before health says why: whoever sees the problem sees REDUCING.
        if first and restrict_to_reducing(self.context.system, JOURNAL, f"journal: {reason}"):
            self.log.warning("trading state REDUCING: the journal cannot record trading")
        self.report_problem(f"journal: {reason}")
        # Its time in the detail: the same fault again later is another event, not a repeat.
        at_ns = time.time_ns()
        self._event(at_ns, "journal_fault", {"reason": reason, "at_ns": at_ns})

    async def on_stop(self) -> None:
        # The kernel's last commit follows; with everything written it writes nothing.
        if self._switch is not None:
            self._poll()  # a change since the last poll is journaled too
        self._write()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._switch is not None:
            self._switch.close()

    inputs = dict.fromkeys(JOURNALED, _collect)
    """Each input's handler is `_collect` with that input's stream bound (`input_handlers`)."""
    optional_inputs = JOURNALED
    """Any of them may be wired, none must be."""
    ignores = (PositionSnapshot, RiskSnapshot)
