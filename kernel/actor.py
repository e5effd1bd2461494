"""The Actor base class: what an actor implements and what it may call.

An actor lives in a node process on a uvloop event loop. The kernel delivers each
message of the actor's input streams to `on_message` (synchronously, in order,
in batches), fires timers into `on_timer`, and calls `on_start` / `on_stop`
around its life. An exception escaping any of them fails the actor's node
(crash-only): the supervisor restarts it and it rebuilds its state in `on_start`.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    from kernel.latency import LatencyRecorder
    from kernel.streams import OutputStream


class ActorContext:
    """What the node gives an actor: its output streams, timers, logger.

    `system` is the run's name: shared state an actor creates is named
    `<system>.<something>` so that the run's shutdown and stale cleanup find it.
    """

    def __init__(
        self,
        name: str,
        node: str,
        outputs: "dict[str, OutputStream]",
        set_timer: Callable[[str, str, float, bool], None],
        cancel_timer: Callable[[str, str], None],
        spawn: Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[None]"],
        system: str = "grandmodel",
    ) -> None:
        self.name = name
        self.node = node
        self.system = system
        self.outputs = outputs
        self._set_timer = set_timer
        self._cancel_timer = cancel_timer
        self._spawn = spawn
        self.log = logging.getLogger(f"actor.{name}")


class Actor:
    """Subclass, declare `Params` (a msgspec Struct) if the actor takes parameters."""

    Params: ClassVar[type[msgspec.Struct] | None] = None

    def __init__(self, params: Any, context: ActorContext) -> None:
        self.params = params
        self.context = context
        self.name = context.name
        self.log = context.log

    @classmethod
    def warm_up(cls) -> None:
        """Called once in the zygote before any node is forked: compile JIT code,
        load read-only data, so that a (re)started node does not pay for it."""

    @classmethod
    def parse_params(cls, raw: dict[str, Any]) -> Any:
        """Validate the config's `params` table against `Params` (strict)."""
        if cls.Params is None:
            if raw:
                raise msgspec.ValidationError(
                    f"Object contains unknown field `{next(iter(raw))}` - at `$`"
                )
            return None
        return msgspec.convert(raw, cls.Params)

    async def on_start(self) -> None:
        """Rebuild state (crash-only: this also runs after every restart)."""

    def on_message(self, msg: Any) -> None:
        """Handle one message of an input stream."""
        raise NotImplementedError(f"{type(self).__name__} consumes streams but has no on_message")

    def on_timer(self, name: str) -> None:
        """A timer set with `set_timer` fired."""

    async def on_stop(self) -> None:
        """Orderly shutdown (not called when the node crashes)."""

    def output(self, stream: str) -> "OutputStream":
        """The handle to publish on `stream` (keep it: saves a lookup per message)."""
        try:
            return self.context.outputs[stream]
        except KeyError:
            raise KeyError(f"actor {self.name!r} does not declare output {stream!r}") from None

    def publish(self, stream: str, msg: msgspec.Struct) -> None:
        self.output(stream).publish(msg)

    def set_timer(self, name: str, interval_s: float, repeat: bool = True) -> None:
        self.context._set_timer(self.name, name, interval_s, repeat)

    def cancel_timer(self, name: str) -> None:
        self.context._cancel_timer(self.name, name)

    def latency(self, series: list[str]) -> "LatencyRecorder":
        """This actor's own latency histograms (shared memory, readable by /metrics and
        the benchmarks as `<actor>.<series>`); the same counts continue after a restart."""
        from kernel.latency import LatencyRecorder

        return LatencyRecorder(self.context.system, self.name, series)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        """Run a background task (e.g. a feed loop); if it raises, the node fails."""
        return self.context._spawn(self.name, coro)
