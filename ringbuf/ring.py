"""Single-producer/single-consumer ring of variable-length records in shared memory.

Publication protocol (see layout.py for the bytes):
- the producer writes the record header and payload with plain stores, then stores
  the write cursor with release semantics (seq_cst on rings with a doorbell, where
  the park handshake needs a StoreLoad fence);
- the consumer loads the write cursor with acquire semantics and only then reads
  the records below it, so it never sees a partly written record;
- the consumer commits the read cursor after it has handled a batch, so a consumer
  that dies mid-batch gets the batch again (at-least-once; dedupe on `seq`). A
  consumer that must save its own state first polls with `commit=False`, saves,
  then calls `commit()`: until then the batch stays in the ring for whoever
  attaches next, and the producer cannot reuse its space.

A corrupted ring (impossible cursors, a record or padding header that breaks the
bounds the producer keeps) raises RingCorrupted naming the ring; the C core never
loops on it, reads outside the data area, or hands out stale records.

A producer that dies between writing a payload and publishing it leaves bytes past
the write cursor; no consumer reads them and the next producer overwrites them.
"""

import contextlib
import os
from collections.abc import Callable
from typing import Any

from ringbuf import layout
from ringbuf._core import ReaderCore, SharedWords, WriterCore
from ringbuf.doorbell import Doorbell
from ringbuf.errors import (
    DoorbellMissing,
    RingBusy,
    RingCorrupted,
)
from ringbuf.procs import holder_alive, identity_word
from ringbuf.segment import RingInfo, Segment

Payload = bytes | bytearray | memoryview
Handler = Callable[[int, memoryview], object]
Decoder = Callable[[memoryview], object]
MessageHandler = Callable[[Any], object]
Handlers = MessageHandler | tuple[MessageHandler | None, ...]
"""One handler for every message, or a tuple indexed by record type id like the
decoders (an entry of None: that type has no handler)."""


def create_ring(
    name: str,
    capacity: int,
    full_policy: str = "block",
    doorbell: bool = False,
    schema: int = 0,
    replace: bool = False,
) -> Segment:
    """Create a ring segment. The creator owns the name: close it with `destroy_ring`."""
    return Segment.create(name, capacity, full_policy, doorbell, schema, replace)


def destroy_ring(segment: Segment) -> None:
    """Unlink and unmap a ring this process created."""
    segment.unlink()
    # If another object in this process still views the mapping, the name is gone
    # anyway and the memory is returned when that view is collected.
    with contextlib.suppress(BufferError):
        segment.close()


# Ends held by this process, so a second claim from the same process is refused too
# (the shared claim word identifies processes, not objects).
_held_here: set[tuple[int, str, str]] = set()


