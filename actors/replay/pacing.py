"""When each replayed row is due, in wall-clock time, from the market times in the file.

The replay clock runs at `speed` market seconds per wall second from the first row
replayed. It follows the latest market time seen, so a symbol's rows interleaved a
little out of step with another's are due at once rather than rewinding the clock. Gaps
longer than `max_gap_ns` (when set) take no wall time, as the nights and weekends
between sessions take none in the synthetic feed: a real-time replay of several days
does not sit out the nights.
"""

import numpy as np

from actors.replay.stats import NS_PER_S

MIN_SLEEP_S = 0.001
"""The shortest sleep the pacing asks for (asyncio timers have ~1 ms resolution)."""


class ReplayClock:
    """Maps market times, chunk after chunk, to wall seconds after the first row."""

    def __init__(self, speed: float, max_gap_ns: int) -> None:
        self.speed = speed
        self.max_gap_ns = max_gap_ns
        self._latest_ns: int | None = None
        self._elapsed_ns = 0
        """Market time elapsed on the replay clock (gaps taken out)."""

    def schedule(self, event_ns: np.ndarray) -> np.ndarray:
        """Wall seconds after the first row at which each row of `event_ns` (not empty,
        the next rows in file order) is due; never decreasing."""
        start = event_ns[0] if self._latest_ns is None else self._latest_ns
        latest = np.maximum.accumulate(np.concatenate(([start], event_ns)))
        steps = np.diff(latest)
        if self.max_gap_ns:
            steps[steps > self.max_gap_ns] = 0
        elapsed = self._elapsed_ns + np.cumsum(steps)
        self._latest_ns = int(latest[-1])
        self._elapsed_ns = int(elapsed[-1])
        return elapsed / (NS_PER_S * self.speed)
