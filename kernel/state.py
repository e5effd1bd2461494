"""Crash-safe state snapshots in shared memory: what an actor must not lose on kill -9.

A store has two slots. `save` writes the slot not holding the latest snapshot
(payload, length, crc32, generation), then publishes it by storing the new
generation in the header with release semantics; `load` takes the newest slot whose
checksum holds. A process killed in the middle of a save leaves the previous
snapshot intact, so a restarted actor always finds a whole one.

The file `/dev/shm/gm-<system>.state.<owner>` outlives the actor's process (that is
the point) and is removed with the run's other segments at shutdown.
"""

import contextlib
import os
import struct
import zlib

from ringbuf._core import SharedWords
from ringbuf.segment import PREFIX, SHM_DIR, map_shared_file

MAGIC = 0x474D5354415445  # "GMSTATE"
HEADER = 64  # magic u64, capacity u64, latest generation u64
SLOT_HEADER = struct.Struct("<QQI")  # generation, length, crc32


class SnapshotTooLarge(ValueError):
    """A snapshot does not fit the store's slot capacity."""


def state_path(system: str, owner: str) -> str:
    return os.path.join(SHM_DIR, f"{PREFIX}{system}.state.{owner}")


class SnapshotStore:
    """Two-slot snapshot store; create or re-attach by (system, owner)."""

    def __init__(self, system: str, owner: str, capacity: int = 1 << 20) -> None:
        self.path = state_path(system, owner)
        slot_size = SLOT_HEADER.size + capacity
        size = HEADER + 2 * slot_size
        self._mapping, created = map_shared_file(self.path, size)
        self._words = SharedWords(self._mapping)
        if created:
            struct.pack_into("<QQ", self._mapping, 0, MAGIC, capacity)
        elif struct.unpack_from("<QQ", self._mapping, 0) != (MAGIC, capacity):
            raise ValueError(f"{self.path} is not a snapshot store of capacity {capacity}")
        self.capacity = capacity
        self._slot_size = slot_size

    def _slot_offset(self, generation: int) -> int:
        return HEADER + (generation & 1) * self._slot_size

    def save(self, payload: bytes) -> int:
        """Store a snapshot; returns its generation."""
        if len(payload) > self.capacity:
            raise SnapshotTooLarge(
                f"{self.path}: snapshot of {len(payload)} bytes exceeds {self.capacity}"
            )
        generation = self._words.load_acquire(16) + 1
        offset = self._slot_offset(generation)
        body = offset + SLOT_HEADER.size
        self._mapping[body : body + len(payload)] = payload
        SLOT_HEADER.pack_into(self._mapping, offset, generation, len(payload), zlib.crc32(payload))
        self._words.store_release(16, generation)
        return generation

    def load(self) -> bytes | None:
        """The newest whole snapshot, or None if none was ever saved."""
        latest = self._words.load_acquire(16)
        for generation in (latest, latest - 1):
            if generation <= 0:
                continue
            offset = self._slot_offset(generation)
            stored, length, crc = SLOT_HEADER.unpack_from(self._mapping, offset)
            if stored != generation or length > self.capacity:
                continue
            body = offset + SLOT_HEADER.size
            payload = bytes(self._mapping[body : body + length])
            if zlib.crc32(payload) == crc:
                return payload
        return None

    def close(self) -> None:
        self._words.release()
        with contextlib.suppress(BufferError):
            self._mapping.close()
