"""A bounded memory of ids already seen: duplicate intents, redelivered fills, re-sent orders."""

from collections import deque
from collections.abc import Iterable
from itertools import islice


class RecentIds:
    """The last `capacity` distinct ids, oldest forgotten first.

    Bounded because actors run for days; the bound only has to outlive any window in which a
    producer can re-send (a restart and its redelivery), not all of history. The contents
    export as a plain list (`to_list`) and come back with `from_list`, so an owner can keep
    them in a msgspec Struct as `list[str]` and survive a restart without re-admitting ids.
    """

    __slots__ = ("_capacity", "_order", "_seen")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._seen: set[str] = set()
        self._order: deque[str] = deque()

    @classmethod
    def from_list(cls, capacity: int, ids: Iterable[str]) -> "RecentIds":
        """A memory holding `ids` (oldest first, as `to_list` gives them). Replayed through
        `add`, so duplicates collapse and only the newest `capacity` survive a smaller bound."""
        recent = cls(capacity)
        for item in ids:
            recent.add(item)
        return recent

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
        return True

    def to_list(self) -> list[str]:
        """Every remembered id, oldest first: the form `from_list` reads back."""
        return list(self._order)

    def newest(self, count: int) -> list[str]:
        """The `count` most recently added ids, oldest first (for a state that persists only
        the tail)."""
        # From the right end: O(count), not O(capacity) (a durable state saves this often).
        newest = list(islice(reversed(self._order), count))
        newest.reverse()
        return newest

    def __contains__(self, item: str) -> bool:
        return item in self._seen

    def __len__(self) -> int:
        return len(self._order)
