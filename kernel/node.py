"""A node: one OS process running its actors on a uvloop event loop.

The node attaches its rings (created by the supervisor), builds its actors, runs
`on_start`, then drains its input rings in batches, waiting the configured way
when they are empty. It beats a heartbeat into the health table from a loop
timer, so a handler stuck in a loop shows as a hang. Any exception from an actor
fails the whole node at once (crash-only): it is logged with the message that
caused it, written to the health table, and the process exits with status 1.
"""

import asyncio
import gc
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from config.loader import import_object
from config.schema import SystemConfig
from kernel.actor import Actor, ActorContext
from kernel.codec import Codec
from kernel.health import HealthTable, State
from kernel.latency import LatencyRecorder
from kernel.logs import log_event
from kernel.streams import NodeStopping, OutputStream
from kernel.topology import RingSpec, Topology
from ringbuf import Doorbell, RingReader, RingWriter, make_wait_strategy

log = logging.getLogger("kernel.node")

YIELD_EVERY_NS = 1_000_000  # a node busy with messages still lets its timers run


def traced(
    on_message: Callable[[Any], object], record: Callable[[int], None]
) -> Callable[[Any], None]:
    """Wrap a handler to record each message's hop latency (receipt - publish) first."""
    clock = time.monotonic_ns

    def handle(msg: Any) -> None:
        record(clock() - msg.ts_ns)
        on_message(msg)

    return handle


def apply_placement(cores: list[int], realtime: bool, node: str) -> None:
    """Pin to the configured cores; ask for SCHED_FIFO when configured."""
    if cores:
        os.sched_setaffinity(0, set(cores))
    if realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except PermissionError:
            log_event(
                log,
                logging.WARNING,
                "realtime priority not permitted, running SCHED_OTHER",
                node=node,
            )


