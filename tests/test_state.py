"""Crash-safe snapshots: a process killed mid-save leaves a whole snapshot behind; a
store is DURABLE by default and survives cleanup and a run's clean stop."""

import os
import signal
import subprocess
import sys
import uuid
import zlib

import msgspec
import pytest

from actors.risk.actor import RiskState
from kernel.health import HealthTable
from kernel.latency import LatencyRecorder
from kernel.node import StateMismatch, restore_state
from kernel.state import (
    SLOT_HEADER,
    SnapshotStore,
    SnapshotTooLarge,
    delete_store,
    list_stores,
    state_path,
)
from ringbuf import Lifetime, list_segments, remove_run, remove_stale, shm, unlink_segment
from tests.helpers import wait_until

WRITER = """
import sys
from kernel.state import SnapshotStore
store = SnapshotStore(sys.argv[1], "risk", capacity=1 << 20)
n = 0
while True:
    n += 1
    store.save(n.to_bytes(8, "little") * (1 + n % 100_000))
"""


# A supervisor that made its run's health table, a RUN latency file and two stores
# (one durable, one not), then died without a clean stop.
CRASHED_RUN = """
import sys, time
from kernel.health import HealthTable
from kernel.latency import LatencyRecorder
from kernel.state import SnapshotStore
system = sys.argv[1]
HealthTable.create(system, [("risk", "core")])
LatencyRecorder(system, "risk", ["hop"])
SnapshotStore(system, "risk", capacity=4096).save(b"book")
SnapshotStore(system, "scratch", capacity=4096, durable=False).save(b"tmp")
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def system():
    name = f"state{uuid.uuid4().hex[:8]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


def test_save_and_load_across_attachments(system):
    store = SnapshotStore(system, "risk", capacity=4096)
    assert store.load() is None
    store.save(b"first")
    store.save(b"second")
    store.close()
    again = SnapshotStore(system, "risk", capacity=4096)
    assert again.load() == b"second"
    with pytest.raises(SnapshotTooLarge):
        again.save(b"x" * 4097)
    with pytest.raises(ValueError, match="bytes, not the"):
        SnapshotStore(system, "risk", capacity=8192)
    assert os.path.getsize(state_path(system, "risk")) == shm.HEADER_BYTES + 64 + 2 * 4160
    again.close()


def test_a_slot_checksummed_by_an_earlier_version_loads_and_a_damaged_one_does_not(system):
    """Slots are checksummed with xxh3 (flagged in the length word); a store saved by an
    earlier version, with crc32, still loads; a slot whose payload no longer matches its
    checksum is skipped for the other slot."""
    store = SnapshotStore(system, "risk", capacity=4096)
    store.save(b"older")
    store.save(b"newer")
    mapping = store._mapping
    newest = store._slot_offset(2)
    generation, length, _ = SLOT_HEADER.unpack_from(mapping, newest)
    assert length == len(b"newer") | (1 << 63)
    SLOT_HEADER.pack_into(mapping, newest, generation, len(b"newer"), zlib.crc32(b"newer"))
    assert store.load() == b"newer"  # as an earlier version saved it
    body = newest + SLOT_HEADER.size
    mapping[body] ^= 0xFF
    assert store.load() == b"older"
    store.save(b"again")  # overwrites the older slot, checksummed with xxh3
    mapping[store._slot_offset(3) + SLOT_HEADER.size] ^= 0xFF
    assert store.load() is None  # neither slot holds a whole snapshot
    store.close()


def test_a_writer_killed_mid_save_leaves_a_whole_snapshot(system):
    for _ in range(5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, system])
        store = SnapshotStore(system, "risk", capacity=1 << 20)
        start = store.load()
        wait_until(lambda s=store, b=start: s.load() not in (None, b), 30, "the writer to save")
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        snapshot = store.load()
        assert snapshot is not None
        n = int.from_bytes(snapshot[:8], "little")
        assert snapshot == n.to_bytes(8, "little") * (1 + n % 100_000), "torn snapshot"
        store.close()


def test_scratch_words_are_kept_across_attachments_and_bounded(system):
    store = SnapshotStore(system, "node", capacity=4096, words=4)
    assert [store.load_word(i) for i in range(4)] == [0, 0, 0, 0]
    store.store_word(3, 2**64 - 1)
    store.store_word(0, 7)
    store.save(b"state")
    for bad in (4, -1):
        with pytest.raises(IndexError):
            store.store_word(bad, 1)
        with pytest.raises(IndexError):
            store.load_word(bad)
    with pytest.raises(OverflowError):
        store.store_word(1, -1)
    store.close()
    again = SnapshotStore(system, "node", capacity=4096, words=4)
    assert [again.load_word(i) for i in range(4)] == [7, 0, 0, 2**64 - 1]
    assert again.load() == b"state"  # the words live outside the slots
    again.close()
    with pytest.raises(ValueError, match="with 4 words, not capacity 4096 with 5"):
        SnapshotStore(system, "node", capacity=4096, words=5)  # the same size, padded
    with pytest.raises(ValueError, match="bytes, not the"):
        SnapshotStore(system, "node", capacity=4096, words=9)


def test_stores_are_durable_by_default_and_survive_cleanup_and_a_clean_stop(system):
    durable = SnapshotStore(system, "risk", capacity=4096)
    volatile = SnapshotStore(system, "scratch", capacity=4096, durable=False)
    assert (durable.lifetime, volatile.lifetime) == (Lifetime.DURABLE, Lifetime.RUN)
    durable.save(b"book")
    assert remove_stale(f"{system}.") == []
    # A clean stop of the run (this process is its supervisor): RUN state goes.
    assert remove_run(f"{system}.") == [f"{system}.state.scratch"]
    durable.close()
    volatile.close()
    again = SnapshotStore(system, "risk", capacity=4096)
    assert again.load() == b"book"
    again.close()
    with pytest.raises(shm.SegmentLifetimeMismatch, match="DURABLE segment, not RUN"):
        SnapshotStore(system, "risk", capacity=4096, durable=False)


def test_a_crashed_supervisors_run_state_goes_and_durable_state_stays(system):
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHED_RUN, system], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert remove_stale(f"{system}.") == []  # the run is alive
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    # What the next run's start does (kernel/system.py `_create_resources`).
    removed = sorted(remove_stale(f"{system}."))
    assert removed == [f"{system}.health", f"{system}.lat.risk", f"{system}.state.scratch"]
    table = HealthTable.create(system, [("risk", "core")])  # not "already running"
    store = SnapshotStore(system, "risk", capacity=4096)
    assert store.load() == b"book"
    store.close()
    table.close()


def test_run_state_made_by_another_process_belongs_to_the_runs_supervisor(system):
    table = HealthTable.create(system, [("risk", "core")])
    script = (
        "import sys\nfrom kernel.state import SnapshotStore\n"
        "from kernel.latency import LatencyRecorder\n"
        "SnapshotStore(sys.argv[1], 'node', capacity=64, durable=False)\n"
        "LatencyRecorder(sys.argv[1], 'node', ['hop'])\n"
    )
    subprocess.run([sys.executable, "-c", script, system], check=True, timeout=60)
    statuses = {s.name: s for s in list_segments(f"{system}.")}
    for name in (f"{system}.state.node", f"{system}.lat.node"):
        assert statuses[name].owner == table.owner and not statuses[name].stale
    assert sorted(remove_run(f"{system}.")) == [
        f"{system}.health",
        f"{system}.lat.node",
        f"{system}.state.node",
    ]
    table.close()


def test_stores_can_be_listed_and_deleted(system):
    for owner, durable in [("risk", True), ("actor.exec", False)]:
        store = SnapshotStore(system, owner, capacity=1024, words=2, durable=durable)
        store.save(b"x")
        store.save(b"y")
        store.close()
    LatencyRecorder(system, "risk", ["hop"]).close()  # not a store
    stores = {info.owner: info for info in list_stores(system)}
    assert sorted(stores) == ["actor.exec", "risk"]
    risk = stores["risk"]
    assert (risk.lifetime, risk.capacity, risk.words, risk.generation) == (
        Lifetime.DURABLE,
        1024,
        2,
        2,
    )
    assert stores["actor.exec"].lifetime is Lifetime.RUN
    assert risk.path == state_path(system, "risk")
    assert delete_store(system, "risk") is True
    assert delete_store(system, "risk") is False
    assert [info.owner for info in list_stores(system)] == ["actor.exec"]


def test_a_saved_state_of_another_shape_fails_clearly_naming_the_reset():
    saved = msgspec.msgpack.encode({"book": "not a book"})
    with pytest.raises(StateMismatch, match=r"actor 'risk' is not a RiskState .*--actor risk"):
        restore_state("risk", RiskState, saved)
