"""BarsActor: consumes Ticks, publishes the Bars they close."""

from typing import Annotated

import msgspec

from actors.bars.builder import BarBuilder
from actors.messages import Bar, Tick
from kernel.actor import Actor, Port


class BarsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    timeframes: tuple[Annotated[int, msgspec.Meta(gt=0)], ...] = (300, 1800)
    """Bar lengths in seconds; every closed bar goes out on the `bars` port (consumers
    pick their timeframe by `Bar.timeframe_s`)."""


class BarsActor(Actor):
    """One `BarBuilder` per symbol; a closed bar is published at once, stamped with the
    `origin_ns` of the tick that closed it. The bars in progress and the indicators are not
    durable state: after a restart each builder starts afresh with the next tick, so the
    bar in progress then covers only the ticks after the restart."""

    Params = BarsParams
    params: BarsParams

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
        self._builders: dict[str, BarBuilder] = {}

    def on_tick(self, tick: Tick) -> None:
        builder = self._builders.get(tick.symbol)
        if builder is None:
            builder = self._builders[tick.symbol] = BarBuilder(tick.symbol, self.params.timeframes)
        publish = self._out.publish
        for bar in builder.on_tick(tick):
            publish(bar)

    inputs = {Tick: on_tick}
    outputs = {"bars": Port(Bar)}
