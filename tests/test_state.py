"""Crash-safe snapshots: a process killed mid-save leaves a whole snapshot behind."""

import os
import signal
import subprocess
import sys
import uuid

import pytest

from kernel.state import SnapshotStore, SnapshotTooLarge, state_path
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


@pytest.fixture
def system():
    name = f"state{uuid.uuid4().hex[:8]}"
    yield name
    for owner in ("risk", "other"):
        if os.path.exists(state_path(name, owner)):
            os.unlink(state_path(name, owner))


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
    again.close()


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
