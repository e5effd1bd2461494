"""The outbox: appended in C, read back whole after a crash, full means commit first."""

import uuid

import pytest

from kernel.codec import Codec
from kernel.health import run_owner
from kernel.outbox import Outbox, OutboxFull
from kernel.streams import OutputStream
from ringbuf import list_segments, unlink_segment
from tests.kernel_actors import Number, TestMessage


@pytest.fixture
def system():
    name = f"ob{uuid.uuid4().hex[:8]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


def test_entries_come_back_byte_for_byte_in_order_and_a_reattach_finds_them(system):
    outbox = Outbox(system, "producer", 4096, run_owner(system))
    payloads = [bytes([i]) * (i * 7 % 40) for i in range(30)]
    for i, payload in enumerate(payloads):
        assert outbox.append(i % 3, 100 + i, 5 + i % 2, payload)
    expected = [(i % 3, 100 + i, 5 + i % 2, p) for i, p in enumerate(payloads)]
    assert outbox.entries() == expected
    outbox.close()
    successor = Outbox(system, "producer", 4096, run_owner(system))  # the restarted node
    assert successor.entries() == expected and not successor.empty
    successor.clear()
    assert successor.entries() == [] and successor.empty
    successor.close()


def test_a_full_outbox_writes_nothing_and_takes_entries_again_once_cleared(system):
    outbox = Outbox(system, "producer", 256, run_owner(system))
    appended = 0
    while outbox.append(0, appended + 1, 1, b"x" * 40):
        appended += 1
    assert appended == 256 // (16 + 40)  # 16-byte entry header, payload padded to 8
    assert len(outbox.entries()) == appended
    assert not outbox.append(0, 99, 1, b"x" * 40)  # still full, nothing written
    assert len(outbox.entries()) == appended
    assert outbox.append(0, 99, 1, b"")  # a smaller one fits the rest
    outbox.clear()
    assert outbox.append(0, 99, 1, b"x" * 40)
    assert not outbox.append(0, 100, 1, b"x" * 300)  # larger than the whole outbox
    outbox.close()


def test_a_publish_into_a_full_outbox_commits_first_and_one_too_large_fails_loudly(system):
    codec = Codec.from_union(TestMessage)
    outbox = Outbox(system, "producer", 256, run_owner(system))
    stream = OutputStream("numbers", [], codec, producer="producer")
    stream.outbox = lambda seq, type_id, payload: outbox.append(0, seq, type_id, payload)
    commits = []

    def commit() -> None:
        commits.append(len(outbox.entries()))
        outbox.clear()

    stream.on_outbox_full = commit
    for value in range(20):
        stream.publish(Number(value=value))
    assert stream.seq == 20 and commits and all(kept > 0 for kept in commits)
    assert [e[1] for e in outbox.entries()] == list(range(21 - len(outbox.entries()), 21))
    # A message larger than the whole outbox: even an empty one cannot take it.
    stream.outbox = lambda seq, type_id, payload: outbox.append(0, seq, type_id, payload * 50)
    with pytest.raises(OutboxFull, match="exceeds the outbox"):
        stream.publish(Number(value=1))
    assert stream.seq == 20  # not counted as published
    outbox.close()
