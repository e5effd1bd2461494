"""In-process behaviour of one ring: framing, wrap, batching, policies, errors."""

import os
import signal
import struct
import subprocess
import sys
import zlib
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringbuf import (
    BackoffWait,
    DoorbellMissing,
    RecordTooLarge,
    RingBusy,
    RingCorrupted,
    RingExists,
    RingFull,
    RingNotFound,
    RingReader,
    RingSchemaMismatch,
    RingSizeMismatch,
    RingVersionMismatch,
    RingWriter,
    SpinWait,
    UnknownRecordType,
    create_ring,
    destroy_ring,
    inspect_ring,
    layout,
)

DECODERS = (None, bytes, bytes)


def collect(reader: RingReader, limit: int = 1 << 30) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    reader.poll(lambda type_id, payload: out.append((type_id, bytes(payload))), limit)
    return out


def collect_decoded(reader: RingReader, limit: int = 1 << 30, commit: bool = True) -> list[object]:
    out: list[object] = []
    reader.poll_decode(DECODERS, out.append, limit, 0, commit)
    return out


@pytest.fixture
def ring(ring_name):
    segment = create_ring(ring_name, 4096)
    writer = RingWriter(ring_name)
    reader = RingReader(ring_name)
    yield writer, reader
    writer.close()
    reader.close()
    destroy_ring(segment)


def test_records_round_trip_in_order(ring):
    writer, reader = ring
    for i in range(10):
        assert writer.try_write(i, bytes([i]) * i)
    assert collect(reader) == [(i, bytes([i]) * i) for i in range(10)]
    assert collect(reader) == []
    assert reader.consumed == 10


def test_unpublished_records_are_invisible_until_publish(ring):
    writer, reader = ring
    for i in range(5):
        writer.try_write(1, b"x" * i, publish=False)
    assert not reader.available()
    assert collect(reader) == []
    writer.publish()
    assert [len(p) for _, p in collect(reader)] == [0, 1, 2, 3, 4]


def test_wrap_marker_skips_the_tail(ring):
    writer, reader = ring
    # 1000-byte payloads occupy 1008 bytes: the fourth does not fit before the end.
    for round_ in range(20):
        for i in range(3):
            assert writer.try_write(round_, bytes([i]) * 1000)
        assert collect(reader) == [(round_, bytes([i]) * 1000) for i in range(3)]
    assert reader.consumed == 60


def test_full_ring_refuses_then_accepts_after_commit(ring):
    writer, reader = ring
    written = 0
    while writer.try_write(1, b"y" * 100):
        written += 1
    assert written == 4096 // 112
    assert len(collect(reader, limit=3)) == 3
    assert writer.try_write(1, b"y" * 100)


def test_limit_bounds_a_batch(ring):
    writer, reader = ring
    for i in range(10):
        writer.try_write(1, bytes([i]))
    assert len(collect(reader, limit=4)) == 4
    assert [p for _, p in collect(reader)] == [bytes([i]) for i in range(4, 10)]


def test_handler_error_commits_the_records_before_it(ring):
    writer, reader = ring
    for i in range(5):
        writer.try_write(1, bytes([i]))
    seen = []

    def handler(type_id, payload):
        if payload[0] == 3 and not seen.count(3):
            seen.append(3)
            raise RuntimeError("boom")
        seen.append(payload[0])

    with pytest.raises(RuntimeError, match="boom"):
        reader.poll(handler)
    assert seen == [0, 1, 2, 3]
    assert reader.consumed == 3
    reader.poll(handler)
    assert seen == [0, 1, 2, 3, 3, 4]


def test_payload_view_is_released_after_the_handler(ring):
    writer, reader = ring
    writer.try_write(1, b"abc")
    kept = []
    reader.poll(lambda type_id, payload: kept.append(payload))
    with pytest.raises(ValueError, match="released"):
        bytes(kept[0])


def test_memoryview_and_bytearray_payloads(ring):
    writer, reader = ring
    writer.try_write(2, bytearray(b"abc"))
    writer.try_write(3, memoryview(b"xyzw")[1:])
    assert collect(reader) == [(2, b"abc"), (3, b"yzw")]


