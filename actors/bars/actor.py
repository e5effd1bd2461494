"""BarsActor: consumes Ticks, publishes the Bars they close, per instrument."""

from typing import Annotated

import msgspec

from actors.bars.builder import BarBuilder, BuilderState
from actors.common.instruments import InstrumentParams, ServesInstruments
from actors.messages import Bar, Tick
from kernel.actor import Actor, Port


class BarsParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    timeframes: tuple[Annotated[int, msgspec.Meta(gt=0)], ...] = (300, 1800)
    """Bar lengths in seconds; every closed bar goes out on the `bars` port (consumers
    pick their timeframe by `Bar.timeframe_s`)."""


class BarsState(msgspec.Struct, kw_only=True):
    """The durable state: each served symbol's bars in progress and indicators."""

    builders: dict[str, BuilderState] = {}


class BarsActor(ServesInstruments, Actor):
    """One `BarBuilder` per served symbol (`symbols`, every registered instrument by
    default); a closed bar is published at once, stamped with the `origin_ns` of the tick
    that closed it. Ticks of other symbols are skipped and counted (`skipped_ticks`): a
    shard of a sharded topology sees every tick and builds only its own symbols.

    The builders are the durable state, keyed by symbol: a restarted actor continues
    every symbol's bar in progress and indicators where its last commit left them, and
    the ticks since are delivered again. Builders are separate objects, so a bad tick of
    one symbol (dropped and counted by its builder) never touches another's bars."""

    Params = BarsParams
    params: BarsParams
    State = BarsState
    state: BarsState

    @classmethod
    def warm_up(cls) -> None:
        """Close a few bars in the zygote: the indicators' numba kernels compile on their
        first call (~12 ms), which a (re)started node would otherwise pay on its first bar."""
        builder = BarBuilder("WARMUP", (1,))
        for second in range(40):
            price = 100.0 + second % 3
            event_ns = (1_700_000_000 + second) * 1_000_000_000
            tick = Tick(
                symbol="WARMUP",
                price=price,
                size=1,
                bid=price - 0.25,
                ask=price + 0.25,
                event_ns=event_ns,
            )
            builder.on_tick(tick)

    async def on_start(self) -> None:
        self._out = self.output("bars")
        self.skipped_ticks = 0
        timeframes = self.params.timeframes
        self.builders = {symbol: BarBuilder(symbol, timeframes) for symbol in self.params.symbols}
        for symbol, saved in self.state.builders.items():
            builder = self.builders.get(symbol)
            if builder is not None and not builder.restore(saved):
                self.log.warning("bars of %s start afresh: the timeframes changed", symbol)

    def state_to_save(self) -> BarsState:
        return BarsState(builders={s: b.state() for s, b in self.builders.items()})

    def on_tick(self, tick: Tick) -> None:
        builder = self.builders.get(tick.symbol)
        if builder is None:
            self.skipped_ticks += 1
            return
        publish = self._out.publish
        for bar in builder.on_tick(tick):
            publish(bar)

    inputs = {Tick: on_tick}
    outputs = {"bars": Port(Bar)}
