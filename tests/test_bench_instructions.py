"""bench/instructions.py: every stage runs on the recorded e2e messages, and callgrind's
counts are sane and grow with the work done."""

import math
import shutil

import msgspec
import pytest

from actors.messages import AnyMessage
from bench import instructions
from kernel.codec import Codec
from ringbuf import shm

PUBLISH_TICKS = "publish ticks (stamp+encode+write)"


@pytest.fixture(scope="module")
def recording() -> instructions.Recording:
    return instructions.record(40)


def test_the_stages_follow_the_order_path():
    names = list(instructions.STAGES)
    assert names[0] == PUBLISH_TICKS
    assert names[-1] == "handler venue (order)"
    for stream, _, consumer in instructions.PATH:
        assert f"publish {stream} (stamp+encode+write)" in names
        assert f"deliver {stream}->{consumer} (poll+decode+dispatch)" in names


def test_the_recording_has_what_every_stage_measures(recording):
    codec = Codec.from_union(AnyMessage)
    assert {"bars", "tactical", "risk", "execution", "venue"} <= set(recording.inputs)
    for stage in instructions.STAGES.values():
        actor, what = instructions._needs(stage)
        got = [
            d
            for d in recording.inputs[actor]
            if what in (d.stream, codec.types[d.type_id - 1].__name__)
        ]
        assert len(got) >= 40, (stage, len(got))


@pytest.mark.parametrize("stage", [instructions.OVERHEAD, *instructions.STAGES])
def test_every_stage_runs_natively(stage, recording, tmp_path):
    """Outside valgrind the client requests are no-ops: the driver's plan runs as is."""
    path = tmp_path / "inputs.msgpack"
    path.write_bytes(msgspec.msgpack.encode(recording))
    before = set(shm.segment_names("bench-instr-"))
    assert instructions.drive(stage, 20, path) == 20
    assert instructions.drive(stage, 10, path, repeat=2) == 10
    assert set(shm.segment_names("bench-instr-")) <= before  # a driver removes its own


def test_measure_needs_valgrind(monkeypatch):
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="valgrind not found: apt-get install valgrind"):
        instructions.measure(10)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_counts_are_sane_and_follow_the_work():
    once = {r.name: r for r in instructions.count_stages(150, [PUBLISH_TICKS])}
    twice = {r.name: r for r in instructions.count_stages(150, [PUBLISH_TICKS], repeat=2)}
    overhead = once[instructions.OVERHEAD].per_message
    assert overhead == pytest.approx(twice[instructions.OVERHEAD].per_message, rel=0.02)
    single, double = once[PUBLISH_TICKS].per_message, twice[PUBLISH_TICKS].per_message
    assert math.isfinite(single)
    assert 1e3 < single < 1e6
    # Publishing every tick twice is twice the work: a count that missed the measured
    # operations, or caught work around them, could not double.
    assert 1.8 < double / single < 2.2, (single, double)
