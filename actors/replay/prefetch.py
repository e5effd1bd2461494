"""Read ahead in a worker thread, so file reads and parsing never block the event loop.

An actor must not block its loop (design §4), and reading and checking a chunk takes
tens of milliseconds. One worker thread reads the next chunk while the loop publishes the
current one, so at most two chunks are held at a time.
"""

import asyncio
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class Prefetcher(Generic[T]):
    """Pulls the items of a generator one ahead, in a worker thread."""

    def __init__(self, items: Generator[T, None, None]) -> None:
        self._items = items
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="replay-read")
        self._pending: Future[T | None] = self._pool.submit(next, items, None)

    async def next(self) -> T | None:
        """The next item, None when the generator is exhausted; its exceptions propagate."""
        item = await asyncio.wrap_future(self._pending)
        if item is not None:
            self._pending = self._pool.submit(next, self._items, None)
        return item

    def close(self) -> None:
        """Wait for a read in progress (one chunk at most), then close the generator: a
        generator cannot be closed while another thread runs it."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._items.close()