class _RingEnd:
    """What both ends share: the mapping, the header words, the claim on one end."""

    _claim_offset = 0
    _role = ""

    def __init__(
        self,
        name: str,
        doorbell: Doorbell | None,
        capacity: int | None,
        schema: int | None,
    ) -> None:
        self._segment = Segment.attach(name, capacity=capacity, schema=schema)
        self.info: RingInfo = self._segment.info
        self.name = name
        self.capacity = self.info.capacity
        self.max_payload = self.capacity // 2 - layout.RECORD_HEADER
        self._words = SharedWords(self._segment.mapping)
        self._doorbell = doorbell
        self.closed = False
        try:
            if self.info.doorbell and doorbell is None:
                raise DoorbellMissing(
                    f"ring {name!r} was created with a doorbell: pass the eventfd to the "
                    f"{self._role}"
                )
            self._identity = identity_word(os.getpid())
            self._claim()
        except BaseException:
            self._unmap()
            raise

    def _claim(self) -> None:
        key = (os.getpid(), self.name, self._role)
        if key in _held_here:
            raise RingBusy(f"ring {self.name!r}: this process already holds the {self._role}")
        words = self._words
        while True:
            holder = words.load_seq_cst(self._claim_offset)
            if holder == self._identity:
                break
            if holder and holder_alive(holder):
                raise RingBusy(
                    f"ring {self.name!r}: the {self._role} is process {holder & 0xFFFFFFFF}, "
                    "still alive"
                )
            if words.compare_exchange(self._claim_offset, holder, self._identity):
                break
        _held_here.add(key)

    def _cursors(self) -> tuple[int, int]:
        write = self._words.load_acquire(layout.WRITE_CURSOR)
        read = self._words.load_acquire(layout.READ_CURSOR)
        if read % layout.ALIGN or write % layout.ALIGN or not 0 <= write - read <= self.capacity:
            raise RingCorrupted(
                f"ring {self.name!r}: impossible cursors write={write} read={read} "
                f"capacity={self.capacity}"
            )
        return write, read

    def _word(self, offset: int) -> int:
        return self._words.load_acquire(offset)

    def depth_bytes(self) -> int:
        """Bytes published and not yet committed by the consumer."""
        write, read = self._cursors()
        return write - read

    @property
    def dropped(self) -> int:
        """Records the producer dropped because the ring was full (drop policy)."""
        return self._word(layout.DROPPED)

    @property
    def consumed(self) -> int:
        """Records the consumer has committed."""
        return self._word(layout.CONSUMED)

    def _release_core(self) -> None:
        """Drop the hot-path core's hold on the mapping (subclasses own one)."""

    def _unmap(self) -> None:
        self._release_core()
        self._words.release()
        self._segment.close()

    def close(self) -> None:
        """Give up this end (another process may claim it) and unmap."""
        if self.closed:
            return
        self.closed = True
        self._words.compare_exchange(self._claim_offset, self._identity, 0)
        _held_here.discard((os.getpid(), self.name, self._role))
        self._unmap()

    def __enter__(self) -> "_RingEnd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RingWriter(_RingEnd):
    """The producing end. One per ring; a new one takes over from a dead one."""

    _claim_offset = layout.PRODUCER_PID
    _role = "producer"

    def __init__(
        self,
        name: str,
        doorbell: Doorbell | None = None,
        capacity: int | None = None,
        schema: int | None = None,
    ) -> None:
        super().__init__(name, doorbell, capacity, schema)
        try:
            write, _ = self._cursors()
            count, next_slot = self._recover_count(write)
            self._core = WriterCore(
                self._segment.mapping,
                self.capacity,
                write,
                count,
                next_slot,
                self._word(layout.DROPPED),
                doorbell.fd if doorbell is not None and self.info.doorbell else -1,
                self.info.full_policy == "block",
                name=name,
            )
        except BaseException:
            super().close()
            raise
        # Bind the C methods over the documented Python ones: saves a frame per record.
        self.try_write = self._core.try_write  # type: ignore[method-assign]
        self.write = self._core.write  # type: ignore[method-assign]
        self.publish = self._core.publish  # type: ignore[method-assign]

    def _recover_count(self, write: int) -> tuple[int, int]:
        """(records published so far, the commit slot the next publish writes)."""
        committed = layout.committed_count(self._words, write)
        if committed is None:
            raise RingCorrupted(f"ring {self.name!r}: no commit slot matches write cursor {write}")
        count, slot = committed
        return count, 1 - slot

    def _release_core(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            core.release()

    @property
    def published(self) -> int:
        """Records written on this ring since it was created, across producers.

        Includes records written with publish=False and not yet published.
        """
        return self._core.count

    @property
    def consumer_parked(self) -> bool:
        """True while the consumer sleeps on its doorbell."""
        return bool(self._word(layout.SLEEP_EPOCH) & 1)

    @property
    def pending(self) -> bool:
        """True when records were written with publish=False and not yet published."""
        return self._core.pos != self._core.published

    def try_write(self, type_id: int, payload: Payload, publish: bool = True) -> bool:
        """Append one record; False when there is no room now. Never blocks.

        With publish=False the record stays invisible until `publish()`, which
        lets a producer publish a batch with one cursor store.
        """
        return self._core.try_write(type_id, payload, publish)

    def publish(self) -> None:
        """Make every record written so far visible to the consumer, then wake it."""
        self._core.publish()

    def write(
        self,
        type_id: int,
        payload: Payload,
        publish: bool = True,
        timeout_s: float | None = None,
    ) -> bool:
        """Append (and publish) under the ring's full policy.

        `drop`: returns False and counts the drop when the ring is full.
        `block`: waits for the consumer (spin, yield, then sleeps of 20 us doubling
        to 1 ms with the GIL released); raises RingFull if `timeout_s` passes first.
        """
        return self._core.write(type_id, payload, publish, timeout_s)


class RingReader(_RingEnd):
    """The consuming end. Reads in batches and commits after each batch is handled,
    or, with `commit=False`, when the caller calls `commit()`.

    Two positions: the handled position (`handled_pos`, the next record to hand
    out) and the committed read cursor in shared memory (`committed_pos`). They
    differ only while `pending` records are handled and not yet committed. Polls,
    `peek` and `available` work from the handled position; a reader attached
    later starts from the committed one. `close()` does not commit: pending records
    go to the next reader.
    """

    _claim_offset = layout.CONSUMER_PID
    _role = "consumer"

    def __init__(
        self,
        name: str,
        doorbell: Doorbell | None = None,
        capacity: int | None = None,
        schema: int | None = None,
    ) -> None:
        super().__init__(name, doorbell, capacity, schema)
        try:
            _, read = self._cursors()
            self._core = ReaderCore(
                self._segment.mapping, self.capacity, read, self._word(layout.CONSUMED), name=name
            )
        except BaseException:
            super().close()
            raise
        epoch = self._word(layout.SLEEP_EPOCH)
        self._epoch = epoch + (epoch & 1)
        self._words.store_seq_cst(layout.SLEEP_EPOCH, self._epoch)
        # Bind the C methods over the documented Python ones: saves a frame per call.
        self.poll = self._core.poll  # type: ignore[method-assign]
        self.poll_decode = self._core.poll_decode  # type: ignore[method-assign]
        self.commit = self._core.commit  # type: ignore[method-assign]
        self.available = self._core.available  # type: ignore[method-assign]

    def _release_core(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            core.release()

    @property
    def doorbell(self) -> Doorbell | None:
        return self._doorbell

    @property
    def core(self) -> ReaderCore:
        """The C consumer core (for wait strategies that spin in C)."""
        return self._core

    @property
    def handled_pos(self) -> int:
        """Byte position of the next record to hand out: every record before it is handled."""
        return self._core.pos

    @property
    def committed_pos(self) -> int:
        """The read cursor as this reader last committed it."""
        return self._core.committed

    @property
    def pending(self) -> int:
        """Records handled with `commit=False` and not yet committed."""
        return self._core.pending

    def poll(
        self, handler: Handler, limit: int = 256, spin_ns: int = 0, commit: bool = True
    ) -> int:
        """Hand up to `limit` records to `handler(type_id, payload)`; returns how many.

        With nothing to read, busy-poll in C for up to `spin_ns` first: a consumer
        that owns a core handles a record the moment it lands.
        The payload is a zero-copy view that is released when the handler returns:
        decode or copy it inside the call. If the handler raises, the records
        before the failing one count as handled and the error propagates; the
        failing record is the next one handed out.

        With `commit` (the default) everything handled so far is committed on
        return, error or not. With `commit=False` nothing is: the next poll goes
        on after the handled records, but they stay in the ring, and a reader that
        attaches before `commit()` gets them again.
        """
        return self._core.poll(handler, limit, spin_ns, commit)

    def poll_decode(
        self,
        decoders: tuple[Decoder | None, ...],
        handlers: Handlers,
        limit: int = 256,
        spin_ns: int = 0,
        commit: bool = True,
    ) -> int:
        """Like `poll`, but `decoders[type_id](payload)` builds each message in C and
        the handler receives it: one Python frame less per record.

        `handlers` is one callable for every message, or a tuple indexed by type id
        like `decoders`, so dispatch by type happens in C. A type id without a
        decoder, or (with a tuple) without a handler, raises UnknownRecordType and
        stays the next record; a decode or handler error carries a note naming the
        record's type, size and position.
        """
        return self._core.poll_decode(decoders, handlers, limit, spin_ns, commit)

    def commit(self) -> int:
        """Commit every record handled so far; returns how many were newly committed.

        Stores the consumed count, then the read cursor with release semantics:
        from then on the producer may reuse their space and a reader attached
        later starts after them.
        """
        return self._core.commit()

    def available(self) -> bool:
        """True when records past the handled position are published.

        Raises RingCorrupted when the write cursor is impossible.
        """
        return self._core.available()

    def peek(self) -> tuple[int, bytes] | None:
        """A copy of the next unhandled record (e.g. to log the one a handler choked on)."""
        return self._core.peek()

    def prepare_park(self) -> bool:
        """Announce that this consumer is about to sleep on its doorbell.

        Returns False (and stays awake) when records arrived meanwhile. The seq_cst
        store of the epoch followed by the load of the write cursor pairs with the
        producer's seq_cst cursor store followed by its epoch load: at least one of
        the two sees the other, so a wake-up is never lost.
        """
        if self._doorbell is None:
            raise DoorbellMissing(f"ring {self.name!r} has no doorbell to park on")
        self._epoch += 1
        self._words.store_seq_cst(layout.SLEEP_EPOCH, self._epoch)
        # Compare with the handled position: records handled and not yet committed
        # are no reason to stay awake.
        if self._words.load_seq_cst(layout.WRITE_CURSOR) != self._core.pos:
            self.finish_park()
            return False
        return True

    def finish_park(self) -> None:
        """Mark this consumer awake again after `prepare_park`."""
        if self._epoch & 1:
            self._epoch += 1
            self._words.store_release(layout.SLEEP_EPOCH, self._epoch)
