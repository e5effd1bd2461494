"""A run's resources on the segment layer (kernel/system.py `_create_resources` and
`_release_resources`, without starting processes): a clean stop removes the run's
RUN segments and keeps DURABLE state for the next run."""

import uuid

import msgspec
import pytest

from actors.risk.killswitch import KillSwitch
from config.loader import load_config
from kernel.latency import LatencyRecorder
from kernel.state import SnapshotStore
from kernel.system import AlreadyRunning, System
from ringbuf import Kind, Lifetime, list_segments, unlink_segment


@pytest.fixture
def name():
    name = f"sys{uuid.uuid4().hex[:8]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


def test_a_clean_stop_keeps_durable_state_for_the_next_run(name):
    config = msgspec.structs.replace(load_config(), name=name)
    first = System(config)
    first._create_resources()
    rings = [s for s in list_segments(f"{name}.") if s.kind is Kind.RING]
    assert rings and all(s.lifetime is Lifetime.RUN for s in rings)
    with pytest.raises(AlreadyRunning):
        System(config)._create_resources()
    # What the run's actors leave in shared memory.
    store = SnapshotStore(name, "actor.risk", capacity=4096)
    store.save(b"book")
    store.close()
    SnapshotStore(name, "scratch", capacity=4096, durable=False).close()
    LatencyRecorder(name, "node.core", ["hop"]).close()
    switch = KillSwitch.open(name)
    switch.engage("test", "pytest")
    switch.close()
    first._release_resources()
    assert [s.name for s in list_segments(f"{name}.")] == [
        f"{name}.killswitch",
        f"{name}.state.actor.risk",
    ]

    second = System(config)
    second._create_resources()  # nothing of the first run is stale: nothing removed
    store = SnapshotStore(name, "actor.risk", capacity=4096)
    assert store.load() == b"book"
    store.close()
    switch = KillSwitch.open(name)
    assert switch.engaged
    switch.close()
    second._release_resources()
