"""The Actor base class: what an actor declares, implements and may call.

An actor declares its contract on the class, and the kernel does the rest:

- `inputs = {MessageType: handler}`: the messages it handles. The kernel dispatches by
  record type id, drops duplicates by `seq` and calls each handler exactly once per
  message across kill -9 (README "Delivery contract"). `ignores` lists the types its
  input streams carry that it deliberately skips; a message of any other type is
  counted in health (`unhandled`, health degraded), never silently lost.
- `outputs = {"port": Port(MessageType, ...)}`: named output ports. The config wires
  each port to a stream (`outputs = { port = "stream" }`); the actor publishes with
  `self.output("port").publish(msg)` and never names a stream.
- `Params`: a msgspec Struct validated from the config's `params` table.
- `State`: a msgspec Struct held in `self.state`. The kernel restores it before
  `on_start` and commits it together with the input positions it reflects, so a
  restarted actor continues exactly where its last commit left it. It survives a clean
  restart too, unless the class sets `ephemeral_state = True`.

After a crash the kernel replays the messages handled since the last commit to rebuild
the state; what the predecessor had published is re-sent from its outbox, and the
replay's publishes under those `seq`s write nothing (kernel/streams.py). A handler that
is a deterministic function of (state, message) ends the replay in exactly the state its
predecessor had; time for a decision is best read from the message.

An exception escaping a handler fails the actor's node (crash-only); a message whose
handler keeps failing is quarantined after `delivery.max_attempts` tries.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    from config.schema import SystemConfig
    from kernel.latency import LatencyRecorder
    from kernel.streams import OutputStream

Handler = Callable[[Any, Any], object]


class Port:
    """An output port: the message types it carries; `optional` ports (telemetry) may
    stay unwired, and then publishing on them does nothing."""

    __slots__ = ("optional", "types")

    def __init__(self, *types: type[msgspec.Struct], optional: bool = False) -> None:
        if not types:
            raise TypeError("a Port carries at least one message type")
        self.types = types
        self.optional = optional

    def __repr__(self) -> str:
        names = ", ".join(t.__name__ for t in self.types)
        return f"Port({names}{', optional=True' if self.optional else ''})"


class ActorContext:
    """What the node gives an actor: its output ports, timers, logger.

    `system` is the run's name: shared state an actor creates is named
    `<system>.<something>` so that the run's shutdown and stale cleanup find it.
    """

    def __init__(
        self,
        name: str,
        node: str,
        outputs: "Mapping[str, OutputStream]",
        set_timer: Callable[[str, str, float, bool], None],
        cancel_timer: Callable[[str, str], None],
        spawn: Callable[[str, Coroutine[Any, Any, None]], "asyncio.Task[None]"],
        system: str = "grandmodel",
        new_run: bool = False,
        report_problem: Callable[[str, str | None], None] = lambda actor, problem: None,
        run_id: int = 0,
        when_idle: Callable[[str, Callable[[], None]], None] | None = None,
    ) -> None:
        self.name = name
        self.node = node
        self.system = system
        self.run_id = run_id
        """The run's id, unique per run: a whole tree recovering its crashed run keeps it."""
        self.new_run = new_run
        """The actor's durable state (if any) comes from an earlier run, not from a crashed
        predecessor in this one: the rings are new, so what was in flight is gone and the
        actor reconciles with its peers (execution re-sends its working orders)."""
        self.outputs = outputs
        self._set_timer = set_timer
        self._cancel_timer = cancel_timer
        self._spawn = spawn
        self._report_problem = report_problem
        self._when_idle = when_idle or _soon
        self.log = logging.getLogger(f"actor.{name}")


def _soon(actor: str, work: Callable[[], None]) -> None:
    """Idle work outside a node (tests, tools): at the event loop's next turn."""
    asyncio.get_running_loop().call_soon(work)


