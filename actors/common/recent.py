"""Bounded memories of what was seen, cheap to save with an actor's durable state.

A durable actor's state is encoded and checksummed at every commit (every few tens of
milliseconds while messages flow). Re-encoding the same thousand ids or retired orders
each time cost the risk and execution actors 45-80 us per commit on the order path's
core, and pushed the gate's own data out of the CPU caches. `SavedTail` keeps the newest
items of an append-only sequence as msgpack chunks, each encoded once, when it fills, so
a save copies bytes and encodes only the chunk still filling.
"""

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

SAVE_CHUNK = 64
"""Items per encoded chunk: a save encodes fewer than this many items."""

_ENCODER = msgspec.msgpack.Encoder()


class SavedTail(Generic[T]):
    """The newest `keep` items of an append-only sequence (a few more: whole chunks), in
    the form a msgspec Struct field typed `list[msgspec.Raw]` saves with msgpack.

    `saved()` lists the closed chunks (encoded when they filled) and the open one; `load`
    reads that list back as items, oldest first. Items must not change once appended:
    their encoding is kept. A saved element may also be a single item, encoded alone (the
    form of a plain `list[item]` field, so records written before a field became a tail
    read the same)."""

    __slots__ = ("_chunks", "_open")

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self._chunks: deque[msgspec.Raw] = deque(maxlen=-(-keep // SAVE_CHUNK))
        self._open: list[T] = []

    def append(self, item: T) -> None:
        chunk = self._open
        chunk.append(item)
        if len(chunk) == SAVE_CHUNK:
            self._chunks.append(msgspec.Raw(_ENCODER.encode(chunk)))  # the oldest drops out
            self._open = []

    def saved(self) -> list[msgspec.Raw]:
        return [*self._chunks, msgspec.Raw(_ENCODER.encode(self._open))]

    @staticmethod
    def load(saved: Iterable[Any], item_type: type[T]) -> Iterator[T]:
        """The items of a `saved()` list, oldest first."""
        chunk_type = item_type | list[item_type]  # type: ignore[operator,valid-type]
        for element in saved:
            decoded = (
                msgspec.msgpack.decode(element, type=chunk_type)
                if isinstance(element, msgspec.Raw)
                else msgspec.convert(element, chunk_type)  # a state built in memory
            )
            if isinstance(decoded, list):
                yield from decoded
            else:
                yield decoded


class RecentIds:
    """The last `capacity` distinct ids, oldest forgotten first.

    Bounded because actors run for days; the bound only has to outlive any window in which a
    producer can re-send (a restart and its redelivery), not all of history. The newest
    `persisted` of them (at least; whole chunks) export with `saved()` for a Struct field
    typed `list[msgspec.Raw]`, and come back with `RecentIds(capacity, persisted, saved)`,
    so an owner survives a restart without re-admitting ids.
    """

    __slots__ = ("_capacity", "_order", "_seen", "_tail")

    def __init__(self, capacity: int, persisted: int = 1, saved: Iterable[Any] = ()) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._tail: SavedTail[str] = SavedTail(persisted)
        # Replayed through `add`: duplicates collapse, only the newest `capacity` survive.
        for item in SavedTail.load(saved, str):
            self.add(item)

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, item: str) -> bool:
        """Remember `item`; False when it was already remembered (a duplicate)."""
        if item in self._seen:
            return False
        if len(self._order) == self._capacity:
            self._seen.discard(self._order.popleft())
        self._seen.add(item)
        self._order.append(item)
        self._tail.append(item)
        return True

    def saved(self) -> list[msgspec.Raw]:
        """The newest ids, oldest first, as chunks: what the constructor reads back."""
        return self._tail.saved()

    def to_list(self) -> list[str]:
        """Every remembered id, oldest first."""
        return list(self._order)

    def __contains__(self, item: str) -> bool:
        return item in self._seen

    def __len__(self) -> int:
        return len(self._order)
