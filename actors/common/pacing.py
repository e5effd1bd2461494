"""Publishing rows at the pace of their market time: real time, x`speed`, or as fast as
the consumers take them. The synthetic feed and the file replay both pace through `Pacer`.

The market clock runs at `speed` market seconds per wall second from the first row paced.
It follows the latest market time seen, so a symbol's rows interleaved a little out of
step with another's are due at once rather than rewinding the clock. Gaps longer than
`max_gap_ns` (when set) take no wall time, so a paced run over several days does not sit
out the nights and weekends between sessions.

On each wake-up the pacer publishes every row that is due (at most `batch` before it
yields to the event loop), then sleeps until the next row is due, never less than 1 ms
(the event loop's timer resolution): a fast pace publishes several rows per wake-up
instead of sleeping for less. "fast" publishes `batch` rows per turn of the event loop.
"""

import asyncio
from collections.abc import Callable
from typing import Literal

import numpy as np

Pace = Literal["realtime", "xN", "fast"]
"""realtime: 1 market second per wall second; xN: `speed` of them; fast: no pacing."""

MIN_SLEEP_S = 0.001
"""The shortest sleep the pacing asks for (asyncio timers have ~1 ms resolution)."""
NS_PER_S = 1_000_000_000


class MarketClock:
    """Maps market times, chunk after chunk, to wall seconds after the first row."""

    def __init__(self, speed: float, max_gap_ns: int = 0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.max_gap_ns = max_gap_ns
        self._latest_ns: int | None = None
        self._elapsed_ns = 0
        """Market time elapsed on the clock (gaps taken out)."""

    def schedule(self, event_ns: np.ndarray) -> np.ndarray:
        """Wall seconds after the first row at which each row of `event_ns` (not empty,
        the next rows in order) is due; never decreasing."""
        start = event_ns[0] if self._latest_ns is None else self._latest_ns
        latest = np.maximum.accumulate(np.concatenate(([start], event_ns)))
        steps = np.diff(latest)
        if self.max_gap_ns:
            steps[steps > self.max_gap_ns] = 0
        elapsed = self._elapsed_ns + np.cumsum(steps)
        self._latest_ns = int(latest[-1])
        self._elapsed_ns = int(elapsed[-1])
        return elapsed / (NS_PER_S * self.speed)


class Pacer:
    """Hands rows to `publish` when they are due, chunk after chunk (see the module doc).

    `speed` is used with pace "xN" only ("realtime" is speed 1, "fast" has no clock).
    """

    def __init__(self, pace: Pace, speed: float, batch: int, max_gap_ns: int = 0) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.batch = batch
        self.clock = (
            None if pace == "fast" else MarketClock(speed if pace == "xN" else 1.0, max_gap_ns)
        )
        self._start: float | None = None
        """Loop time of the first row paced: wall time zero of `clock`."""

    async def run(self, event_ns: np.ndarray, publish: Callable[[int], None]) -> None:
        """Pace the next chunk of rows, whose market times are `event_ns`: call
        `publish(count)` to publish the chunk's next `count` rows, as they fall due."""
        n = len(event_ns)
        if not n:
            return
        batch = self.batch
        if self.clock is None:
            for sent in range(0, n, batch):
                publish(min(batch, n - sent))
                await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        wall = self.clock.schedule(event_ns)
        if self._start is None:
            self._start = loop.time()
        due = self._start + wall
        sent = 0
        while sent < n:
            ready = min(int(np.searchsorted(due, loop.time(), "right")), sent + batch)
            if ready > sent:
                publish(ready - sent)
                sent = ready
                await asyncio.sleep(0)  # let other tasks run between batches
            else:
                await asyncio.sleep(max(due[sent] - loop.time(), MIN_SLEEP_S))
