"""FeedActor: publishes the synthetic market's ticks, paced in market time.

Pacing is `actors.common.pacing.Pacer`, the one the file replay uses: the ticks' market
times set when each is due, and the nights and weekends between sessions (any gap longer
than one tick interval) take no wall time, so at "realtime" a tick is due every
`tick_interval_s` wall seconds. Ticks are generated `batch` at a time and each message is
made when it is published.

Crash-only: the output's `seq` is committed in the actor's durable record (on the
heartbeat) with a checkpoint of the generator at or before it (`MarketCheckpoint`: its
random streams and model state before a block), so a restarted feed restores the
checkpoint, generates up to the ticks committed (at most two blocks, however long the
run) and publishes the same market from there: ticks its predecessor published after that commit
come again under the same `seq`s, and consumers that had them drop them. Ticks generated
but not yet due when the actor stops are not published, and not counted, so the successor
generates them again.
"""

import asyncio
from collections.abc import Iterator
from functools import partial
from itertools import islice

import msgspec

from actors.common.instruments import ServesInstruments
from actors.common.pacing import Pace, Pacer
from actors.common.ticks import make_ticks
from actors.feed.market import MarketCheckpoint, MarketParams, SyntheticMarket
from actors.messages import Tick
from config.types import AtLeastOne, Count, Positive
from kernel.actor import Actor, Port


class FeedParams(MarketParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The market's parameters plus how to publish its ticks."""

    pace: Pace = "realtime"
    """realtime: 1 market second per wall second; xN: `speed` of them; fast: no pacing."""
    speed: Positive = 1.0
    """Market seconds per wall second with pace "xN"."""
    max_ticks: Count = 0
    """Stop after this many ticks in all (across restarts); 0 = unlimited."""
    batch: AtLeastOne = 256
    """Most ticks published between two yields to the event loop."""
    history_sessions: Count = 0
    """Sessions published unpaced and flagged `history` before `pace` applies: they warm
    the bars, indicators and matrices (the strategic matrix needs 48 half-hour bars, four
    sessions), so that a first run decides within seconds; no strategy trades on them."""


class FeedState(msgspec.Struct, kw_only=True):
    """Where the generator can restart: a checkpoint at or before the last tick published.

    Kept encoded: a checkpoint is only a shortcut (the market can always be generated
    again from its start), so one this version cannot read, saved by an older one, is
    skipped instead of failing the start."""

    checkpoint: msgspec.Raw = msgspec.Raw(msgspec.msgpack.encode(None))
    """A `MarketCheckpoint` or nil, encoded."""


class FeedActor(ServesInstruments, Actor):
    """Publishes the `Tick`s of the synthetic market's instruments on its `ticks` port."""

    Params = FeedParams
    params: FeedParams
    State = FeedState
    state: FeedState
    outputs = {"ticks": Port(Tick)}

    @classmethod
    def warm_up(cls) -> None:
        """Compile the simulation kernel in the zygote, not in every restarted node."""
        SyntheticMarket(FeedParams()).next_batch(16)

    async def on_start(self) -> None:
        self._out = self.output("ticks")
        self._market = SyntheticMarket(self.params)
        # Ticks published on the stream so far, by this actor and its predecessors.
        self.published = self._out.seq
        if self.published:
            saved = self._saved_checkpoint()
            start = 0
            if saved is not None and saved.generated <= self.published:
                start = saved.generated if self._market.restore(saved) else 0
            self._market.advance(self.published - start)
            self.log.info(
                "resuming the synthetic feed after tick %d (generated from tick %d)",
                self.published,
                start,
            )
        self._task = self.spawn(self._run())

    def _saved_checkpoint(self) -> MarketCheckpoint | None:
        try:
            return msgspec.msgpack.decode(self.state.checkpoint, type=MarketCheckpoint | None)
        except msgspec.ValidationError:
            self.log.warning("the saved checkpoint is of another version: generating anew")
            return None

    def state_to_save(self) -> FeedState:
        checkpoint = self._market.checkpoint_for(self.published)
        return FeedState(checkpoint=msgspec.Raw(msgspec.msgpack.encode(checkpoint)))

    async def on_stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def _remaining(self) -> int | None:
        """Ticks left before `max_ticks` (None when unlimited)."""
        limit = self.params.max_ticks
        return max(limit - self.published, 0) if limit else None

    async def _run(self) -> None:
        params = self.params
        # Within a session ticks are one interval apart: a longer step is a night or weekend.
        pacer = Pacer(params.pace, params.speed, params.batch, self._market.interval_ns)
        unpaced = Pacer("fast", 1.0, params.batch)
        steps = round(params.session_length_s / params.tick_interval_s)
        history = params.history_sessions * steps * len(params.symbols)
        while (remaining := self._remaining()) != 0:
            count = params.batch if remaining is None else min(params.batch, remaining)
            if self.published < history:
                count = min(count, history - self.published)
            batch = self._market.next_batch(count)
            ticks = make_ticks(**batch._asdict())
            live = self.published >= history
            publish = partial(self._publish, ticks, not live)
            await (pacer if live else unpaced).run(batch.event_ns, publish)
        self.log.info("synthetic feed finished after %d ticks", self.published)

    def _publish(self, ticks: Iterator[Tick], history: bool, count: int) -> None:
        """Publish the next `count` of `ticks`, flagged as `history` or not."""
        publish = self._out.publish
        for tick in islice(ticks, count):
            tick.history = history
            publish(tick)
        self.published += count
