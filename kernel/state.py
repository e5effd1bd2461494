"""Crash-safe state snapshots in shared memory: what an actor must not lose on kill -9.

A store has two slots. `save` writes the slot not holding the latest snapshot
(payload, length, checksum, generation), then publishes it by storing the new
generation in the header with release semantics; `load` takes the newest slot whose
checksum holds. A process killed in the middle of a save leaves the previous
snapshot intact, so a restarted actor always finds a whole one.

A store is the segment `<system>.state.<owner>` (a Kind.SNAPSHOT segment of
ringbuf.shm). By default it is DURABLE: it outlives the actor's process, a crash of
the supervisor and a clean stop of the run, so the next run starts from it; only
`delete_store` (the operator's reset) removes it. With `durable=False` it has the
lifetime RUN: the run's clean stop removes it, and a run that died leaves it stale.

The header also holds `words` scratch u64 words that the owner reads and writes with
acquire/release semantics, cheaply enough for once per message on the hot path.

Layout after the common segment header (64 bytes):

    64   u64 capacity          (bytes one slot holds)
    72   u64 words             (scratch word count)
    80   u64 latest generation (store-release after a save)
    128  words x u64           scratch words
    then two slots, each 64-byte aligned: generation u64, length u64, checksum u32, payload

The checksum is the low 32 bits of the payload's xxh3-64 digest, flagged by bit 63 of the
length word: nodes save their actors' records at every group commit, on the order path's
core, and xxh3 takes 2 us for 90 KB where crc32 took 25. A slot saved with crc32 (no
flag), by an earlier version, still loads.
"""

import contextlib
import mmap
import struct
import zlib
from dataclasses import dataclass

from xxhash import xxh3_64_intdigest

from kernel import faults
from kernel.health import run_owner
from ringbuf import shm
from ringbuf.shm import SharedWords

VERSION = 1
_CAPACITY_AT = shm.HEADER_BYTES
_WORDS_AT = shm.HEADER_BYTES + 8
_LATEST_AT = shm.HEADER_BYTES + 16
_SCRATCH_AT = shm.HEADER_BYTES + 64
SLOT_HEADER = struct.Struct("<QQI")  # generation, length | _XXH3, checksum
_XXH3 = 1 << 63
_SIZES = struct.Struct("<QQ")  # capacity, words


def _checksum(payload: bytes, kind: int) -> int:
    """A slot's checksum: xxh3 when `kind` is _XXH3, else crc32 (see the module doc)."""
    return xxh3_64_intdigest(payload) & 0xFFFFFFFF if kind else zlib.crc32(payload)


class SnapshotTooLarge(ValueError):
    """A snapshot does not fit the store's slot capacity."""


def state_name(system: str, owner: str) -> str:
    return f"{system}.state.{owner}"


def state_path(system: str, owner: str) -> str:
    return shm.segment_path(state_name(system, owner), "store")


def _align64(n: int) -> int:
    return (n + 63) & ~63


