"""Publishing rows at the pace of their market time: real time, x`speed`, or as fast as
the consumers take them. The synthetic feed and the file replay both pace through `Pacer`.

The market clock runs at `speed` market seconds per wall second from the first row paced.
It follows the latest market time seen, so a symbol's rows interleaved a little out of
step with another's are due at once rather than rewinding the clock. Gaps longer than
`max_gap_ns` (when set) take no wall time, so a paced run over several days does not sit
out the nights and weekends between sessions.

On each wake-up the pacer publishes every row that is due (at most `batch` before it
yields to the event loop), then sleeps until the next row is due, to the microsecond
(`DeadlineTimer`), but never less than `MIN_WAKE_INTERVAL_S`: rows due closer together
than that go out together. asyncio's own timers round to the millisecond, so at 20,000
rows/s they would publish 20 to 40 rows per wake-up, and every consumer would see bursts
that no market sent (the order path's latency under load was mostly that queueing).
"fast" publishes `batch` rows per turn of the event loop.
"""

import asyncio
import ctypes
import os
import time
from collections.abc import Callable
from typing import Literal

import numpy as np

Pace = Literal["realtime", "xN", "fast"]
"""realtime: 1 market second per wall second; xN: `speed` of them; fast: no pacing."""

MIN_WAKE_INTERVAL_S = 100e-6
"""The shortest sleep the pacing asks for: each wake-up costs the publisher's core some
microseconds, so at most 10,000 of them a second."""
NS_PER_S = 1_000_000_000

_CLOCK_MONOTONIC = 1  # <time.h>; time.monotonic() reads the same clock
_TFD_TIMER_ABSTIME = 1  # <sys/timerfd.h>


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


# Python 3.11's os module has no timerfd (3.13 adds it): the C library's, through ctypes.
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, call: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call}: {os.strerror(errno)}")
    return result


class DeadlineTimer:
    """Sleeps on the running event loop until a `time.monotonic()` deadline, to the
    microsecond: a Linux timerfd that the loop watches (uvloop's timers and its
    `loop.time()` have millisecond resolution). One sleeper at a time; `close` it."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = _check(
            _libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC),
            "timerfd_create",
        )
        self._spec = _Itimerspec()
        self._waiter: asyncio.Future[None] | None = None
        self._loop.add_reader(self._fd, self._expired)

    async def sleep_until(self, deadline_s: float) -> None:
        """Return once `time.monotonic()` has reached `deadline_s` (at once if it has)."""
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(max(round(deadline_s * NS_PER_S), 1), NS_PER_S)
        # Arming the timer again also forgets an expiry not read yet.
        _check(
            _libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None),
            "timerfd_settime",
        )
        self._waiter = self._loop.create_future()
        await self._waiter

    def _expired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:  # re-armed since the loop saw it readable
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


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
        """`time.monotonic()` at the first row paced: wall time zero of `clock`."""

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
        wall = self.clock.schedule(event_ns)
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + wall
        sent = 0
        timer = DeadlineTimer()
        try:
            while sent < n:
                now = time.monotonic()
                ready = min(int(np.searchsorted(due, now, "right")), sent + batch)
                if ready > sent:
                    publish(ready - sent)
                    sent = ready
                    await asyncio.sleep(0)  # let other tasks run between batches
                else:
                    await timer.sleep_until(max(due[sent], now + MIN_WAKE_INTERVAL_S))
        finally:
            timer.close()
