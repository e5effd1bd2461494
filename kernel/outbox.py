"""The outbox: what a producer published since its last commit, kept for its successor.

A publish appends the encoded message to the actor's outbox before it writes the first
ring. After a crash the restarted node sends every outbox entry again to every ring of
its stream, exactly as first encoded, so that a consumer whose ring missed it (a fan-out
publish cut between two rings) gets the original, and one that had it drops it by `seq`.
While the restarted actor replays the inputs its predecessor had handled since the
commit, its publishes under those `seq`s are suppressed: the world already has their
original version, whatever the replay computes (kernel/streams.py, points 4 and 5).

The node clears the outbox once the actor's record is saved. Layout after the common
header: a u64 byte length (written last, release), then from 64 bytes further records
`[u64 seq][u16 stream][u16 type id][u32 length][payload]`, each padded to 8 bytes
(written by ringbuf._core.LogAppender).
"""

import struct
from collections.abc import Callable

from ringbuf import Lifetime, shm
from ringbuf._core import LogAppender

VERSION = 1
_LENGTH_AT = shm.HEADER_BYTES
_DATA_AT = shm.HEADER_BYTES + 64
ENTRY = struct.Struct("<QHHI")


class OutboxFull(RuntimeError):
    """More was published since the last commit than the outbox holds."""


def outbox_name(system: str, actor: str) -> str:
    return f"{system}.outbox.{actor}"


def outbox_payload(capacity: int) -> int:
    """The segment payload size of an outbox holding `capacity` bytes of messages."""
    return _DATA_AT - shm.HEADER_BYTES + capacity


class Outbox:
    """One actor's outbox (a RUN segment: the rings it refills live for the run only)."""

    def __init__(self, system: str, actor: str, capacity: int, owner: shm.Owner) -> None:
        self.capacity = capacity
        self._segment, _ = shm.create_or_attach(
            outbox_name(system, actor),
            shm.Kind.OUTBOX,
            VERSION,
            outbox_payload(capacity),
            Lifetime.RUN,
            owner=owner,
        )
        self._mapping = self._segment.mapping
        self._view = memoryview(self._mapping)[_LENGTH_AT : _DATA_AT + capacity]
        self._log = LogAppender(self._view)
        self.append: Callable[[int, int, int, bytes], bool] = self._log.append
        """append(stream index, seq, type id, payload): keep one published message, in C
        (the length is stored after the record, so a crash mid-append leaves the earlier
        entries whole). False, with nothing written, when it does not fit: commit, then
        try again."""

    @property
    def empty(self) -> bool:
        return self._log.length == 0

    def entries(self) -> list[tuple[int, int, int, bytes]]:
        """(stream index, seq, type id, payload) of every entry, in publish order."""
        found = []
        at = _DATA_AT
        end = _DATA_AT + self._log.length
        while at < end:
            seq, stream, type_id, length = ENTRY.unpack_from(self._mapping, at)
            body = at + ENTRY.size
            found.append((stream, seq, type_id, bytes(self._mapping[body : body + length])))
            at = (body + length + 7) & ~7
        return found

    def clear(self) -> None:
        self._log.clear()

    def close(self) -> None:
        self._log.release()
        self._view.release()
        self._segment.close()
