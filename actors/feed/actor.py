"""FeedActor: publishes the synthetic market's ticks, paced in market time.

Pacing runs on trading time: tick i is due `i * tick_interval_s / speed` wall seconds after
the loop starts (the nights and weekends between sessions take no wall time). On each
wake-up the actor publishes every tick that is due, then sleeps until the next one is due,
never less than 1 ms (the event loop's timer resolution): a fast pace batches several ticks
per wake-up instead of sleeping for less. `fast` publishes as fast as the consumers take
them, yielding to the loop every `batch` ticks so timers and other tasks run.

Crash-only: the output stream's `seq` survives a restart of the producer, so a restarted
feed fast-forwards its generator past the ticks already published and continues the
same market where its predecessor stopped.
"""

import asyncio
from typing import Annotated, Literal

import msgspec

from actors.feed.market import MarketParams, SyntheticMarket, TickBatch
from actors.messages import Tick
from kernel.actor import Actor

MIN_SLEEP_S = 0.001
"""The shortest sleep the pacing asks for (asyncio timers have ~1 ms resolution)."""


class FeedParams(MarketParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The market's parameters plus how to publish its ticks."""

    stream: str = "ticks"
    pace: Literal["realtime", "xN", "fast"] = "realtime"
    """realtime: 1 market second per wall second; xN: `speed` of them; fast: no pacing."""
    speed: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Market seconds per wall second with pace "xN"."""
    max_ticks: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Stop after this many ticks in all (across restarts); 0 = unlimited."""
    batch: Annotated[int, msgspec.Meta(ge=1)] = 256
    """Most ticks published between two yields to the event loop."""


class FeedActor(Actor):
    """Publishes `Tick`s of one synthetic symbol on `Params.stream`."""

    Params = FeedParams
    params: FeedParams

    @classmethod
    def warm_up(cls) -> None:
        """Compile the simulation kernel in the zygote, not in every restarted node."""
        SyntheticMarket(FeedParams()).next_batch(16)

    async def on_start(self) -> None:
        self._out = self.output(self.params.stream)
        self._market = SyntheticMarket(self.params)
        # Ticks published on the stream so far, by this actor and its predecessors.
        self.published = self._out.seq
        if self.published:
            self._market.advance(self.published)
            self.log.info("resuming the synthetic feed after tick %d", self.published)
        self._task = self.spawn(self._run())

    async def on_stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _remaining(self) -> int | None:
        """Ticks left before `max_ticks` (None when unlimited)."""
        limit = self.params.max_ticks
        return max(limit - self.published, 0) if limit else None

    async def _run(self) -> None:
        if self.params.pace == "fast":
            await self._run_fast()
        else:
            speed = self.params.speed if self.params.pace == "xN" else 1.0
            await self._run_paced(speed / self.params.tick_interval_s)
        self.log.info("synthetic feed finished after %d ticks", self.published)

    async def _run_fast(self) -> None:
        batch = self.params.batch
        while (remaining := self._remaining()) != 0:
            n = batch if remaining is None else min(batch, remaining)
            self._publish(self._market.next_batch(n))
            await asyncio.sleep(0)

    async def _run_paced(self, rate: float) -> None:
        """Publish at `rate` ticks per wall second, the ticks due at each wake-up at once."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0  # ticks published by this loop; tick `sent` is due at start + sent / rate
        while (remaining := self._remaining()) != 0:
            due = int((loop.time() - start) * rate) + 1 - sent
            n = min(due, self.params.batch)
            if remaining is not None:
                n = min(n, remaining)
            if n > 0:
                self._publish(self._market.next_batch(n))
                sent += n
            delay = start + sent / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(max(delay, MIN_SLEEP_S))
            else:  # behind (a burst or a stall): catch up, letting other tasks run between
                await asyncio.sleep(0)

    def _publish(self, batch: TickBatch) -> None:
        publish = self._out.publish
        symbol = self.params.symbol
        for event_ns, price, size, bid, ask, bid_size, ask_size, regime in zip(
            *(column.tolist() for column in batch), strict=True
        ):
            publish(
                Tick(
                    symbol=symbol,
                    price=price,
                    size=size,
                    bid=bid,
                    ask=ask,
                    event_ns=event_ns,
                    regime=regime,
                    bid_size=bid_size,
                    ask_size=ask_size,
                )
            )
        self.published += len(batch.price)
