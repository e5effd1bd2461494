"""BarsActor: consumes Ticks, publishes the Bars they close."""

from typing import Annotated, Any

import msgspec

from actors.bars.builder import BarBuilder
from actors.messages import Tick
from kernel.actor import Actor
from kernel.streams import OutputStream


class BarsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    timeframes: tuple[Annotated[int, msgspec.Meta(gt=0)], ...] = (300, 1800)
    """Bar lengths in seconds."""
    stream: str = "bars"
    """The stream every bar goes to, unless `streams` routes it."""
    streams: tuple[str, ...] = ()
    """Optional: one stream per entry of `timeframes` (e.g. ["bars_5m", "bars_30m"])."""


class BarsActor(Actor):
    """One `BarBuilder` per symbol; a closed bar is published at once, stamped with the
    `origin_ns` of the tick that closed it. Other message types are ignored."""

    Params = BarsParams
    params: BarsParams

    async def on_start(self) -> None:
        params = self.params
        if params.streams and len(params.streams) != len(params.timeframes):
            raise ValueError(
                f"streams {list(params.streams)} must name one stream per timeframe "
                f"{list(params.timeframes)}"
            )
        names = params.streams or (params.stream,) * len(params.timeframes)
        self._routes: dict[int, OutputStream] = {
            tf: self.output(name) for tf, name in zip(params.timeframes, names, strict=True)
        }
        self._builders: dict[str, BarBuilder] = {}

    def on_message(self, msg: Any) -> None:
        if type(msg) is not Tick:
            return
        builder = self._builders.get(msg.symbol)
        if builder is None:
            builder = self._builders[msg.symbol] = BarBuilder(msg.symbol, self.params.timeframes)
        for bar in builder.on_tick(msg):
            self._routes[bar.timeframe_s].publish(bar)
