"""The order-rate throttle: at most N approvals in any sliding minute."""

from collections import deque
from collections.abc import Iterable

MINUTE_NS = 60_000_000_000


class OrderThrottle:
    """A sliding window of approval times (monotonic ns): exact, unlike a token bucket, at
    the limit a risk officer writes down ("no more than N orders in any minute")."""

    def __init__(self, max_orders: int, times_ns: Iterable[int] = ()) -> None:
        self._max_orders = max_orders
        self._times: deque[int] = deque(times_ns)

    def to_list(self) -> list[int]:
        """Approval times in the window, oldest first (what the constructor takes back)."""
        return list(self._times)

    def allows(self, now_ns: int) -> bool:
        """Whether one more order fits in the window ending at `now_ns`."""
        return self.count(now_ns) < self._max_orders

    def count(self, now_ns: int) -> int:
        """Approvals in the window ending at `now_ns`."""
        times = self._times
        horizon = now_ns - MINUTE_NS
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def record(self, now_ns: int) -> None:
        self._times.append(now_ns)
