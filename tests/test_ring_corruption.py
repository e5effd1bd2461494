"""A corrupted ring raises RingCorrupted naming the ring: never hangs, crashes or
redelivers stale records.

A loop in C that holds the GIL cannot be interrupted by a Python signal handler, so
every read of a corrupted ring runs in a forked child: the parent kills it after a
deadline and reports a hang, and a child killed by a signal (a segfault) fails too.
"""

import contextlib
import faulthandler
import itertools
import mmap
import os
import pickle
import re
import select
import signal
import struct
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringbuf import (
    RingCorrupted,
    RingError,
    RingFull,
    RingReader,
    RingWriter,
    create_ring,
    destroy_ring,
    layout,
)
from ringbuf.segment import segment_path

CAPACITY = 4096
HANG_S = 5.0
U64 = struct.Struct("<Q")
DECODERS: tuple[Callable[[memoryview], object] | None, ...] = (bytes,) * 8


# ------------------------------------------------------------------ harness --


def isolated(body: Callable[[], Any], timeout_s: float = HANG_S) -> tuple[str, Any]:
    """Run `body` in a forked child; ('ok', result) or ('raised', (type, message, ring error)).

    Raises AssertionError if the child hangs past `timeout_s`, dies of a signal or
    exits without a report.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(read_fd)
            try:
                outcome: tuple[str, Any] = ("ok", body())
            except RingError as error:
                outcome = ("raised", (type(error).__name__, str(error), True))
            except BaseException as error:
                outcome = ("raised", (type(error).__name__, traceback.format_exc(), False))
            os.write(write_fd, pickle.dumps(outcome))
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(write_fd)
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    reaped = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(0.0, remaining))
            if not ready:
                raise AssertionError(f"hang: the child did not finish within {timeout_s}s")
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        reaped = True
    finally:
        os.close(read_fd)
        if not reaped:  # a hang, or the parent interrupted (e.g. by pytest-timeout)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise AssertionError(f"the child died of signal {os.WTERMSIG(status)}")
    assert os.WEXITSTATUS(status) == 0, f"the child exited with {os.WEXITSTATUS(status)}"
    return pickle.loads(b"".join(chunks))


def assert_corrupted(outcome: tuple[str, Any], name: str) -> str:
    """The child raised RingCorrupted, and the message names the ring."""
    kind, value = outcome
    assert kind == "raised", f"expected RingCorrupted, got {outcome!r}"
    type_name, message, _ = value
    assert type_name == "RingCorrupted", message
    assert message.startswith(f"ring {name!r}: "), message
    return message


def poke(name: str, offset: int, data: bytes) -> None:
    """Overwrite bytes of the live segment through a mapping of its /dev/shm file."""
    with open(segment_path(name), "r+b") as file, mmap.mmap(file.fileno(), 0) as mapping:
        mapping[offset : offset + len(data)] = data


def peek_word(name: str, offset: int) -> int:
    with open(segment_path(name), "rb") as file:
        file.seek(offset)
        return U64.unpack(file.read(8))[0]


def header(length: int, type_id: int, flags: int = 0) -> bytes:
    return U64.pack(length | type_id << 32 | flags << 48)


def data_offset(position: int, capacity: int = CAPACITY) -> int:
    return layout.HEADER_SIZE + (position & (capacity - 1))


# The three ways to read a ring; each returns what it delivered.
def read_poll(reader: RingReader) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    reader.poll(lambda type_id, payload: got.append((type_id, bytes(payload))), 1 << 20)
    return got


def read_poll_decode(reader: RingReader) -> list[object]:
    got: list[object] = []
    reader.poll_decode(DECODERS, got.append, 1 << 20)
    return got


def read_peek(reader: RingReader) -> object:
    return reader.peek()


READS = pytest.mark.parametrize(
    "read", [read_poll, read_poll_decode, read_peek], ids=["poll", "poll_decode", "peek"]
)


@pytest.fixture
def ring(ring_name: str) -> Iterator[tuple[str, RingWriter, RingReader]]:
    segment = create_ring(ring_name, CAPACITY)
    writer = RingWriter(ring_name)
    reader = RingReader(ring_name)
    yield ring_name, writer, reader
    writer.close()
    reader.close()
    destroy_ring(segment)


# ------------------------------------------------------------- exact cases --


def test_harness_reports_a_hang() -> None:
    with pytest.raises(AssertionError, match="hang"):
        isolated(lambda: signal.pause(), timeout_s=0.5)


def test_harness_reports_a_crash() -> None:
    def crash() -> None:
        faulthandler.disable()  # no traceback dump on stderr: the crash is expected
        os.kill(os.getpid(), signal.SIGSEGV)

    with pytest.raises(AssertionError, match="signal 11"):
        isolated(crash)


@READS
def test_padding_at_data_index_zero(ring, read) -> None:
    name, writer, reader = ring
    for i in range(3):
        writer.try_write(1, bytes([i]) * 40)
    # A padding at index 0 with the length a padding there would need: it skips a
    # whole capacity, i.e. past the write cursor, straight back onto itself.
    poke(name, data_offset(0), header(CAPACITY - layout.RECORD_HEADER, layout.PADDING_TYPE))
    message = assert_corrupted(isolated(lambda: read(reader)), name)
    assert "padding record at 0 claims" in message


@READS
def test_padding_at_data_index_zero_any_length(ring, read) -> None:
    name, writer, reader = ring
    writer.try_write(1, b"x" * 40)
    poke(name, data_offset(0), header(16, layout.PADDING_TYPE))
    assert_corrupted(isolated(lambda: read(reader)), name)


@READS
def test_padding_that_skips_past_the_write_cursor(ring, read) -> None:
    name, writer, reader = ring
    # A lap of records read already: the data area holds stale records everywhere.
    for i in range(30):
        assert writer.try_write(1, bytes([i]) * 56)
    assert len(read_poll(reader)) == 30
    position = writer._core.pos  # 30 * 64 = 1920
    writer.try_write(2, b"new" * 10)
    # The last record becomes a well-formed padding to the end of the data area, which
    # lies far past the write cursor: what follows it is stale.
    index = position & (CAPACITY - 1)
    poke(
        name,
        data_offset(position),
        header(CAPACITY - index - layout.RECORD_HEADER, layout.PADDING_TYPE),
    )
    message = assert_corrupted(isolated(lambda: read(reader)), name)
    assert f"padding record at {position} claims" in message


@READS
def test_padding_that_ends_exactly_at_the_write_cursor(ring, read) -> None:
    name, writer, reader = ring
    # The writer always follows a padding with the record that did not fit, so a
    # padding running exactly up to the write cursor is as impossible as one past it.
    for _ in range(3):
        assert writer.try_write(1, b"a" * 1000)
    assert len(read_poll(reader)) == 3
    position = writer._core.pos  # 3 * 1008 = 3024
    writer.try_write(1, b"b" * (CAPACITY - position - layout.RECORD_HEADER))
    assert writer._core.pos == CAPACITY
    poke(
        name,
        data_offset(position),
        header(CAPACITY - position - layout.RECORD_HEADER, layout.PADDING_TYPE),
    )
    assert_corrupted(isolated(lambda: read(reader)), name)


@READS
def test_padding_with_the_wrong_length(ring, read) -> None:
    name, writer, reader = ring
    writer.try_write(1, b"a" * 1000)
    assert len(read_poll(reader)) == 1  # the damaged header is the next to read
    writer.try_write(1, b"b" * 8)
    poke(name, data_offset(1008), header(64, layout.PADDING_TYPE))
    message = assert_corrupted(isolated(lambda: read(reader)), name)
    assert "padding record at 1008 claims 64 bytes" in message


@READS
def test_record_longer_than_what_is_published(ring, read) -> None:
    name, writer, reader = ring
    writer.try_write(1, b"abcd")
    assert len(read_poll(reader)) == 1  # the damaged header is the next to read
    writer.try_write(1, b"efgh")
    poke(name, data_offset(16), struct.pack("<I", 900))
    message = assert_corrupted(isolated(lambda: read(reader)), name)
    assert "record at 16 claims 900 bytes" in message


@READS
def test_write_cursor_behind_the_read_cursor(ring, read) -> None:
    name, writer, reader = ring
    for i in range(4):
        writer.try_write(1, bytes([i]) * 8)
    assert len(read_poll(reader)) == 4  # read cursor now 64
    writer.try_write(1, b"z")
    poke(name, layout.WRITE_CURSOR, U64.pack(32))
    message = assert_corrupted(isolated(lambda: read(reader)), name)
    assert "write cursor 32" in message


@READS
@pytest.mark.parametrize(
    "write", [4, 64 + CAPACITY + 8, 1 << 63], ids=["unaligned", "ahead", "far"]
)
def test_impossible_write_cursor(ring, read, write) -> None:
    name, writer, reader = ring
    for i in range(4):
        writer.try_write(1, bytes([i]) * 8)
    read_poll(reader)
    poke(name, layout.WRITE_CURSOR, U64.pack(write))
    assert_corrupted(isolated(lambda: read(reader)), name)


def test_available_and_depth_raise_on_impossible_cursors(ring) -> None:
    name, writer, reader = ring
    for i in range(4):
        writer.try_write(1, bytes([i]) * 8)
    read_poll(reader)
    poke(name, layout.WRITE_CURSOR, U64.pack(32))
    assert_corrupted(isolated(reader.available), name)
    assert_corrupted(isolated(reader.depth_bytes), name)
    assert_corrupted(isolated(writer.depth_bytes), name)
    poke(name, layout.WRITE_CURSOR, U64.pack(68))
    assert_corrupted(isolated(reader.available), name)
    assert_corrupted(isolated(reader.depth_bytes), name)
    poke(name, layout.WRITE_CURSOR, U64.pack(64))
    assert isolated(reader.available) == ("ok", False)


def test_records_before_the_corruption_are_delivered_once(ring) -> None:
    name, writer, reader = ring
    for i in range(3):
        writer.try_write(1, bytes([i]) * 8)
    writer.try_write(1, b"bad")
    poke(name, data_offset(48), header(CAPACITY - 48 - layout.RECORD_HEADER, layout.PADDING_TYPE))
    got: list[bytes] = []

    def body() -> list[bytes]:
        with contextlib.suppress(RingCorrupted):
            reader.poll(lambda type_id, payload: got.append(bytes(payload)))
        return got

    assert isolated(body) == ("ok", [bytes([i]) * 8 for i in range(3)])
    # The child committed the three records it handled, and not the corrupted one.
    assert peek_word(name, layout.READ_CURSOR) == 48
    assert peek_word(name, layout.CONSUMED) == 3


def test_writer_refuses_a_read_cursor_ahead_of_it(ring) -> None:
    name, writer, _ = ring
    while writer.try_write(1, b"w" * 100):
        pass
    poke(name, layout.READ_CURSOR, U64.pack(writer._core.pos + 64))
    assert_corrupted(isolated(lambda: writer.try_write(1, b"w" * 100)), name)
    assert_corrupted(isolated(lambda: writer.write(1, b"w" * 100, timeout_s=0.1)), name)


def test_writer_refuses_an_unaligned_read_cursor(ring) -> None:
    name, writer, _ = ring
    while writer.try_write(1, b"w" * 100):
        pass
    poke(name, layout.READ_CURSOR, U64.pack(12))
    assert_corrupted(isolated(lambda: writer.try_write(1, b"w" * 100)), name)


def test_attach_refuses_commit_slots_that_match_no_cursor(ring_name: str) -> None:
    segment = create_ring(ring_name, CAPACITY)
    with RingWriter(ring_name) as writer:
        writer.try_write(1, b"x")
    for slot in (layout.COMMIT_SLOT_0, layout.COMMIT_SLOT_1):
        poke(ring_name, slot, U64.pack(4096))
    with pytest.raises(RingCorrupted, match=re.escape(f"ring {ring_name!r}")):
        RingWriter(ring_name)
    destroy_ring(segment)


# ----------------------------------------------------------- property test --

_examples = itertools.count()

SMALL = 1024  # a small ring wraps often, so paddings are everywhere
WORDS = {
    "write": layout.WRITE_CURSOR,
    "read": layout.READ_CURSOR,
    "slot0": layout.COMMIT_SLOT_0,
    "slot0_count": layout.COMMIT_SLOT_0 + 8,
    "slot1": layout.COMMIT_SLOT_1,
    "slot1_count": layout.COMMIT_SLOT_1 + 8,
}

# A header word: moved by a small (aligned or not) amount, or set to anything.
word_values = st.one_of(
    st.tuples(st.just("delta"), st.integers(min_value=-2 * SMALL, max_value=2 * SMALL)),
    st.tuples(st.just("delta"), st.integers(min_value=-256, max_value=256).map(lambda k: k * 8)),
    st.tuples(st.just("set"), st.integers(min_value=0, max_value=2**64 - 1)),
)
lengths = st.one_of(st.integers(0, 2 * SMALL), st.integers(0, 2**32 - 1))
# A record header: a padding that runs exactly to the end of the data area (what a
# real one looks like), a padding or record of any length, or any 8 bytes.
header_values = st.one_of(
    st.tuples(st.just("padding_to_end"), st.just(0)),
    st.tuples(st.just("padding"), lengths),
    st.tuples(st.just("record"), lengths),
    st.tuples(st.just("raw"), st.integers(0, 2**64 - 1)),
)
# Where a record header is overwritten: one the writer wrote (an index into their
# list, so most examples hit a header the reader will look at) or any aligned index.
header_targets = st.one_of(
    st.tuples(st.just("written"), st.integers(0, 63)),
    st.tuples(st.just("index"), st.integers(0, SMALL // 8 - 1)),
)
corruptions = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(sorted(WORDS)), word_values),
        st.tuples(header_targets, header_values),
    ),
    min_size=1,
    max_size=3,
)


def _corrupt(name: str, headers: list[int], target: Any, value: tuple[str, int]) -> None:
    kind, number = value
    if isinstance(target, str):
        offset = WORDS[target]
        word = number if kind == "set" else peek_word(name, offset) + number
        poke(name, offset, U64.pack(word % 2**64))
        return
    how, where = target
    index = (headers[where % len(headers)] if how == "written" else where * 8) % SMALL
    if kind == "padding_to_end":
        raw = header(SMALL - index - layout.RECORD_HEADER, layout.PADDING_TYPE)
    elif kind == "padding":
        raw = header(number, layout.PADDING_TYPE)
    elif kind == "record":
        raw = header(number, 1)
    else:
        raw = U64.pack(number)
    poke(name, layout.HEADER_SIZE + index, raw)


def _read_everything(name: str) -> str:
    """In the child: attach, drain every way until empty or an error, then write."""
    errors = []
    with RingReader(name) as reader:
        for _ in range(SMALL):  # more polls than records can fit
            try:
                reader.peek()
                got = reader.poll_decode(DECODERS, lambda message: None, 7)
                got += reader.poll(lambda type_id, payload: bytes(payload), 5)
            except RingError as error:
                errors.append(type(error).__name__)
                break
            if not got:
                break
        try:
            reader.available()
            reader.depth_bytes()
        except RingError as error:
            errors.append(type(error).__name__)
    with RingWriter(name) as writer:
        for _ in range(SMALL // 16):
            try:
                writer.try_write(1, b"p" * 24)
                writer.write(1, b"q" * 100, timeout_s=0.001)
            except RingFull:
                break
            except RingError as error:
                errors.append(type(error).__name__)
                break
    return ",".join(errors)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=3)),
        min_size=1,
        max_size=24,
    ),
    damage=corruptions,
)
def test_arbitrary_corruption_never_hangs_or_crashes(
    steps: list[tuple[int, int]], damage: list[tuple[Any, tuple[str, int]]]
) -> None:
    """Whatever the damage to cursors, commit slots and record headers, reading and
    writing return or raise a RingError: never a hang, a crash or another error."""
    name = f"test-corrupt-{os.getpid()}-{next(_examples)}"
    segment = create_ring(name, SMALL, full_policy="drop", replace=True)
    try:
        headers = [0]  # every position where the writer put a record header
        with RingWriter(name) as writer, RingReader(name) as reader:
            for i, (size, reads) in enumerate(steps):
                before = writer._core.pos
                if writer.try_write(i % 8, bytes([i % 256]) * size):
                    start = writer._core.pos - layout.record_size(size)
                    headers += [before, start] if start != before else [start]
                reader.poll(lambda type_id, payload: None, reads)
        for target, value in damage:
            _corrupt(name, headers, target, value)

        def body() -> str:
            try:
                return _read_everything(name)
            except RingError as error:  # at attach: impossible cursors, commit slots
                return type(error).__name__

        kind, value = isolated(body)
        assert kind == "ok", value
    finally:
        destroy_ring(segment)
