"""Stale segments: left by a crashed creator, found and removed; live and DURABLE ones
kept (tests/test_shm.py covers every lifetime and the safety refusals)."""

import os
import signal
import subprocess
import sys

from ringbuf import Kind, Lifetime, create_ring, destroy_ring, list_segments, remove_stale, shm
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


def test_durable_state_is_never_stale_whatever_its_name(ring_name):
    # The owner recorded is a process that is gone (same pid, another start time).
    me = shm.Owner.current()
    gone = shm.Owner(me.pid, me.start_ticks + 1)
    for name, lifetime in [("a", Lifetime.DURABLE), ("b.persist.killswitch", Lifetime.RUN)]:
        shm.create(f"{ring_name}.{name}", Kind.KILLSWITCH, 2, 64, lifetime, owner=gone).close()
    statuses = {s.name: s for s in list_segments(ring_name)}
    durable = statuses[f"{ring_name}.a"]
    assert durable.lifetime is Lifetime.DURABLE and not durable.stale
    assert durable.kind is Kind.KILLSWITCH and durable.version == 2 and durable.problem is None
    # A name no longer protects anything: the header's lifetime decides.
    assert statuses[f"{ring_name}.b.persist.killswitch"].stale
    assert remove_stale(ring_name) == [f"{ring_name}.b.persist.killswitch"]
    assert [s.name for s in list_segments(ring_name)] == [f"{ring_name}.a"]


def test_a_ring_reports_its_kind_lifetime_and_creator(ring_name):
    segment = create_ring(ring_name, 1024)
    (status,) = list_segments(ring_name)
    assert (status.kind, status.lifetime) == (Kind.RING, Lifetime.RUN)
    assert status.owner == shm.Owner.current() and status.owner.pid == os.getpid()
    assert status.mapped and not status.stale and status.problem is None
    destroy_ring(segment)