class SnapshotStore:
    """Two-slot snapshot store; create or re-attach by (system, owner).

    Re-attaching with another capacity, word count or durability is refused (a file of
    another size is never resized: the snapshot in it belongs to someone's layout).
    """

    def __init__(
        self,
        system: str,
        owner: str,
        capacity: int = 1 << 20,
        words: int = 0,
        *,
        durable: bool = True,
    ) -> None:
        if capacity < 0 or words < 0:
            raise ValueError(f"capacity and words must be >= 0, not {capacity} and {words}")
        self.path = state_path(system, owner)
        self.owner = owner
        self.capacity = capacity
        self.words = words
        self._slot_size = _align64(SLOT_HEADER.size + capacity)
        self._slots_at = _align64(_SCRATCH_AT + 8 * words)

        def init(mapping: mmap.mmap) -> None:
            _SIZES.pack_into(mapping, _CAPACITY_AT, capacity, words)

        lifetime = shm.Lifetime.DURABLE if durable else shm.Lifetime.RUN
        self._segment, _ = shm.create_or_attach(
            state_name(system, owner),
            shm.Kind.SNAPSHOT,
            VERSION,
            self._slots_at + 2 * self._slot_size - shm.HEADER_BYTES,
            lifetime,
            owner=None if durable else run_owner(system),
            init=init,
        )
        self._mapping = self._segment.mapping
        stored = _SIZES.unpack_from(self._mapping, _CAPACITY_AT)
        if stored != (capacity, words):
            self._segment.close()
            raise ValueError(
                f"{self.path} is a snapshot store of capacity {stored[0]} with {stored[1]} "
                f"words, not capacity {capacity} with {words}"
            )
        self._header = SharedWords(self._mapping)
        # The scratch words get their own view, so the C bounds check keeps an index
        # out of the slots and `i << 3` is the whole offset arithmetic.
        self._scratch_view = memoryview(self._mapping)[_SCRATCH_AT : _SCRATCH_AT + 8 * words]
        self._scratch = SharedWords(self._scratch_view)

    @property
    def lifetime(self) -> shm.Lifetime:
        return self._segment.header.lifetime

    def load_word(self, i: int) -> int:
        """Scratch word `i` (acquire load). IndexError outside [0, words)."""
        return self._scratch.load_acquire(i << 3)

    def scratch_words(self) -> SharedWords:
        """The scratch words themselves (byte offset `8 * i` is word `i`), for C code on
        the hot path that stores into them directly (kernel/inbox.py)."""
        return self._scratch

    def store_word(self, i: int, value: int) -> None:
        """Set scratch word `i` to a u64 (release store). IndexError outside [0, words)."""
        self._scratch.store_release(i << 3, value)

    def _slot_offset(self, generation: int) -> int:
        return self._slots_at + (generation & 1) * self._slot_size

    def save(self, payload: bytes) -> int:
        """Store a snapshot; returns its generation."""
        if len(payload) > self.capacity:
            raise SnapshotTooLarge(
                f"{self.path}: snapshot of {len(payload)} bytes exceeds {self.capacity}"
            )
        generation = self._header.load_acquire(_LATEST_AT) + 1
        offset = self._slot_offset(generation)
        body = offset + SLOT_HEADER.size
        # Two copies, so that fault injection can stop a save with half a slot written.
        half = len(payload) // 2
        view = memoryview(payload)  # slices of it are not copies
        self._mapping[body : body + half] = view[:half]
        if faults.armed:
            faults.hit(self.owner, "mid_save")
        self._mapping[body + half : body + len(payload)] = view[half:]
        SLOT_HEADER.pack_into(
            self._mapping, offset, generation, len(payload) | _XXH3, _checksum(payload, _XXH3)
        )
        self._header.store_release(_LATEST_AT, generation)
        return generation

    def load(self) -> bytes | None:
        """The newest whole snapshot, or None if none was ever saved."""
        latest = self._header.load_acquire(_LATEST_AT)
        for generation in (latest, latest - 1):
            if generation <= 0:
                continue
            offset = self._slot_offset(generation)
            stored, length, checksum = SLOT_HEADER.unpack_from(self._mapping, offset)
            kind = length & _XXH3
            length &= ~_XXH3
            if stored != generation or length > self.capacity:
                continue
            body = offset + SLOT_HEADER.size
            payload = bytes(self._mapping[body : body + length])
            if _checksum(payload, kind) == checksum:
                return payload
        return None

    def close(self) -> None:
        self._scratch.release()
        self._scratch_view.release()
        self._header.release()
        with contextlib.suppress(BufferError):
            self._segment.close()


@dataclass(frozen=True)
class StoreInfo:
    """A snapshot store as `list_stores` finds it (read without attaching)."""

    owner: str
    path: str
    lifetime: shm.Lifetime
    capacity: int
    words: int
    generation: int
    """Snapshots saved so far (0: none)."""
    created_ns: int


def list_stores(system: str) -> list[StoreInfo]:
    """The snapshot stores of `system`, by owner. Files that are not stores of this
    version are left out (`ringbuf.list_segments` reports them with their problem)."""
    prefix = state_name(system, "")
    found = []
    for name in shm.segment_names(prefix):
        try:
            header, raw = shm.read(name, shm.Kind.SNAPSHOT, VERSION, length=_SCRATCH_AT)
        except (shm.ShmError, OSError):
            continue
        capacity, words = _SIZES.unpack_from(raw, _CAPACITY_AT)
        (generation,) = struct.unpack_from("<Q", raw, _LATEST_AT)
        found.append(
            StoreInfo(
                owner=name[len(prefix) :],
                path=shm.segment_path(name),
                lifetime=header.lifetime,
                capacity=capacity,
                words=words,
                generation=generation,
                created_ns=header.created_ns,
            )
        )
    return found


def delete_store(system: str, owner: str) -> bool:
    """Remove a store (the operator resetting an actor's state); False if there was none.

    An actor that has it open keeps writing to the removed file and starts from an
    empty store at its next start: reset stores with the actor stopped.
    """
    return shm.unlink(state_name(system, owner))
