"""Stale segments: left by a crashed creator, found and removed; live ones kept."""

import os
import signal
import subprocess
import sys

from ringbuf import create_ring, destroy_ring, list_segments, remove_stale
from tests.helpers import wait_until

CREATE_AND_HANG = """
import sys, time
from ringbuf import create_ring
create_ring(sys.argv[1], 1024)
print("ready", flush=True)
time.sleep(600)
"""


def test_segment_of_a_killed_creator_is_stale_and_removed(ring_name):
    child = subprocess.Popen(
        [sys.executable, "-c", CREATE_AND_HANG, ring_name + "-dead"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    live = create_ring(ring_name + "-live", 1024)
    statuses = {s.name: s for s in list_segments(ring_name)}
    assert not statuses[ring_name + "-dead"].stale  # its creator still runs
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    wait_until(
        lambda: {s.name: s for s in list_segments(ring_name)}[ring_name + "-dead"].stale,
        10,
        "the dead creator's segment to be stale",
    )
    assert remove_stale(ring_name) == [ring_name + "-dead"]
    assert [s.name for s in list_segments(ring_name)] == [ring_name + "-live"]
    destroy_ring(live)
    assert list_segments(ring_name) == []


def test_garbage_file_with_our_prefix_is_reported_and_removable(ring_name):
    path = f"/dev/shm/gm-{ring_name}-junk"
    with open(path, "wb") as junk:
        junk.write(b"not a ring")
    (status,) = list_segments(ring_name)
    assert status.problem and status.stale
    assert remove_stale(ring_name) == [ring_name + "-junk"]
    assert not os.path.exists(path)


def test_persistent_state_is_never_stale(ring_name):
    path = f"/dev/shm/gm-{ring_name}.persist.killswitch"
    with open(path, "wb") as state:
        state.write(b"\0" * 64)
    (status,) = list_segments(ring_name)
    assert status.persistent and not status.stale
    assert remove_stale(ring_name) == []
    os.unlink(path)