class NodeRuntime:
    def __init__(
        self, config: SystemConfig, node: str, doorbell_fds: dict[str, int], health: HealthTable
    ) -> None:
        self.config = config
        self.topology = Topology(config)
        self.spec = self.topology.nodes[node]
        self.name = node
        self.health = health
        self.rows = {actor: health.index[actor] for actor in self.spec.actors}
        self.doorbells = {name: Doorbell(fd, owned=False) for name, fd in doorbell_fds.items()}
        self.codec = Codec.from_union(import_object(config.messages, "messages"))
        self.actors: dict[str, Actor] = {}
        self.inputs: list[tuple[RingReader, Actor]] = []
        self._input_rings: list[RingSpec] = []
        self.outputs: list[OutputStream] = []
        self.timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.stopped = asyncio.Event()
        self._heartbeat: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- building
    def _attach(self) -> None:
        schema = self.codec.schema
        own_doorbell = self.doorbells.get(self.name)
        for actor_name in self.spec.actors:
            actor_config = self.topology.actors[actor_name]
            outputs = {}
            for stream in actor_config.outputs:
                writers = [
                    RingWriter(
                        ring.name,
                        doorbell=self.doorbells.get(ring.node) if ring.doorbell else None,
                        schema=schema,
                    )
                    for ring in self.topology.rings_of_stream(stream)
                ]
                outputs[stream] = OutputStream(stream, writers, self.codec, self._blocked)
                self.outputs.append(outputs[stream])
            cls = import_object(actor_config.cls, f"actors.{actor_name}.cls")
            context = ActorContext(
                actor_name,
                self.name,
                outputs,
                self._set_timer,
                self._cancel_timer,
                self._spawn,
                self.config.name,
            )
            actor = cls(cls.parse_params(actor_config.params), context)
            self.actors[actor_name] = actor
            for ring in self.topology.inputs_of(actor_name):
                reader = RingReader(
                    ring.name, doorbell=own_doorbell if ring.doorbell else None, schema=schema
                )
                self.inputs.append((reader, actor))
                self._input_rings.append(ring)

    # ------------------------------------------------------------------ running
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        apply_placement(self.spec.cores, self.spec.realtime, self.name)
        self._beat()
        self._attach()
        for name, actor in self.actors.items():
            try:
                await actor.on_start()
            except Exception as error:
                self.fail(name, error, "on_start")
        # Everything alive now (modules, actors, their state) lives for the whole process:
        # keep it out of the collector so that a full collection stays short on the hot path.
        gc.collect()
        gc.freeze()
        pid = os.getpid()
        mask = sum(1 << core for core in os.sched_getaffinity(0))
        for row in self.rows.values():
            self.health.rows["core_mask"][row] = mask
            self.health.rows["ready_pid"][row] = pid
        log_event(
            log,
            logging.INFO,
            "node running",
            node=self.name,
            actors=list(self.actors),
            cores=sorted(os.sched_getaffinity(0)),
            wait=self.spec.wait,
        )
        self._heartbeat_loop(loop)
        if self.inputs:
            await self._drain()
        else:
            await self.stopped.wait()
        await self._shutdown()
        return 0

    def _blocked(self) -> bool:
        """A publish waits on a full ring: stay visibly alive; say whether to give up.

        The supervisor marks the node STOPPING before it sends SIGTERM, and the
        signal itself cannot be handled while the loop is blocked in a write.
        """
        self._beat()
        states = self.health.rows["state"]
        return self.stopping or any(
            int(states[row]) == State.STOPPING for row in self.rows.values()
        )

    def request_stop(self) -> None:
        self.stopping = True
        self.stopped.set()
        own = self.doorbells.get(self.name)
        if own is not None:
            own.ring()  # wake a parked drain loop

    def _hop_recorder(self) -> LatencyRecorder | None:
        """Histograms of `<stream>-><actor>` hop latencies for this node's inputs."""
        if not self.spec.trace_latency or not self.inputs:
            return None
        hops = [f"{ring.stream}->{ring.consumer}" for ring in self._input_rings]
        return LatencyRecorder(self.config.name, f"node.{self.name}", hops)

    async def _drain(self) -> None:
        readers = [reader for reader, _ in self.inputs]
        recorder = self._hop_recorder()
        handlers = [actor.on_message for _, actor in self.inputs]
        if recorder is not None:
            handlers = [
                traced(handler, recorder.series(f"{ring.stream}->{ring.consumer}").record)
                for handler, ring in zip(handlers, self._input_rings, strict=True)
            ]
        pairs = [
            (reader.poll_decode, handler, actor.name, reader)
            for (reader, actor), handler in zip(self.inputs, handlers, strict=True)
        ]
        wait = make_wait_strategy(self.spec.wait, self.doorbells.get(self.name))
        decoders = self.codec.decode_table
        batch = self.spec.batch
        clock = time.monotonic_ns
        last_yield = clock()
        try:
            while not self.stopping:
                got = 0
                for poll_decode, handler, actor_name, reader in pairs:
                    try:
                        got += poll_decode(decoders, handler, batch)
                    except NodeStopping:
                        self.request_stop()
                        break
                    except Exception as error:
                        self.fail(actor_name, error, "on_message", reader)
                if got:
                    if clock() - last_yield > YIELD_EVERY_NS:
                        await asyncio.sleep(0)
                        last_yield = clock()
                else:
                    await wait.wait_async(readers)
                    last_yield = clock()
        finally:
            wait.close()

    def _heartbeat_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._beat()
        self._heartbeat = loop.call_later(
            self.config.heartbeat_interval_s, self._heartbeat_loop, loop
        )

    def _beat(self) -> None:
        rows = self.health.rows
        now = time.monotonic_ns()
        for actor_name, row in self.rows.items():
            rows["heartbeat_ns"][row] = now
            if actor_name in self.actors:
                readers = [reader for reader, actor in self.inputs if actor.name == actor_name]
                rows["msgs_in"][row] = sum(reader.consumed for reader in readers)
                rows["ring_depth"][row] = sum(reader.depth_bytes() for reader in readers)
                rows["msgs_out"][row] = sum(
                    out.seq for out in self.actors[actor_name].context.outputs.values()
                )

    async def _shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for handle in self.timers.values():
            handle.cancel()
        for task in list(self.tasks):
            task.cancel()
        for name, actor in reversed(self.actors.items()):
            try:
                await actor.on_stop()
            except Exception as error:
                self.fail(name, error, "on_stop")
        self._beat()
        for reader, _ in self.inputs:
            reader.close()
        for output in self.outputs:
            output.close()
        log_event(log, logging.INFO, "node stopped", node=self.name)

    # ------------------------------------------------------ timers and tasks
    def _set_timer(self, actor: str, name: str, interval_s: float, repeat: bool) -> None:
        self._cancel_timer(actor, name)
        loop = asyncio.get_running_loop()
        self.timers[(actor, name)] = loop.call_later(
            interval_s, self._fire, actor, name, interval_s, repeat
        )

    def _cancel_timer(self, actor: str, name: str) -> None:
        handle = self.timers.pop((actor, name), None)
        if handle is not None:
            handle.cancel()

    def _fire(self, actor: str, name: str, interval_s: float, repeat: bool) -> None:
        self.timers.pop((actor, name), None)
        if repeat:
            self._set_timer(actor, name, interval_s, repeat)
        try:
            self.actors[actor].on_timer(name)
        except NodeStopping:
            self.request_stop()
        except Exception as error:
            self.fail(actor, error, f"on_timer({name!r})")

    def _spawn(self, actor: str, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)

        def done(finished: "asyncio.Task[None]") -> None:
            self.tasks.discard(finished)
            if finished.cancelled() or finished.exception() is None:
                return
            if isinstance(finished.exception(), NodeStopping):
                self.request_stop()
            else:
                self.fail(actor, finished.exception(), "task")  # type: ignore[arg-type]

        task.add_done_callback(done)
        return task

    # ------------------------------------------------------------------ failing
    def fail(
        self, actor: str, error: BaseException, stage: str, reader: RingReader | None = None
    ) -> NoReturn:
        """Log the failure with the message that caused it, record it, exit at once."""
        fields: dict[str, Any] = {
            "node": self.name,
            "actor": actor,
            "stage": stage,
            "error": f"{type(error).__name__}: {error}",
        }
        notes = getattr(error, "__notes__", None)
        if notes:
            fields["notes"] = list(notes)
        if reader is not None:
            fields["message"] = self._describe_next(reader)
        fields["traceback"] = "".join(traceback.format_exception(error))
        log_event(log, logging.ERROR, "actor failed", **fields)
        self.health.set_error(self.rows[actor], f"{stage}: {fields['error']}")
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    def _describe_next(self, reader: RingReader) -> str:
        try:
            record = reader.peek()
            if record is None:
                return "<none>"
            type_id, payload = record
            return repr(self.codec.decode(type_id, payload))
        except Exception as error:  # the message itself may be what is broken
            return f"<undecodable: {error}>"
