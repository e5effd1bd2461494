"""A bounded memory of ids already seen, for duplicate intents and redelivered fills."""

from collections import deque
from collections.abc import Hashable


class RecentIds:
    """Remembers the last `capacity` ids: memory stays bounded however long the run, and an
    id old enough to be forgotten is far outside any redelivery window."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._seen: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def newest(self, count: int) -> list[Hashable]:
        """The `count` most recently added ids, oldest first."""
        order = self._order
        return list(order)[-count:] if count < len(order) else list(order)

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False if it was already remembered."""
        seen = self._seen
        if key in seen:
            return False
        seen.add(key)
        order = self._order
        order.append(key)
        if len(order) > self._capacity:
            seen.discard(order.popleft())
        return True