class Actor:
    """Subclass; declare `inputs`, `outputs`, and `Params` / `State` when needed."""

    Params: ClassVar[type[msgspec.Struct] | None] = None
    State: ClassVar[type[msgspec.Struct] | None] = None
    ephemeral_state: ClassVar[bool] = False
    """True: the state lives for one run (kept across crashes, dropped by a new run)."""
    inputs: ClassVar[Mapping[type[msgspec.Struct], Handler]] = {}
    ignores: ClassVar[tuple[type[msgspec.Struct], ...]] = ()
    """Types an input stream carries that this actor deliberately does not handle."""
    optional_inputs: ClassVar[tuple[type[msgspec.Struct], ...]] = ()
    """Handled types that the configuration need not wire (e.g. operator controls)."""
    outputs: ClassVar[Mapping[str, Port]] = {}

    state: Any
    """The instance of `State` (None without one), restored before `on_start`."""

    def __init__(self, params: Any, context: ActorContext) -> None:
        self.params = params
        self.context = context
        self.name = context.name
        self.log = context.log
        self.state = type(self).State() if type(self).State is not None else None

    @classmethod
    def warm_up(cls) -> None:
        """Called once in the zygote before any node is forked: compile JIT code,
        load read-only data, so that a (re)started node does not pay for it."""

    @classmethod
    def parse_params(cls, raw: dict[str, Any], config: "SystemConfig | None" = None) -> Any:
        """Validate the config's `params` table against `Params` (strict).

        `config` is the whole system configuration (None: the defaults), for params that
        refer to a table shared by actors (the trading actors' symbols name entries of its
        instrument registry). An error is a `msgspec.ValidationError` or a ValueError whose
        message ends with "- at `$.<path in params>`", so the load names the field."""
        if cls.Params is None:
            if raw:
                raise msgspec.ValidationError(
                    f"Object contains unknown field `{next(iter(raw))}` - at `$`"
                )
            return None
        return msgspec.convert(raw, cls.Params)

    @classmethod
    def required_ports(cls, params: Any) -> set[str]:
        """Ports the config must wire: the non-optional ones (a class whose parameters
        decide which optional port it publishes on says so here)."""
        return {name for name, port in cls.outputs.items() if not port.optional}

    @classmethod
    def handlers(cls) -> dict[type[msgspec.Struct], str]:
        """Message type -> name of the method that handles it (bound per instance, so
        a subclass that overrides the method is called)."""
        return {kind: handler.__name__ for kind, handler in cls.inputs.items()}

    def input_handlers(self, stream: str) -> dict[type[msgspec.Struct], Callable[[Any], object]]:
        """The bound handlers for the messages of one input stream. By default the declared
        ones, the same for every stream; an actor that must know where a message came
        from (the journal keys its rows by stream and seq) binds the stream in."""
        return {kind: getattr(self, method) for kind, method in type(self).handlers().items()}

    def before_commit(self) -> None:
        """Called just before the kernel saves this actor's record (state, input positions,
        output seqs). Whatever the committed positions will say is done must be durable
        by then: the journal writes its batch here. An exception fails the node, and the
        inputs since the last commit are delivered again to its successor."""

    def on_resent(self, msg: Any) -> None:
        """A message this actor's crashed predecessor published after its last commit,
        which the kernel has just sent again (kernel/streams.py, point 4); called for each,
        in publish order, after `self.state` is restored and before `on_start`. The
        replay that follows may decide differently but publishes nothing under those
        seqs: an actor whose outputs are promises (the venue's fills) records them here."""

    async def on_start(self) -> None:
        """Reconcile after a (re)start: `self.state` is already restored."""

    def on_message(self, msg: Any) -> bool:
        """Deliver one message in-process (tests, tools) through the declared handler;
        False when the actor does not handle its type. The kernel does not call this:
        nodes dispatch by record type id with dedupe (kernel/inbox.py)."""
        method = type(self).handlers().get(type(msg))
        if method is None:
            return False
        getattr(self, method)(msg)
        return True

    def state_to_save(self) -> Any:
        """The `State` to commit (called once per commit, not per message). The default
        is `self.state`; an actor whose domain objects hold the data builds it here."""
        return self.state

    def on_timer(self, name: str) -> None:
        """A timer set with `set_timer` fired."""

    async def on_stop(self) -> None:
        """Orderly shutdown (not called when the node crashes)."""

    def output(self, port: str) -> "OutputStream":
        """The handle to publish on `port` (keep it: saves a lookup per message)."""
        try:
            return self.context.outputs[port]
        except KeyError:
            raise KeyError(f"actor {self.name!r} declares no output port {port!r}") from None

    def set_timer(self, name: str, interval_s: float, repeat: bool = True) -> None:
        self.context._set_timer(self.name, name, interval_s, repeat)

    def cancel_timer(self, name: str) -> None:
        self.context._cancel_timer(self.name, name)

    def when_idle(self, work: Callable[[], None]) -> None:
        """Run `work` at the node's next quiet moment: its inputs empty, before it commits
        or waits (one piece of work per quiet moment, in order). For what makes a later
        message faster, computed off its path (the tactical policy prepares the next
        bar's decision): work that publishes nothing and changes no durable state, since
        it runs outside any handler and a crash forgets what is still queued. A node whose
        inputs never go quiet runs none of it: ask once per need, not once per message."""
        self.context._when_idle(self.name, work)

    def keep_warm(self) -> None:
        """Override to read what this actor's next order-path message will need (a
        policy's weights) back into the CPU caches. A spinning node calls it after each
        spin slice that found no message (about every 200 us while quiet): between two
        5-minute bars, other work and other tenants of the machine evict a working set
        that the next decision would otherwise fetch from memory. Reads only, short (a
        message that arrives meanwhile waits for it), no publish, no state change; its
        exception fails the node. Nodes that park or back off never call it: after a
        sleep the caches are cold whatever was read before it."""

    def report_problem(self, problem: str | None) -> None:
        """Show `problem` in this actor's health row (`problem` set, `degraded`, the text in
        `last_error`) until it is reported again as None: for a fault the actor survives
        but an operator must see (a journal that cannot write)."""
        self.context._report_problem(self.name, problem)

    def latency(self, series: list[str]) -> "LatencyRecorder":
        """This actor's own latency histograms (shared memory, readable by /metrics and
        the benchmarks as `<actor>.<series>`); the same counts continue after a restart."""
        from kernel.latency import LatencyRecorder

        return LatencyRecorder(self.context.system, self.name, series)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        """Run a background task (e.g. a feed loop); if it raises, the node fails."""
        return self.context._spawn(self.name, coro)
