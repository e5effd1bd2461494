"""The order-rate throttle: at most N approvals in any sliding minute."""

import numpy as np

MINUTE_NS = 60_000_000_000
_INITIAL_CAPACITY = 64


class OrderThrottle:
    """A sliding window of approval times (monotonic ns): exact, unlike a token bucket, at
    the limit a risk officer writes down ("no more than N orders in any minute").

    The times live in a growing int64 array (oldest first from `_head`), so that saving
    the window with the actor's durable state is one copy of bytes however many orders
    the last minute holds (thousands at a high limit), not a list of Python ints."""

    def __init__(self, max_orders: int, saved: bytes | list[int] = b"") -> None:
        self._max_orders = max_orders
        if isinstance(saved, bytes):
            times = np.frombuffer(saved, dtype="<i8")
        else:
            times = np.array(saved, dtype=np.int64)
        self._times = np.empty(max(_INITIAL_CAPACITY, 2 * len(times)), dtype=np.int64)
        self._times[: len(times)] = times
        self._head = 0
        self._tail = len(times)

    def to_bytes(self) -> bytes:
        """Approval times in the window, oldest first, as little-endian int64 (what the
        constructor takes back)."""
        return self._times[self._head : self._tail].astype("<i8", copy=False).tobytes()

    def allows(self, now_ns: int) -> bool:
        """Whether one more order fits in the window ending at `now_ns`."""
        return self.count(now_ns) < self._max_orders

    def count(self, now_ns: int) -> int:
        """Approvals in the window ending at `now_ns`."""
        head, tail = self._head, self._tail
        horizon = now_ns - MINUTE_NS
        if head < tail and self._times[head] <= horizon:
            # Times are recorded in order: the first one inside the window, by bisection.
            head += int(np.searchsorted(self._times[head:tail], horizon, side="right"))
            self._head = head
        return tail - head

    def record(self, now_ns: int) -> None:
        if self._tail == len(self._times):
            live = self._times[self._head : self._tail]
            grown = np.empty(max(_INITIAL_CAPACITY, 2 * len(live)), dtype=np.int64)
            grown[: len(live)] = live
            self._times, self._head, self._tail = grown, 0, len(live)
        self._times[self._tail] = now_ns
        self._tail += 1
