"""ReplayActor: publishes the ticks or bars of a file, paced in the file's market time.

Pacing is `actors.common.pacing.Pacer`, the one the synthetic feed uses, on the file's
market times, with gaps longer than `max_gap_s` (when set) taking no wall time; file
reads run in a worker thread (`prefetch.Prefetcher`).

Crash-only: the output's `seq` is committed in the actor's durable record, and reading a
file is deterministic, so a restarted replay reads the file again from the top and
skips the rows committed; rows published after that commit come again under the same
`seq`s, which consumers that had them drop. Bars carry no indicators (NaN ATR and
momentum): those are computed downstream.
"""

import asyncio
from collections.abc import Iterator
from functools import partial
from itertools import islice

from actors.common.pacing import Pace, Pacer
from actors.common.ticks import make_ticks
from actors.messages import Bar, Tick
from actors.replay.prefetch import Prefetcher
from actors.replay.reader import Chunk, ReplaySource, read_chunks, value_columns
from actors.replay.stats import NS_PER_S, ReplayStats
from config.types import AtLeastOne, Count, Positive
from kernel.actor import Actor, Port


class ReplayParams(ReplaySource, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The file and its checks (`ReplaySource`) plus how to publish its rows."""

    pace: Pace = "realtime"
    """realtime: 1 market second per wall second; xN: `speed` of them; fast: no pacing."""
    speed: Positive = 1.0
    """Market seconds per wall second with pace "xN"."""
    batch: AtLeastOne = 256
    """Most rows published between two yields to the event loop."""
    timeframe_s: Count = 0
    """Bars only, required: each bar's length (a bar's timestamp is its start)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "bars" and not self.timeframe_s:
            raise ValueError("replaying bars needs `timeframe_s`, the bars' length in seconds")


class ReplayActor(Actor):
    """Publishes the `Tick`s or `Bar`s of one file on its `ticks` or `bars` port (the one
    that `kind` names must be wired), then idles."""

    Params = ReplayParams
    params: ReplayParams
    outputs = {"ticks": Port(Tick, optional=True), "bars": Port(Bar, optional=True)}

    @classmethod
    def required_ports(cls, params: ReplayParams) -> set[str]:
        return {params.kind}

    async def on_start(self) -> None:
        self._out = self.output(self.params.kind)
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
        pacer = Pacer(params.pace, params.speed, params.batch, round(params.max_gap_s * NS_PER_S))
        chunks = Prefetcher(read_chunks(params, self.stats))
        skip = self.published  # rows a predecessor published: read again, not republished
        try:
            while (chunk := await chunks.next()) is not None:
                if skip >= len(chunk.lines):
                    skip -= len(chunk.lines)
                    continue
                chunk, skip = chunk.tail(skip), 0
                await pacer.run(chunk.event_ns, partial(self._publish, self._messages(chunk)))
        finally:
            chunks.close()
        self.log.info("replay of %s finished: %s", params.path, self.stats)

    def _publish(self, messages: Iterator[Tick | Bar], count: int) -> None:
        """Publish the next `count` of `messages`."""
        publish = self._out.publish
        for message in islice(messages, count):
            publish(message)
        self.published += count

    def _messages(self, chunk: Chunk) -> Iterator[Tick | Bar]:
        """The chunk's rows as messages, made as they are published."""
        if self.params.kind == "ticks":
            columns = chunk.columns
            yield from make_ticks(
                chunk.symbol,
                chunk.event_ns,
                price=columns["price"],
                size=columns["size"],
                bid=columns["bid"],
                ask=columns["ask"],
                bid_size=columns["bid_size"],
                ask_size=columns["ask_size"],
            )
            return
        rows = zip(
            chunk.symbol.tolist(),
            chunk.event_ns.tolist(),
            *(chunk.columns[name].tolist() for name in value_columns("bars")),
            strict=True,
        )
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