def test_record_larger_than_ring_is_refused(ring):
    writer, _ = ring
    with pytest.raises(RecordTooLarge, match="largest payload"):
        writer.try_write(1, b"z" * 4096)
    assert writer.try_write(1, b"z" * writer.max_payload)


def test_type_id_outside_range(ring):
    writer, _ = ring
    with pytest.raises(ValueError, match="type id"):
        writer.try_write(layout.PADDING_TYPE, b"")
    with pytest.raises(ValueError, match="type id"):
        writer.try_write(-1, b"")


def test_drop_policy_counts_drops(ring_name):
    segment = create_ring(ring_name, 1024, full_policy="drop")
    with RingWriter(ring_name) as writer, RingReader(ring_name) as reader:
        results = [writer.write(1, b"d" * 100) for _ in range(20)]
        assert results.count(False) == 20 - 1024 // 112
        assert writer.dropped == reader.dropped == 20 - 1024 // 112
        assert len(collect(reader)) == 1024 // 112
    destroy_ring(segment)


def test_block_policy_times_out_with_ring_full(ring):
    writer, _ = ring
    while writer.try_write(1, b"b" * 100):
        pass
    with pytest.raises(RingFull):
        writer.write(1, b"b" * 100, timeout_s=0.05)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(st.integers(min_value=0, max_value=500), max_size=12),
            st.integers(min_value=0, max_value=12),
            st.booleans(),
        ),
        min_size=1,
        max_size=120,
    )
)
def test_random_sizes_and_interleavings_round_trip(steps):
    name = f"hyp-{os.getpid()}-{zlib.crc32(repr(steps).encode())}"
    segment = create_ring(name, 1024, replace=True)
    try:
        with RingWriter(name) as writer, RingReader(name) as reader:
            expected: deque[tuple[int, bytes]] = deque()
            counter = 0
            for sizes, reads, publish_each in steps:
                for size in sizes:
                    counter += 1
                    payload = struct.pack("<I", counter) * (size // 4) + b"\x5a" * (size % 4)
                    if writer.try_write(counter % 50, payload, publish=publish_each):
                        expected.append((counter % 50, payload))
                writer.publish()
                got = collect(reader, limit=reads)
                assert got == [expected.popleft() for _ in range(len(got))]
            assert collect(reader) == list(expected)
            assert reader.depth_bytes() == 0
    finally:
        destroy_ring(segment)


def test_wrong_name_is_ring_not_found(ring_name):
    with pytest.raises(RingNotFound):
        RingReader(ring_name + "-missing")
    with pytest.raises(ValueError, match="invalid ring name"):
        RingReader("../etc/passwd")


def test_create_twice_is_ring_exists(ring_name):
    segment = create_ring(ring_name, 1024)
    with pytest.raises(RingExists):
        create_ring(ring_name, 1024)
    destroy_ring(segment)


@pytest.mark.parametrize("capacity", [0, 1000, 3000, 512, 1 << 40])
def test_capacity_must_be_a_power_of_two(ring_name, capacity):
    with pytest.raises(ValueError, match="power of two"):
        create_ring(ring_name, capacity)


def test_wrong_capacity_is_refused(ring_name):
    segment = create_ring(ring_name, 2048)
    with pytest.raises(RingSizeMismatch):
        RingReader(ring_name, capacity=4096)
    destroy_ring(segment)


def test_schema_mismatch_is_refused(ring_name):
    segment = create_ring(ring_name, 1024, schema=0xABC)
    with pytest.raises(RingSchemaMismatch):
        RingReader(ring_name, schema=0xABD)
    RingReader(ring_name, schema=0xABC).close()
    destroy_ring(segment)


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as segment:
        segment.seek(offset)
        segment.write(data)


def _rewrite_static(path: str, **changes: int) -> None:
    with open(path, "rb") as segment:
        fields, _ = layout.unpack_static(segment.read(layout.LINE))
    fields.update(changes)
    _patch(path, 0, layout.pack_static(fields))


def test_version_mismatch(ring_name):
    segment = create_ring(ring_name, 1024)
    _rewrite_static(segment.path, version=layout.LAYOUT_VERSION + 1)
    with pytest.raises(RingVersionMismatch):
        RingReader(ring_name)
    destroy_ring(segment)


def test_bad_magic_and_checksum_are_corruption(ring_name):
    segment = create_ring(ring_name, 1024)
    _patch(segment.path, 20, b"\xff")  # inside the static line: checksum no longer matches
    with pytest.raises(RingCorrupted, match="checksum"):
        RingReader(ring_name)
    _patch(segment.path, 0, b"\0" * 8)
    with pytest.raises(RingCorrupted, match="magic"):
        RingReader(ring_name)
    destroy_ring(segment)


def test_size_that_disagrees_with_header(ring_name):
    segment = create_ring(ring_name, 2048)
    os.truncate(segment.path, layout.HEADER_SIZE + 1024)
    with pytest.raises(RingSizeMismatch):
        RingReader(ring_name)
    os.truncate(segment.path, 100)
    with pytest.raises(RingCorrupted, match="smaller"):
        RingReader(ring_name)
    destroy_ring(segment)


def test_impossible_cursors_are_corruption(ring_name):
    segment = create_ring(ring_name, 1024)
    _patch(segment.path, layout.READ_CURSOR, struct.pack("<Q", 64))
    with pytest.raises(RingCorrupted, match="cursors"):
        RingReader(ring_name)
    destroy_ring(segment)


def test_corrupted_record_length_raises_instead_of_hanging(ring_name):
    segment = create_ring(ring_name, 1024)
    with RingWriter(ring_name) as writer, RingReader(ring_name) as reader:
        writer.try_write(1, b"abcd")
        writer.try_write(1, b"efgh")
        _patch(segment.path, layout.HEADER_SIZE + 16, struct.pack("<I", 900))
        with pytest.raises(RingCorrupted, match="claims 900 bytes"):
            collect(reader)
        assert reader.consumed == 1
    destroy_ring(segment)


def test_doorbell_ring_needs_the_doorbell(ring_name):
    segment = create_ring(ring_name, 1024, doorbell=True)
    with pytest.raises(DoorbellMissing):
        RingWriter(ring_name)
    with pytest.raises(DoorbellMissing):
        RingReader(ring_name)
    destroy_ring(segment)


def test_second_end_in_the_same_process_is_busy(ring_name):
    segment = create_ring(ring_name, 1024)
    with RingWriter(ring_name):
        with pytest.raises(RingBusy, match="producer"):
            RingWriter(ring_name)
        with RingReader(ring_name), pytest.raises(RingBusy, match="consumer"):
            RingReader(ring_name)
    RingWriter(ring_name).close()  # released on close: claimable again
    destroy_ring(segment)


def test_destroy_unlinks_the_segment(ring_name):
    segment = create_ring(ring_name, 1024)
    assert os.path.exists(segment.path)
    destroy_ring(segment)
    assert not os.path.exists(segment.path)


def test_inspect_reads_counters_without_claiming(ring_name):
    segment = create_ring(ring_name, 1024, full_policy="drop")
    with RingWriter(ring_name) as writer, RingReader(ring_name) as reader:
        for _ in range(12):
            writer.write(1, b"x" * 100)
        collect(reader, limit=5)
        stats = inspect_ring(ring_name)
        assert (stats.published, stats.consumed, stats.dropped) == (9, 5, 3)
        assert stats.depth_bytes == 4 * 112
        assert stats.producer_attached and stats.consumer_attached
    stats = inspect_ring(ring_name)
    assert not stats.producer_attached and not stats.consumer_attached
    destroy_ring(segment)


# ------------------------------------------------ commit later, dispatch in C --


def test_uncommitted_poll_then_commit(ring):
    writer, reader = ring
    for i in range(5):
        writer.try_write(1, bytes([i]))
    got: list[bytes] = []
    assert reader.poll(lambda type_id, payload: got.append(bytes(payload)), commit=False) == 5
    assert got == [bytes([i]) for i in range(5)]
    # Handled: the reader goes on after them, but nothing is in shared memory yet.
    assert (reader.pending, reader.consumed, reader.committed_pos) == (5, 0, 0)
    assert reader.handled_pos == 5 * 16 and reader.depth_bytes() == 5 * 16
    assert not reader.available() and reader.peek() is None
    assert collect_decoded(reader, commit=False) == []
    assert reader.commit() == 5
    assert (reader.pending, reader.consumed, reader.committed_pos) == (0, 5, 5 * 16)
    assert reader.depth_bytes() == 0
    assert reader.commit() == 0


def test_uncommitted_records_keep_their_space(ring):
    writer, reader = ring
    while writer.try_write(1, b"y" * 100):
        pass
    assert len(collect_decoded(reader, commit=False)) == 4096 // 112
    assert not writer.try_write(1, b"y" * 100)  # the producer may not reuse it yet
    reader.commit()
    assert writer.try_write(1, b"y" * 100)


def test_commit_true_commits_earlier_uncommitted_batches(ring):
    writer, reader = ring
    for i in range(4):
        writer.try_write(1, bytes([i]))
    assert len(collect_decoded(reader, limit=2, commit=False)) == 2
    assert reader.consumed == 0
    assert reader.poll(lambda type_id, payload: None, 1) == 1  # commit=True
    assert (reader.consumed, reader.pending) == (3, 0)
    assert len(collect_decoded(reader, commit=False)) == 1
    assert reader.poll(lambda type_id, payload: None) == 0  # nothing new: still commits
    assert (reader.consumed, reader.pending, reader.depth_bytes()) == (4, 0, 0)


def test_reattached_reader_before_commit_gets_the_records_again(ring_name):
    segment = create_ring(ring_name, 4096)
    with RingWriter(ring_name) as writer:
        for i in range(6):
            writer.try_write(1, bytes([i]) * 3)
        with RingReader(ring_name) as reader:
            assert len(collect_decoded(reader, limit=2)) == 2  # committed
            assert len(collect_decoded(reader, commit=False)) == 4
        with RingReader(ring_name) as reader:
            assert reader.consumed == 2
            assert collect(reader) == [(1, bytes([i]) * 3) for i in range(2, 6)]
    destroy_ring(segment)


def test_handler_error_without_commit_leaves_the_failing_record_next(ring):
    writer, reader = ring
    for i in range(5):
        writer.try_write(1, bytes([i]))
    seen: list[int] = []

    def handler(message: bytes) -> None:
        if message[0] == 2 and 2 not in seen:
            seen.append(2)
            raise RuntimeError("boom")
        seen.append(message[0])

    with pytest.raises(RuntimeError, match="boom"):
        reader.poll_decode(DECODERS, handler, commit=False)
    assert seen == [0, 1, 2]
    assert (reader.pending, reader.consumed) == (2, 0)
    assert reader.peek() == (1, b"\x02")
    assert reader.commit() == 2
    assert reader.poll_decode(DECODERS, handler, commit=False) == 3
    assert seen == [0, 1, 2, 2, 3, 4]
    assert (reader.pending, reader.consumed) == (3, 2)


def test_tuple_of_handlers_dispatches_by_type_id(ring):
    writer, reader = ring
    for type_id, payload in [(1, b"a"), (2, b"bb"), (1, b"c"), (3, b"dd")]:
        writer.try_write(type_id, payload)
    ones: list[object] = []
    others: list[object] = []
    decoders = (None, bytes, lambda view: bytes(view).decode(), bytes)
    handlers = (None, ones.append, others.append, others.append)
    assert reader.poll_decode(decoders, handlers) == 4
    assert ones == [b"a", b"c"]
    assert others == ["bb", b"dd"]


@pytest.mark.parametrize("handlers_for", ["short", "none_entry"])
def test_type_without_a_handler_in_the_tuple_is_unknown(ring, handlers_for):
    writer, reader = ring
    writer.try_write(1, b"a")
    writer.try_write(2, b"b")
    got: list[object] = []
    handlers = (None, got.append) if handlers_for == "short" else (None, got.append, None)
    with pytest.raises(UnknownRecordType, match="record type 2 at position 16 has no handler"):
        reader.poll_decode(DECODERS, handlers)
    assert got == [b"a"] and reader.consumed == 1
    assert reader.peek() == (2, b"b")  # not decoded, not handled: still next


def test_poll_arguments_by_keyword_and_position(ring):
    writer, reader = ring
    for i in range(6):
        writer.try_write(1, bytes([i]))
    got: list[object] = []
    assert reader.poll_decode(DECODERS, got.append, 1, 0) == 1  # today's positional form
    assert reader.poll_decode(DECODERS, handlers=got.append, limit=1, commit=False) == 1
    assert reader.poll(lambda t, p: got.append(bytes(p)), 1, 0, False) == 1
    assert reader.poll(handler=lambda t, p: got.append(bytes(p)), limit=1, spin_ns=0) == 1
    assert reader.core.poll(lambda t, p: got.append(bytes(p)), commit=0, limit=2) == 2
    assert got == [bytes([i]) for i in range(6)]
    assert (reader.consumed, reader.pending) == (4, 2)
    with pytest.raises(TypeError, match="poll_decode"):
        reader.poll_decode(DECODERS, got.append, limt=3)
    with pytest.raises(TypeError, match="poll_decode"):
        reader.poll_decode([bytes], got.append)
    with pytest.raises(TypeError, match="poll"):
        reader.poll(got.append, 1, 0, True, 5)


def test_a_handler_cannot_poll_commit_or_release_its_own_ring(ring):
    writer, reader = ring
    writer.try_write(1, b"a")
    writer.try_write(1, b"b")
    errors: list[Exception] = []

    def handler(message: bytes) -> None:
        for call in (lambda: reader.poll(print), reader.commit, reader.core.release):
            try:
                call()
            except (RuntimeError, BufferError) as error:
                errors.append(error)

    assert reader.poll_decode(DECODERS, handler) == 2
    assert [type(error) for error in errors] == [RuntimeError, RuntimeError, BufferError] * 2
    assert f"ring {reader.name!r}" in str(errors[0])
    assert reader.consumed == 2


def test_core_errors_name_the_ring(ring):
    writer, reader = ring
    writer.try_write(9, b"x")
    with pytest.raises(UnknownRecordType, match=f"^ring {reader.name!r}: record type 9"):
        reader.poll_decode(DECODERS, print)
    with pytest.raises(RecordTooLarge, match=f"^ring {writer.name!r}: record of 4096 bytes"):
        writer.try_write(1, b"z" * 4096)


CONSUMER = """
import sys, time
from ringbuf import RingReader

reader = RingReader(sys.argv[1])
first = reader.poll(lambda type_id, payload: None, 2, 0, False)
reader.commit()  # the first two are committed, the rest only handled
rest = reader.poll(lambda type_id, payload: None, 1 << 20, 0, False)
print(first, rest, reader.pending, flush=True)
time.sleep(120)
"""


def test_consumer_killed_before_commit_leaves_its_batch_to_the_next(ring_name):
    segment = create_ring(ring_name, 4096)
    with RingWriter(ring_name) as writer:
        for i in range(10):
            writer.try_write(1, bytes([i]) * 5)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, ring_name], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["2", "8", "8"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with RingReader(ring_name) as reader:  # takes over from the dead consumer
        assert reader.consumed == 2
        assert collect(reader) == [(1, bytes([i]) * 5) for i in range(2, 10)]
    destroy_ring(segment)


def test_waiting_ignores_handled_but_uncommitted_records(ring):
    writer, reader = ring
    writer.try_write(1, b"a")
    assert collect_decoded(reader, commit=False) == [b"a"]
    assert not SpinWait().wait([reader], timeout_s=0.01)
    assert not BackoffWait(spin_s=1e-4).wait([reader], timeout_s=0.01)
    writer.try_write(1, b"b")
    assert SpinWait().wait([reader], timeout_s=1)
