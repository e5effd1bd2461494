"""A bounded memory of the client order ids a venue has seen."""

from collections import deque


class RecentIds:
    """The last `capacity` distinct ids, oldest forgotten first.

    Bounded because a venue runs for days; the bound only has to outlive any window in which
    a producer can re-send an order (a restart and its redelivery), not all of history.
    """

    __slots__ = ("_capacity", "_order", "_seen")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._seen: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, item: str) -> bool:
        """Remember `item`; False when it was already remembered (a duplicate)."""
        if item in self._seen:
            return False
        if len(self._order) == self._capacity:
            self._seen.discard(self._order.popleft())
        self._seen.add(item)
        self._order.append(item)
        return True

    def __contains__(self, item: str) -> bool:
        return item in self._seen

    def __len__(self) -> int:
        return len(self._order)
