"""Idle strategies: what a consumer does when its input rings are empty.

- `spin`: busy-poll. Lowest latency; only for a consumer that owns a core.
- `backoff`: spin, then yield the CPU, then sleep with growing pauses. Cheap when
  idle, but a message that arrives during a sleep waits for it to end.
- `park`: spin briefly, then sleep on the eventfd doorbell until a producer rings
  it. Producers ring only when the consumer has announced that it sleeps.

Each strategy waits on several rings at once (one actor, many input streams) and
has a blocking form (`wait`) and an asyncio form (`wait_async`).
"""

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from ringbuf._core import ReaderCore, spin_until_available
from ringbuf.doorbell import Doorbell
from ringbuf.errors import DoorbellMissing
from ringbuf.ring import RingReader

WAIT_STRATEGIES = ("spin", "backoff", "park")


def _any_available(readers: Sequence[RingReader]) -> bool:
    return any(reader.available() for reader in readers)


def _cores(readers: Sequence[RingReader]) -> tuple[ReaderCore, ...]:
    if len(readers) == 1:
        return (readers[0].core,)
    return tuple(reader.core for reader in readers)


def _spin_until(readers: Sequence[RingReader], budget_s: float) -> bool:
    """Busy-poll (in C) for at most `budget_s`; True as soon as a ring has records."""
    return spin_until_available(_cores(readers), int(budget_s * 1e9))


class WaitStrategy(Protocol):
    name: str

    def wait(self, readers: Sequence[RingReader], timeout_s: float | None = None) -> bool:
        """Block until a ring has records (True) or `timeout_s` passes (False)."""
        ...

    async def wait_async(self, readers: Sequence[RingReader]) -> None:
        """Return once a ring probably has records (or the consumer was woken for
        another reason), letting the loop run meanwhile."""
        ...

    def interrupt(self) -> None:
        """Make a pending `wait_async` return, and every later one at once (the consumer is
        stopping; its rings may stay empty forever)."""
        ...

    def close(self) -> None: ...


class SpinWait:
    """Busy-poll; under asyncio, yields to the loop every `slice_s` of spinning."""

    name = "spin"

    def __init__(self, slice_s: float = 200e-6) -> None:
        self.slice_s = slice_s
        self._interrupted = False

    def wait(self, readers: Sequence[RingReader], timeout_s: float | None = None) -> bool:
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        while not _spin_until(readers, self.slice_s):
            if deadline is not None and time.perf_counter() > deadline:
                return False
        return True

    async def wait_async(
        self, readers: Sequence[RingReader], between_slices: Callable[[], None] | None = None
    ) -> None:
        """`between_slices`, if given, runs after each slice that found nothing."""
        while not (self._interrupted or _spin_until(readers, self.slice_s)):
            if between_slices is not None:
                between_slices()
            await asyncio.sleep(0)

    def interrupt(self) -> None:
        self._interrupted = True

    def close(self) -> None:
        return None


class BackoffWait:
    """Spin `spin_s`, yield `yields` times, then sleep `min_sleep_s` doubling to `max_sleep_s`."""

    name = "backoff"

    def __init__(
        self,
        spin_s: float = 20e-6,
        yields: int = 10,
        min_sleep_s: float = 50e-6,
        max_sleep_s: float = 1e-3,
    ) -> None:
        self.spin_s = spin_s
        self.yields = yields
        self.min_sleep_s = min_sleep_s
        self.max_sleep_s = max_sleep_s
        self._interrupted = False

    def wait(self, readers: Sequence[RingReader], timeout_s: float | None = None) -> bool:
        if _spin_until(readers, self.spin_s):
            return True
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        for _ in range(self.yields):
            os.sched_yield()
            if _any_available(readers):
                return True
        pause = self.min_sleep_s
        while not _any_available(readers):
            if deadline is not None and time.perf_counter() > deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, self.max_sleep_s)
        return True

    async def wait_async(self, readers: Sequence[RingReader]) -> None:
        if _spin_until(readers, self.spin_s):
            return
        for _ in range(self.yields):
            await asyncio.sleep(0)
            if _any_available(readers):
                return
        pause = self.min_sleep_s
        while not (self._interrupted or _any_available(readers)):
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.max_sleep_s)

    def interrupt(self) -> None:
        self._interrupted = True

    def close(self) -> None:
        return None


class ParkWait:
    """Spin `spin_s`, then sleep on the consumer's doorbell until a producer rings it."""

    name = "park"

    def __init__(self, doorbell: Doorbell, spin_s: float = 5e-6) -> None:
        self.doorbell = doorbell
        self.spin_s = spin_s
        self._interrupted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _check(self, readers: Sequence[RingReader]) -> None:
        for reader in readers:
            if reader.doorbell is not self.doorbell:
                raise DoorbellMissing(
                    f"ring {reader.name!r} does not ring this consumer's doorbell"
                )

    def _prepare(self, readers: Sequence[RingReader]) -> bool:
        """Announce sleep on every ring; False (all awake again) if one has records."""
        for i, reader in enumerate(readers):
            if not reader.prepare_park():
                for earlier in readers[:i]:
                    earlier.finish_park()
                return False
        return True

    def wait(self, readers: Sequence[RingReader], timeout_s: float | None = None) -> bool:
        self._check(readers)
        if _spin_until(readers, self.spin_s):
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if not self._prepare(readers):
                return True
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                self.doorbell.wait(remaining)
            finally:
                for reader in readers:
                    reader.finish_park()
            if _any_available(readers):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    async def wait_async(self, readers: Sequence[RingReader]) -> None:
        self._check(readers)
        if self._interrupted or _spin_until(readers, self.spin_s):
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._register(loop)
        if not self._prepare(readers):
            return
        self._waiter = loop.create_future()
        try:
            # Any ring of the doorbell wakes us, including one that asks the owner to
            # stop: return and let the caller look at its own state.
            await self._waiter
        finally:
            self._waiter = None
            for reader in readers:
                reader.finish_park()

    def _register(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.doorbell.fd)
        loop.add_reader(self.doorbell.fd, self._on_ring)
        self._loop = loop

    def interrupt(self) -> None:
        self._interrupted = True
        self.doorbell.ring()

    def _on_ring(self) -> None:
        self.doorbell.drain()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.doorbell.fd)
        self._loop = None


def make_wait_strategy(name: str, doorbell: Doorbell | None = None) -> WaitStrategy:
    """Build a strategy from its configured name."""
    if name == "spin":
        return SpinWait()
    if name == "backoff":
        return BackoffWait()
    if name == "park":
        if doorbell is None:
            raise DoorbellMissing("the park strategy needs the consumer's doorbell")
        return ParkWait(doorbell)
    raise ValueError(f"unknown wait strategy {name!r}; choose one of {WAIT_STRATEGIES}")
