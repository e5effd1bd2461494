"""ReplayActor: publishes the ticks or bars of a file, paced in the file's market time.

Pacing follows the synthetic feed actor: on each wake-up the actor publishes every row
that is due (at most `batch` before it yields to the loop), then sleeps until the next
row is due, never less than 1 ms (the event loop's timer resolution), so a fast pace
batches rows instead of sleeping for less; "fast" publishes as fast as the consumers
take them, yielding every `batch` rows. Market time comes from the file (see
`pacing.ReplayClock`); file reads run in a worker thread (`prefetch.Prefetcher`).

Crash-only: the output stream's `seq` survives a restart of the producer, and reading a
file is deterministic, so a restarted replay reads the file again from the top and
skips as many rows as the stream already carries. Bars carry no indicators (NaN ATR and
momentum): those are computed downstream.
"""

import asyncio
from collections.abc import Iterator
from itertools import islice
from typing import Annotated, Literal

import msgspec
import numpy as np

from actors.messages import Bar, Tick
from actors.replay.pacing import MIN_SLEEP_S, ReplayClock
from actors.replay.prefetch import Prefetcher
from actors.replay.reader import Chunk, ReplaySource, read_chunks, value_columns
from actors.replay.stats import NS_PER_S, ReplayStats
from kernel.actor import Actor


class ReplayParams(ReplaySource, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The file and its checks (`ReplaySource`) plus how to publish its rows."""

    stream: str | None = None
    """Output stream; None means the kind's name, "ticks" or "bars"."""
    pace: Literal["realtime", "xN", "fast"] = "realtime"
    """realtime: 1 market second per wall second; xN: `speed` of them; fast: no pacing."""
    speed: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Market seconds per wall second with pace "xN"."""
    batch: Annotated[int, msgspec.Meta(ge=1)] = 256
    """Most rows published between two yields to the event loop."""
    timeframe_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Bars only, required: each bar's length (a bar's timestamp is its start)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "bars" and not self.timeframe_s:
            raise ValueError("replaying bars needs `timeframe_s`, the bars' length in seconds")


class ReplayActor(Actor):
    """Publishes the `Tick`s or `Bar`s of one file on `Params.stream`, then idles."""

    Params = ReplayParams
    params: ReplayParams

    async def on_start(self) -> None:
        self._out = self.output(self.params.stream or self.params.kind)
        # Rows published on the stream so far, by this actor and its predecessors.
        self.published = self._out.seq
        if self.published:
            self.log.info(
                "resuming the replay of %s after row %d", self.params.path, self.published
            )
        self.stats = ReplayStats()
        self._task = self.spawn(self._run())

    async def on_stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        params = self.params
        clock = None
        if params.pace != "fast":
            speed = params.speed if params.pace == "xN" else 1.0
            clock = ReplayClock(speed, round(params.max_gap_s * NS_PER_S))
        chunks = Prefetcher(read_chunks(params, self.stats))
        skip = self.published  # rows a predecessor published: read again, not republished
        loop = asyncio.get_running_loop()
        start: float | None = None  # loop time of the first row published
        try:
            while (chunk := await chunks.next()) is not None:
                if skip >= len(chunk.lines):
                    skip -= len(chunk.lines)
                    continue
                chunk, skip = chunk.tail(skip), 0
                if clock is None:
                    await self._publish_fast(chunk)
                    continue
                due = clock.schedule(chunk.event_ns)
                start = loop.time() if start is None else start
                await self._publish_paced(chunk, start + due)
        finally:
            chunks.close()
        self.log.info("replay of %s finished: %s", params.path, self.stats)

    async def _publish_fast(self, chunk: Chunk) -> None:
        messages = self._messages(chunk)
        n, batch = len(chunk.lines), self.params.batch
        for sent in range(0, n, batch):
            self._publish(messages, min(batch, n - sent))
            await asyncio.sleep(0)

    async def _publish_paced(self, chunk: Chunk, due: np.ndarray) -> None:
        """Publish the rows when due (`due`: loop times), those due at a wake-up at once."""
        loop = asyncio.get_running_loop()
        messages = self._messages(chunk)
        sent, n = 0, len(due)
        while sent < n:
            ready = min(int(np.searchsorted(due, loop.time(), "right")), sent + self.params.batch)
            if ready > sent:
                self._publish(messages, ready - sent)
                sent = ready
                await asyncio.sleep(0)  # let other tasks run between batches
            else:
                await asyncio.sleep(max(due[sent] - loop.time(), MIN_SLEEP_S))

    def _publish(self, messages: Iterator[Tick | Bar], count: int) -> None:
        """Publish the next `count` of `messages`."""
        publish = self._out.publish
        for message in islice(messages, count):
            publish(message)
        self.published += count

    def _messages(self, chunk: Chunk) -> Iterator[Tick | Bar]:
        """The chunk's rows as messages, made as they are published."""
        names = value_columns(self.params.kind)
        rows = zip(
            chunk.symbol.tolist(),
            chunk.event_ns.tolist(),
            *(chunk.columns[name].tolist() for name in names),
            strict=True,
        )
        if self.params.kind == "ticks":
            for symbol, event_ns, price, size, bid, ask, bid_size, ask_size in rows:
                yield Tick(
                    symbol=symbol,
                    price=price,
                    size=size,
                    bid=bid,
                    ask=ask,
                    event_ns=event_ns,
                    bid_size=bid_size,
                    ask_size=ask_size,
                )
            return
        timeframe_s = self.params.timeframe_s
        length_ns = timeframe_s * NS_PER_S
        for symbol, start_ns, open_, high, low, close, volume in rows:
            yield Bar(
                symbol=symbol,
                timeframe_s=timeframe_s,
                start_ns=start_ns,
                end_ns=start_ns + length_ns,
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=volume,
            )
