"""The whole order path as real processes: reconciliation, kill switch, kill -9."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from actors.execution.actor import ExecutionState
from actors.journal.actor import JournalState
from actors.journal.query import connect, select_events
from actors.messages import DenyReason, TradingState
from actors.reconcile.audit import Audit, reconcile
from actors.reconcile.books import committed_positions
from actors.risk.actor import RiskState
from actors.risk.killswitch import KillSwitch
from kernel.durable import read_record, reset_record
from ringbuf import inspect_ring, remove_stale
from ringbuf.procs import is_alive
from tests.helpers import wait_until
from tests.pipeline import (
    JOURNALED_STREAMS,
    POINT_VALUES,
    journal_path,
    journaled,
    pipeline_config,
    rings,
    start_pipeline,
    wait_quiescent,
)
from tests.systems import RunningSystem, write_config

TICKS = 12_000


def assert_reconciled(tmp_path: Path, system_name: str, complete: bool = True) -> Audit:
    """Venue account == journal == risk book == execution (actors/reconcile): nothing
    lost, nothing executed twice, the same positions, average prices and realized P&L.
    Not `complete`: risk and execution only (what was in flight is known to be gone)."""
    journal = journal_path(tmp_path) if complete else None
    books = None if complete else {"risk": "risk", "execution": "execution"}
    audit = reconcile(system_name, journal, POINT_VALUES, books)
    assert audit.clean, (audit.lost, audit.duplicated, [str(m) for m in audit.mismatches])
    sources = {"venue", "journal", "risk", "execution"} if complete else {"risk", "execution"}
    assert set(audit.positions) == sources
    assert any(held.quantity or held.realized for held in audit.positions["risk"].values())
    return audit


def wait_drained(system: RunningSystem) -> None:
    """Every ring consumed and committed: the journal writes a batch before it commits it,
    and every actor has committed its record."""

    def drained() -> bool:
        stats = [inspect_ring(name) for name in rings(system)]
        return all(s.depth_bytes == 0 and s.published == s.consumed for s in stats)

    wait_until(drained, 30, "every ring consumed to its end")
    for name in rings(system):
        assert inspect_ring(name).dropped == 0, name


def assert_journal_complete(
    system_name: str, tmp_path: Path, path: Path | None = None
) -> JournalState:
    """After a clean stop: every message of every journaled stream has exactly one row (its
    seqs run 1..N with N the producer's last committed seq); the journal's counters."""
    path = path or journal_path(tmp_path)
    audit = reconcile(system_name, path, POINT_VALUES, {}, JOURNALED_STREAMS)
    assert not audit.missing_rows, audit.missing_rows
    state = msgspec.msgpack.decode(read_record(system_name, "journal").state, type=JournalState)
    assert state.written == sum(len(seqs) for seqs in journaled(tmp_path, path).seqs.values())
    assert state.lost == 0
    return state


def test_a_run_reconciles_orders_fills_and_positions(tmp_path, systems):
    system = start_pipeline(tmp_path, pipeline_config(tmp_path, TICKS))
    systems.append(system)
    wait_quiescent(system, TICKS)
    wait_drained(system)
    assert_reconciled(tmp_path, system.name)
    got = journaled(tmp_path)
    assert len(got.orders) > 50, "the baseline strategy should trade"
    assert len(got.acks) + len(got.rejects) == len(got.orders)
    # The journal holds each order's chain: intent -> verdict -> order, by decision id.
    intents = {i["intent_id"] for i in got.intents}
    approved = {v["intent_id"] for v in got.verdicts if v["approved"]}
    assert {o["intent_id"] for o in got.orders} == approved <= intents
    assert system.terminate()[0] == 0
    assert assert_journal_complete(system.name, tmp_path).repeated == 0


@pytest.mark.parametrize("rings", ["kept", "cleaned", "outboxes resized"])
def test_a_whole_tree_killed_with_sigkill_restarts_and_reconciles(tmp_path, systems, rings):
    """Supervisor, zygote and every node killed at once, mid-trading.

    kept: the next start takes over the crashed run's rings and outboxes and continues it
    (kernel/system.py), every actor restarting as after a crash of its own node: nothing in
    flight is lost, the journal included, and every message is journaled exactly once.
    cleaned: an operator removed the stale segments first (or the new config's outboxes
    differ in size: they cannot be taken over, so neither can the rings); a new run starts
    from the actors' durable records on new rings, execution re-sends its working orders, the venue
    answers them with what it did, and execution and risk agree again. What was in flight
    is gone: rows to the journal, and a fill the venue published after its last commit
    (its account lacks it; a real broker's would not)."""
    config = pipeline_config(tmp_path, TICKS)
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_until(lambda: len(journaled(tmp_path).fills) >= 20, 60, "fills before the crash")
    pids = [row["pid"] for row in system.rows().values()]
    system.close_health()
    os.killpg(system.proc.pid, signal.SIGKILL)
    system.proc.wait(timeout=10)
    wait_until(lambda: not any(is_alive(pid) for pid in pids), 10, "every process gone")
    if rings == "cleaned":
        assert remove_stale(f"{system.name}.")
    if rings == "outboxes resized":
        config["delivery"]["outbox_bytes"] = 8 << 20
    again = start_pipeline(tmp_path, config)
    systems.append(again)
    wait_quiescent(again, TICKS)
    recovered = any(e["event"].startswith("recovering a crashed run") for e in again.events())
    assert recovered == (rings == "kept")
    if rings != "kept":  # a new run: execution reconciles at start

        def verdict() -> bool:
            reconciled = any(
                e["logger"] == "actor.execution" and e["event"].startswith("reconciled with")
                for e in again.events()
            )
            return reconciled or again.rows()["execution"]["problem"]

        wait_until(verdict, 30, "the start's reconciliation")
    assert again.rows()["execution"]["restarts"] == 0
    assert again.terminate()[0] == 0  # a clean stop commits every actor
    if rings == "kept":
        assert_reconciled(tmp_path, config["name"])
        assert_journal_complete(config["name"], tmp_path)
        return
    # A fill in flight when the rings went may be lost to some books for good: then the
    # start's reconciliation must have seen it and kept trading to reducing orders.
    audit = reconcile(config["name"], None, POINT_VALUES)
    with KillSwitch.open(config["name"]) as switch:
        state = switch.state()
    if not audit.clean:
        assert state.trading_state is TradingState.REDUCING, [str(m) for m in audit.mismatches]
        reason = state.state_reason
        assert reason.startswith(tuple(f"reconciliation at start: {s} " for s in POINT_VALUES))


def test_a_quiet_tree_killed_whole_comes_back_with_every_book_and_the_switch(tmp_path, systems):
    """Everything a trader relies on survives kill -9 of the supervisor and every node:
    positions, daily P&L (the day's starting equity), peak equity, trade statistics,
    pending approvals and the throttle window (risk), orders and positions (execution),
    the venue's account, and a latched kill switch."""
    # Orders fill in part (a quarter of the displayed depth, a contract or two, of up to
    # 50): their rests stay pending, more than later fills release.
    config = pipeline_config(
        tmp_path, 3000, pending_ttl_s=3600.0, max_order_size=50, initial_equity=1e9
    )
    (venue,) = [actor for actor in config["actors"] if actor["name"] == "venue"]
    venue["params"] = {"depth_multiplier": 0.25}
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_quiescent(system, 3000)
    wait_drained(system)
    with KillSwitch.open(system.name) as switch:
        switch.engage("latched before the crash", "pytest")

    def books() -> tuple[object, ...]:
        risk = msgspec.msgpack.decode(read_record(system.name, "risk").state, type=RiskState)
        execution = msgspec.msgpack.decode(
            read_record(system.name, "execution").state, type=ExecutionState
        )
        venue = committed_positions(system.name, "venue", "venue")
        return risk.book, risk.gate.pending, risk.gate.approvals_ns, execution, venue

    before = books()
    assert before[0].positions and before[1], "a book and pending approvals to lose"
    pids = [row["pid"] for row in system.rows().values()]
    system.close_health()
    os.killpg(system.proc.pid, signal.SIGKILL)
    system.proc.wait(timeout=10)
    wait_until(lambda: not any(is_alive(pid) for pid in pids), 10, "every process gone")
    again = start_pipeline(tmp_path, config)
    systems.append(again)
    wait_drained(again)
    with KillSwitch.open(again.name) as switch:
        assert switch.engaged and switch.reason == "latched before the crash"
    assert again.terminate()[0] == 0
    # As JSON: NaN (a mark not known, an average price when flat) equals itself there.
    assert msgspec.json.encode(books()) == msgspec.json.encode(before)


@pytest.mark.parametrize(("forgotten", "finder"), [("risk", "execution"), ("journal", "journal")])
def test_a_book_lost_between_runs_is_found_at_start_and_trading_reduces(
    tmp_path, systems, forgotten, finder
):
    """Reconciliation at the start of a new run: execution checks its positions against
    the venue's account and the risk book, the journal its fills against the venue's
    account. An actor's state forgotten between runs (an operator's reset) is a lasting
    difference: REDUCING, with the difference in the reason, the finder's health row, the
    journal and /metrics' counter; the other check agrees."""
    config = pipeline_config(tmp_path, 3000)
    for actor in config["actors"]:
        if actor["name"] in ("execution", "journal"):
            actor["params"]["reconcile_timeout_s"] = 0.5
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_quiescent(system, 3000)
    assert system.terminate()[0] == 0
    assert_reconciled(tmp_path, system.name)
    assert reset_record(system.name, forgotten, keep_positions=True)
    again = start_pipeline(tmp_path, config)
    systems.append(again)
    wait_until(lambda: again.rows()[finder]["problem"], 30, "the reconciliation's verdict")
    row = again.rows()[finder]
    assert row["last_error"].startswith("reconciliation at start: ES ")
    assert f"{forgotten} 0" in row["last_error"] or "journal 0" in row["last_error"]
    with KillSwitch.open(again.name) as switch:
        assert switch.trading_state is TradingState.REDUCING
        assert switch.state().state_by == finder
    assert again.terminate()[0] == 0
    record = read_record(again.name, finder).state
    state_type = ExecutionState if finder == "execution" else JournalState
    state = msgspec.msgpack.decode(record, type=state_type)
    counts = state.counts if finder == "execution" else state
    assert counts.reconciliation_mismatches >= 1
    # The audit trail has both checks' verdicts and the trading-state change with its reason.
    (change,) = [e for e in journal_events(tmp_path, "trading_state") if e["by"] == finder]
    assert change["state"] == "REDUCING" and "reconciliation at start" in change["reason"]
    verdicts = journal_events(tmp_path, "reconciliation")
    assert [v["agree"] for v in verdicts] == [finder != "journal"]


def test_kill_switch_blocks_every_order_and_survives_a_risk_restart(tmp_path, systems):
    system = start_pipeline(tmp_path, pipeline_config(tmp_path, 0))
    systems.append(system)
    wait_until(lambda: len(journaled(tmp_path).orders) >= 10, 60, "orders flowing")
    switch = KillSwitch.open(system.name)
    engaged_ns = time.monotonic_ns()  # the clock of the intents' stamps
    switch.engage("test", "pytest")

    def after_engaging() -> list[dict]:
        """Orders for intents published after the switch was engaged: none may exist
        (orders approved just before it may still land, however loaded the machine)."""
        return [o for o in journaled(tmp_path).orders if o["intent_ns"] > engaged_ns]

    intents_then = system.rows()["tactical"]["msgs_out"]
    wait_until(
        lambda: system.rows()["tactical"]["msgs_out"] > intents_then + 20,
        60,
        "more intents while the switch is engaged",
    )
    assert after_engaging() == []
    hot = system.rows()["risk"]["pid"]
    os.kill(hot, signal.SIGKILL)
    wait_until(
        lambda: system.rows()["risk"]["pid"] != hot and system.rows()["risk"]["ready"],
        30,
        "risk restarted",
    )
    intents_then = system.rows()["tactical"]["msgs_out"]
    wait_until(
        lambda: system.rows()["tactical"]["msgs_out"] > intents_then + 20,
        60,
        "intents after the restart",
    )
    assert after_engaging() == [], "an order passed the latched switch"
    reset_ns = time.monotonic_ns()
    switch.reset("pytest")
    wait_until(
        lambda: any(o["intent_ns"] > reset_ns for o in journaled(tmp_path).orders),
        60,
        "orders after reset",
    )
    switch.close()
    assert system.terminate()[0] == 0


def _positions(tmp_path: Path) -> dict[str, int]:
    """Each symbol's position from every fill journaled."""
    held: dict[str, int] = {}
    for row in journaled(tmp_path).fills:
        held[row["symbol"]] = held.get(row["symbol"], 0) + row["side"] * row["quantity"]
    return held


def test_flatten_closes_every_position_through_execution(tmp_path, systems):
    """The market stops after 3,000 ticks with a position open (the seeded run always ends
    short NQ): with no more bars, no strategy intent can close it, only FLATTEN."""
    ticks = 3_000
    system = start_pipeline(tmp_path, pipeline_config(tmp_path, ticks))
    systems.append(system)
    wait_quiescent(system, ticks)
    wait_until(lambda: any(_positions(tmp_path).values()), 30, "the last fills journaled")
    held = {symbol: quantity for symbol, quantity in _positions(tmp_path).items() if quantity}
    with KillSwitch.open(system.name) as switch:
        assert switch.request_flatten("pytest", "end of the test") == 1
        assert switch.trading_state is TradingState.REDUCING
        wait_until(lambda: not any(_positions(tmp_path).values()), 30, "every position closed")
        assert "FLATTEN: end of the test" in switch.state().state_reason
    flattening = {
        v["symbol"]: (v["direction"], v["quantity"])
        for v in journaled(tmp_path).verdicts
        if v["intent_id"].startswith("flatten-1-")
    }
    assert flattening == {s: (-1 if q > 0 else 1, abs(q)) for s, q in held.items()}
    assert system.terminate()[0] == 0


@pytest.mark.parametrize(
    ("actor", "point", "nth"),
    [
        ("feed", "between_rings", 3_000),
        ("venue", "between_rings", 20),
        ("venue", "before_publish", 22),  # most likely between an order's ack and its fill
        ("execution", "after_handler", 40),
        ("risk", "mid_save", 60),
        ("journal", "after_handler", 50),  # rows collected, not yet written
        ("journal", "mid_save", 10),  # a batch written, its input positions not committed
    ],
)
def test_kill9_of_a_node_at_a_protocol_point_still_reconciles(tmp_path, systems, actor, point, nth):
    marker = tmp_path / "fault.marker"
    config = pipeline_config(tmp_path, TICKS)
    if actor == "journal":
        # The journal's poll timer commits it too, so its n-th save would not always follow
        # messages: with the timer out of the way, every save but the first does.
        (journal,) = [entry for entry in config["actors"] if entry["name"] == "journal"]
        journal["params"]["poll_interval_s"] = 3600.0
    path = write_config(tmp_path / "pipeline.toml", config)
    system = RunningSystem(
        path,
        config["name"],
        Path(config["logging"]["file"]),
        env={"GRANDMODEL_FAULT": f"{actor}:{point}:{nth}:{marker}"},
    )
    systems.append(system)
    system.wait_running()
    wait_quiescent(system, TICKS)
    assert marker.exists(), "the fault never fired"
    assert system.rows()[actor]["restarts"] == 1
    wait_drained(system)
    assert_reconciled(tmp_path, system.name)
    assert not (tmp_path / "quarantine.jsonl").exists()
    assert system.terminate()[0] == 0
    journal = assert_journal_complete(system.name, tmp_path)
    if (actor, point) == ("journal", "mid_save"):
        assert journal.repeated > 0, "the written batch was not delivered again"


@pytest.mark.parametrize("party", ["execution", "journal"])
def test_a_restriction_an_actor_set_shows_in_its_health_after_a_restart(tmp_path, systems, party):
    """Trading REDUCING because of an actor outlives the actor (the switch is shared
    memory): its restarted successor's health row says why again, until an operator
    resumes."""
    config = pipeline_config(tmp_path, 0)
    reason = "reconciliation at start: ES quantity: venue 2, journal 1"
    with KillSwitch.open(config["name"]) as switch:
        switch.set_trading_state(TradingState.REDUCING, party, reason)
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_until(lambda: system.rows()[party]["problem"], 30, "the restriction in health")
    assert reason in system.rows()[party]["last_error"]
    with KillSwitch.open(config["name"]) as switch:
        switch.set_trading_state(TradingState.ACTIVE, "ops", "looked at it")
    wait_until(lambda: not system.rows()[party]["problem"], 30, "the problem resolved")


def test_an_engaged_switch_outlives_a_clean_stop_and_a_reset_one_does_not(tmp_path, systems):
    config = pipeline_config(tmp_path, 0)
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    switch = KillSwitch.open(system.name)
    switch.engage("end of day checks", "pytest")
    assert system.terminate()[0] == 0
    assert os.path.exists(switch.path), "a latched switch must survive the run"
    again = start_pipeline(tmp_path, config)
    systems.append(again)
    assert KillSwitch.open(again.name).engaged
    switch.reset("pytest")
    assert again.terminate()[0] == 0
    assert not os.path.exists(switch.path), "a switch at rest is removed on a clean stop"
    switch.close()


def test_a_clean_stop_journals_what_waits_in_the_journals_rings(tmp_path, systems):
    """A journal behind its producers when the run stops cleanly (here: paused with
    SIGSTOP until the supervisor, stopping nodes in reverse start order, gets to it)
    handles what waits in its rings before its last commit: no row is lost."""
    config = pipeline_config(tmp_path, 0)
    (audit,) = [node for node in config["nodes"] if node["name"] == "audit"]
    audit["heartbeat_timeout_s"] = 60.0  # paused is not hung: no restart
    audit["batch"] = 1  # it sees the stop signal after one message of each input
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_until(lambda: len(journaled(tmp_path).fills) >= 5, 60, "fills journaled")
    journal_pid = system.rows()["journal"]["pid"]
    os.kill(journal_pid, signal.SIGSTOP)
    journal_rings = [name for name in rings(system) if name.endswith(".journal")]

    def waiting() -> int:
        return sum(
            inspect_ring(name).published - inspect_ring(name).consumed for name in journal_rings
        )

    try:
        # more than it handles in the millisecond before it first yields to the signal
        wait_until(lambda: waiting() >= 5000, 60, "messages waiting for the paused journal")
        system.proc.send_signal(signal.SIGTERM)
        wait_until(
            lambda: system.rows()["journal"]["state"] == "STOPPING", 30, "the journal's turn"
        )
    finally:
        os.kill(journal_pid, signal.SIGCONT)
    assert system.proc.wait(timeout=30) == 0
    assert_journal_complete(system.name, tmp_path)


def journal_events(tmp_path: Path, kind: str) -> list[dict]:
    db = connect(journal_path(tmp_path))
    try:
        return [event["detail"] for event in select_events(db, kinds=[kind])]
    finally:
        db.close()


def test_a_corrupt_journal_is_set_aside_and_trading_reduces_until_resumed(tmp_path, systems):
    garbage = b"a disk sector full of something else " * 300
    journal_path(tmp_path).write_bytes(garbage)
    system = start_pipeline(tmp_path, pipeline_config(tmp_path, 0))
    systems.append(system)
    (moved,) = tmp_path.glob("journal.sqlite.corrupt-*")
    assert moved.read_bytes() == garbage, "the damaged file is kept for inspection"
    row = system.rows()["journal"]
    assert row["problem"] and row["degraded"]
    assert "not a database" in row["last_error"] and "set aside as" in row["last_error"]
    with KillSwitch.open(system.name) as switch:
        state = switch.state()
        assert state.trading_state is TradingState.REDUCING and state.state_by == "journal"
        # The new journal records the fault and keeps recording: flat, nothing may open.
        wait_until(
            lambda: any(
                v["reason"] == DenyReason.REDUCING_ONLY for v in journaled(tmp_path).verdicts
            ),
            60,
            "intents denied while REDUCING, journaled",
        )
        assert "not a database" in journal_events(tmp_path, "journal_fault")[0]["reason"]
        assert system.rows()["journal"]["problem"], "health says why until an operator resumes"
        switch.set_trading_state(TradingState.ACTIVE, "pytest", "journal checked")
    wait_until(lambda: not system.rows()["journal"]["problem"], 10, "the problem resolved")
    assert system.terminate()[0] == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a journal on it fills it within seconds of trading."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_reduces_trading_loses_no_row_and_recovers(tmp_path, systems, small_disk):
    config = pipeline_config(tmp_path, TICKS)
    (journal,) = [actor for actor in config["actors"] if actor["name"] == "journal"]
    journal["params"]["path"] = str(small_disk / "journal.sqlite")
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_until(lambda: system.rows()["journal"]["problem"], 60, "the journal's disk to fill")
    assert "full" in system.rows()["journal"]["last_error"]
    with KillSwitch.open(system.name) as switch:
        assert switch.trading_state is TradingState.REDUCING
        assert "journal" in switch.state().state_reason
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    wait_until(lambda: "recovered" in system.rows()["journal"]["last_error"], 30, "writes again")
    wait_quiescent(system, TICKS)
    assert system.terminate()[0] == 0
    # Every row held while the disk was full reached the file once it had room.
    path = small_disk / "journal.sqlite"
    assert_journal_complete(system.name, tmp_path, path)
    db = connect(path)
    try:
        faults = [e["detail"] for e in select_events(db, kinds=["journal_fault"])]
    finally:
        db.close()
    assert any("full" in fault["reason"] for fault in faults)
