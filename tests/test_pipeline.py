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
from actors.risk.actor import RiskState
from actors.risk.killswitch import KillSwitch
from kernel.durable import read_record
from ringbuf import inspect_ring
from ringbuf.procs import is_alive
from tests.helpers import wait_until
from tests.pipeline import (
    JOURNALED_STREAMS,
    journal_path,
    journaled,
    net_position,
    pipeline_config,
    rings,
    start_pipeline,
    wait_quiescent,
)
from tests.systems import RunningSystem, write_config

TICKS = 12_000


def assert_no_order_executed_twice(fills: list[dict]) -> None:
    """Every distinct fill message (seqs are unique per stream, replays reuse them). A fill
    may come twice only as the venue's answer to a re-sent order: then identical, the
    original outcome; a venue that executed an order again would differ (price, time)."""
    by_id: dict[str, dict] = {}
    for fill in fills:
        first = by_id.setdefault(fill["fill_id"], fill)
        same = ("client_order_id", "side", "quantity", "price", "fee", "event_ns")
        assert all(first[key] == fill[key] for key in same), "an order was executed twice"


def assert_books_agree(system_name: str) -> None:
    """Execution's order table and risk's book, as committed (durable records): the same
    position and the same P&L, from every fill either of them booked."""
    point_value = 50.0
    execution = msgspec.msgpack.decode(
        read_record(system_name, "execution").state, type=ExecutionState
    )
    orders = list(execution.orders.values())
    assert len(orders) == execution.counts.orders, "orders retired: the check is incomplete"
    net = sum(order.side * order.filled_quantity for order in orders)
    filled = [order for order in orders if order.filled_quantity]
    cash = -sum(o.side * o.filled_quantity * o.avg_price for o in filled) * point_value
    fees = sum(order.fees for order in orders)
    risk = msgspec.msgpack.decode(read_record(system_name, "risk").state, type=RiskState)
    (held,) = [p for p in risk.book.positions if p.symbol == "ES"]
    assert held.quantity == net
    unrealized = (held.mark - held.avg_price) * held.quantity * point_value if net else 0.0
    total = cash + net * held.mark * point_value - fees
    assert held.realized + unrealized == pytest.approx(total, abs=1e-6)


def assert_reconciled(tmp_path, system) -> None:
    """Venue fills (as journaled) == execution's order table == risk's book; nothing lost
    between actors, nothing executed twice."""

    def drained() -> bool:
        stats = [inspect_ring(name) for name in rings(system)]
        return all(s.depth_bytes == 0 and s.published == s.consumed for s in stats)

    # Every ring consumed and committed: the journal writes a batch before it commits it,
    # and execution and risk have committed their records.
    wait_until(drained, 30, "every ring consumed to its end")
    for name in rings(system):
        assert inspect_ring(name).dropped == 0, name
    got = journaled(tmp_path)
    assert_no_order_executed_twice(got.fills)
    ordered = {o["client_order_id"]: o["quantity"] for o in got.orders}
    filled: dict[str, int] = {}
    for fill in got.fills:
        filled[fill["client_order_id"]] = filled.get(fill["client_order_id"], 0) + fill["quantity"]
    assert filled.keys() <= ordered.keys()
    assert all(filled[order] <= ordered[order] for order in filled), "an order overfilled"
    fills = {f["fill_id"]: f for f in got.fills}
    risk = msgspec.msgpack.decode(read_record(system.name, "risk").state, type=RiskState)
    (held,) = [p for p in risk.book.positions if p.symbol == "ES"]
    assert held.quantity == net_position(list(fills.values()))
    assert_books_agree(system.name)


def assert_journal_complete(
    system_name: str, tmp_path: Path, path: Path | None = None
) -> JournalState:
    """After a clean stop: every message of every journaled stream has exactly one row (its
    seqs run 1..N with N the producer's last committed seq); the journal's counters."""
    got = journaled(tmp_path, path)
    producers = {"intents": "tactical", "verdicts": "risk", "orders": "execution"}
    producers["venue"] = "venue"
    for stream in JOURNALED_STREAMS:
        last = read_record(system_name, producers[stream]).outputs[stream]
        assert got.seqs[stream] == list(range(1, last + 1)), stream
    state = msgspec.msgpack.decode(read_record(system_name, "journal").state, type=JournalState)
    assert state.written == sum(len(seqs) for seqs in got.seqs.values())
    assert state.lost == 0
    return state


def test_a_run_reconciles_orders_fills_and_positions(tmp_path, systems):
    system = start_pipeline(tmp_path, pipeline_config(tmp_path, TICKS))
    systems.append(system)
    wait_quiescent(system, TICKS)
    assert_reconciled(tmp_path, system)
    got = journaled(tmp_path)
    assert len(got.orders) > 50, "the baseline strategy should trade"
    assert len(got.acks) + len(got.rejects) == len(got.orders)
    # The journal holds each order's chain: intent -> verdict -> order, by decision id.
    intents = {i["intent_id"] for i in got.intents}
    approved = {v["intent_id"] for v in got.verdicts if v["approved"]}
    assert {o["intent_id"] for o in got.orders} == approved <= intents
    assert system.terminate()[0] == 0
    assert assert_journal_complete(system.name, tmp_path).repeated == 0


def test_a_whole_tree_killed_with_sigkill_restarts_and_reconciles(tmp_path, systems):
    """Supervisor, zygote and every node killed at once, mid-trading; the next run starts
    from the actors' durable records on new rings: what was in flight is gone, execution
    re-sends its working orders, the venue answers them with what it did, and venue,
    execution and risk agree again."""
    config = pipeline_config(tmp_path, TICKS)
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_until(lambda: len(journaled(tmp_path).fills) >= 20, 60, "fills before the crash")
    pids = [row["pid"] for row in system.rows().values()]
    system.close_health()
    os.killpg(system.proc.pid, signal.SIGKILL)
    system.proc.wait(timeout=10)
    wait_until(lambda: not any(is_alive(pid) for pid in pids), 10, "every process gone")
    again = start_pipeline(tmp_path, config)
    systems.append(again)
    wait_quiescent(again, TICKS)
    assert again.rows()["execution"]["restarts"] == 0
    assert again.terminate()[0] == 0  # a clean stop commits every actor
    assert_no_order_executed_twice(journaled(tmp_path).fills)
    assert_books_agree(config["name"])


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
    assert_reconciled(tmp_path, system)
    assert not (tmp_path / "quarantine.jsonl").exists()
    assert system.terminate()[0] == 0
    journal = assert_journal_complete(system.name, tmp_path)
    if (actor, point) == ("journal", "mid_save"):
        assert journal.repeated > 0, "the written batch was not delivered again"


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
