"""A node: one OS process running its actors on a uvloop event loop.

The node attaches its rings (created by the supervisor), builds its actors and restores
their durable records (state, input positions, output seqs), re-sends what a crashed
predecessor had published since its last commit, runs `on_start`, replays what the
predecessor had handled since that commit, then drains its input rings in passes (depth
first, `Topology.drain_order`): every input in a batch without committing, then each
touched actor's record saved, then the rings' read cursors committed (the delivery
contract, kernel/streams.py). It waits the configured way when the rings are empty and
beats a heartbeat into the health table from a loop timer, so a handler stuck in a loop
shows as a hang. Any exception from an actor fails the whole node at once (crash-only):
it is logged with the message that caused it, written to the health table, and the
process exits with status 1.
"""

import asyncio
import gc
import logging
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, NoReturn

import msgspec

from config.loader import import_object
from config.schema import SystemConfig
from kernel.actor import Actor, ActorContext
from kernel.codec import Codec
from kernel.durable import DurableRecord, Quarantine, handled_seq, read_record
from kernel.health import HealthTable, State, run_owner
from kernel.inbox import HopTrace, Inbox, input_key
from kernel.latency import LatencyRecorder
from kernel.logs import log_event
from kernel.outbox import Outbox, OutboxFull
from kernel.streams import NodeStopping, OutputStream, UnwiredOutput
from kernel.topology import RingSpec, Topology
from ringbuf import (
    Doorbell,
    RingReader,
    RingWriter,
    SpinWait,
    UnknownRecordType,
    WaitStrategy,
    make_wait_strategy,
)
from ringbuf._core import Instant

STATE_ENCODER = msgspec.msgpack.Encoder()

log = logging.getLogger("kernel.node")

YIELD_EVERY_NS = 1_000_000  # a node busy with messages still lets its timers run
COMMIT_OVERDUE_FACTOR = 5
"""Commit intervals after which a node whose inputs never go quiet commits anyway."""


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


RUN_ID_ENV = "GRANDMODEL_RUN_ID"
"""Set by the supervisor for its nodes: tells a crash restart from a new run."""


class StateMismatch(RuntimeError):
    """A saved durable state does not decode as the actor's `State` (a changed class)."""


def restore_state(actor: str, state_type: type, saved: bytes) -> Any:
    """The saved state, or a clear failure: never a silent fresh start, which could
    forget what a risk limit depends on."""
    try:
        return msgspec.msgpack.decode(saved, type=state_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise StateMismatch(
            f"the durable state of actor {actor!r} is not a {state_type.__name__} ({error}); "
            f"`grandmodel state reset --actor {actor}` forgets it (keeping its stream "
            "positions)"
        ) from None


class HostedActor:
    """An actor in this node with what the kernel keeps for it."""

    __slots__ = (
        "actor",
        "committed_out",
        "dirty",
        "durable",
        "inboxes",
        "outbox",
        "outputs",
        "replaying",
        "row",
    )

    def __init__(self, actor: Actor, durable: DurableRecord, row: int) -> None:
        self.actor = actor
        self.durable = durable
        self.row = row
        self.inboxes: list[Inbox] = []
        self.outputs: list[OutputStream] = []
        self.outbox: Outbox | None = None
        self.replaying = False
        """Inputs its predecessor handled after the last commit are still to be replayed."""
        self.dirty = False
        self.committed_out = 0

    def published(self) -> int:
        return sum(output.seq for output in self.outputs)

    def has_news(self) -> bool:
        """Whether it handled or published something since its record was last saved."""
        return self.dirty or self.published() != self.committed_out


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
        self.run_id = int(os.environ.get(RUN_ID_ENV, "0"))
        self.quarantine = Quarantine(config.delivery.quarantine_file, config.name)
        self.actors: dict[str, Actor] = {}
        self.hosted: dict[str, HostedActor] = {}
        self.inboxes: list[Inbox] = []
        self.outputs: list[OutputStream] = []
        self.timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.aborted = False
        """A handler was cut short (a publish aborted at stop): its effects are not saved."""
        self._handling = False
        """Inside a drain pass, a timer or a replay: no commit may happen until it ends."""
        self._committed_ns = 0
        self._uncommitted = False
        """Messages were handled since the last commit round began."""
        self._round: list[HostedActor] = []
        """The actors the commit round in progress has yet to save, last first."""
        self._idle: deque[tuple[str, Callable[[], None]]] = deque()
        """Work the actors asked for at the next quiet moment (`Actor.when_idle`), in order."""
        self._record_idle: Callable[[int], None] | None = None
        self._record_warm: Callable[[int], None] | None = None
        self._warmers: list[tuple[str, Callable[[], None]]] = []
        """The hosted actors that override `Actor.keep_warm`, in hosting order."""
        self.stopped = asyncio.Event()
        self._heartbeat: asyncio.TimerHandle | None = None
        self.recorder: LatencyRecorder | None = None
        self.handling = Instant()
        """When the handler running now was handed its message (0: none): set by the
        inboxes, read by the outputs (a handler's time until it publishes)."""
        self._record_commit: Callable[[int], None] | None = None
        self._ready = False
        self._wait: WaitStrategy | None = None
        """The drain loop's wait strategy, once the loop runs (a stop interrupts it)."""

    # ---------------------------------------------------------------- building
    def _attach(self) -> None:
        for actor_name in self.spec.actors:
            actor_config = self.topology.actors[actor_name]
            cls = import_object(actor_config.cls, f"actors.{actor_name}.cls")
            durable = DurableRecord(self.config.name, actor_name, self.run_id)
            record = durable.record
            hosted_outputs: list[OutputStream] = []
            ports: dict[str, OutputStream] = {}
            for port in cls.outputs:
                stream = actor_config.outputs.get(port)
                if stream is None:
                    ports[port] = UnwiredOutput(port, self.codec, actor_name)
                    continue
                output = self._output(stream, actor_name)
                self._trace_publish(output)
                output.seq = self._resume_seq(durable, stream, actor_name)
                ports[port] = output
                hosted_outputs.append(output)
            context = ActorContext(
                actor_name,
                self.name,
                ports,
                self._set_timer,
                self._cancel_timer,
                self._spawn,
                self.config.name,
                durable.new_run,
                self._report_problem,
                self.run_id,
                self._when_idle,
            )
            self.health.rows["problem"][self.rows[actor_name]] = 0  # this process has none yet
            actor = cls(cls.parse_params(actor_config.params, self.config), context)
            if cls.State is not None and record.state:
                if durable.new_run and cls.ephemeral_state:
                    log_event(
                        log, logging.INFO, "ephemeral state of a past run dropped", actor=actor_name
                    )
                else:
                    actor.state = restore_state(actor_name, cls.State, record.state)
            hosted = HostedActor(actor, durable, self.rows[actor_name])
            hosted.outputs = hosted_outputs
            if hosted_outputs:
                self._resend_outbox(hosted)
            hosted.committed_out = hosted.published()
            for index, ring in enumerate(self.topology.inputs_of(actor_name)):
                handlers = actor.input_handlers(ring.stream)
                hosted.inboxes.append(self._inbox(ring, hosted, index, handlers, cls.ignores))
            hosted.replaying = any(inbox.seq < inbox.replay_to for inbox in hosted.inboxes)
            if not hosted.replaying:
                self._end_replay(hosted)
            self.actors[actor_name] = actor
            self.hosted[actor_name] = hosted
            self.inboxes += hosted.inboxes
            self.outputs += hosted_outputs

    def _resend_outbox(self, hosted: HostedActor) -> None:
        """Send what the predecessor published after its last commit again, to every ring
        of its stream, and mark those seqs as already published (kernel/outbox.py)."""
        outbox = Outbox(
            self.config.name,
            hosted.actor.name,
            self.config.delivery.outbox_bytes,
            run_owner(self.config.name),
        )
        hosted.outbox = outbox
        entries = outbox.entries()
        for index, seq, type_id, payload in entries:
            output = hosted.outputs[index]
            output.write(type_id, payload)
            output.replay_until = max(output.replay_until, seq)
            hosted.actor.on_resent(self.codec.decode(type_id, payload))
        if entries:
            log_event(
                log,
                logging.WARNING,
                "re-sent the outbox of the previous process",
                actor=hosted.actor.name,
                messages=len(entries),
            )
        make_room = self._make_room(hosted)
        for index, output in enumerate(hosted.outputs):
            output.outbox = partial(outbox.append, index)
            output.on_outbox_full = make_room

    def _make_room(self, hosted: HostedActor) -> Callable[[], None]:
        def commit() -> None:
            if self._handling:  # a commit now would save a handler's half-done state
                raise OutboxFull(
                    f"actor {hosted.actor.name!r} published more than `delivery.outbox_bytes` "
                    "since its last commit"
                )
            self._commit_actor(hosted)

        return commit

    def _end_replay(self, hosted: HostedActor) -> None:
        """The replay is over: new messages get seqs past everything published so far."""
        hosted.replaying = False
        for output in hosted.outputs:
            output.seq = max(output.seq, output.replay_until)
            output.replay_until = 0

    def _output(self, stream: str, producer: str) -> OutputStream:
        writers = [
            RingWriter(
                ring.name,
                doorbell=self.doorbells.get(ring.node) if ring.doorbell else None,
                schema=self.codec.schema,
            )
            for ring in self.topology.rings_of_stream(stream)
        ]
        return OutputStream(stream, writers, self.codec, self._blocked, producer)

    def _resume_seq(self, durable: DurableRecord, stream: str, producer: str) -> int:
        """The committed seq; in a new run, past every seq a consumer has handled,
        committed or not (the old run's rings are gone, so a replay cannot happen, and
        new messages must neither look like duplicates nor reuse a number a consumer
        acted on after its last commit: a journal's row)."""
        seq = durable.record.outputs.get(stream, 0)
        if durable.new_run:
            key = input_key(stream, producer)
            for ring in self.topology.rings_of_stream(stream):
                record = read_record(self.config.name, ring.consumer)
                if record is not None:
                    seq = max(seq, record.inputs.get(key, 0))
                index = [r.name for r in self.topology.inputs_of(ring.consumer)].index(ring.name)
                seq = max(seq, handled_seq(self.config.name, ring.consumer, index))
        return seq

    def _inbox(
        self,
        ring: RingSpec,
        hosted: HostedActor,
        index: int,
        handlers: dict[type, Callable[[Any], object]],
        ignores: tuple[type, ...],
    ) -> Inbox:
        reader = RingReader(
            ring.name,
            doorbell=self.doorbells.get(self.name) if ring.doorbell else None,
            schema=self.codec.schema,
        )
        durable = hosted.durable
        producer = self.topology.producer_of[ring.stream]
        key = input_key(ring.stream, producer)
        inbox = Inbox(
            reader, ring.stream, producer, ring.consumer, index, durable.record.inputs.get(key, 0)
        )
        # How far the predecessor got: replayed in the first pass, before any commit.
        inbox.replay_to = max(durable.marks(index)[0], inbox.seq)
        crashed = durable.crashed_in(index, key)
        if crashed:
            attempt = durable.count_failure(index, key, crashed, "")
            log_event(
                log,
                logging.WARNING,
                "the previous process died handling a message",
                actor=ring.consumer,
                stream=ring.stream,
                seq=crashed,
                failures=attempt.failures,
            )
        attempt = durable.record.attempts.get(key)
        if attempt is not None and attempt.failures >= self.config.delivery.max_attempts:
            inbox.poison = attempt.seq
        inbox.quarantine = self._quarantine_message
        trace = None
        if self.recorder is not None:
            hop = f"{ring.stream}->{ring.consumer}"
            trace = HopTrace(
                self.recorder.series(hop), self.recorder.series(f"handle {hop}"), self.handling
            )
        inbox.build(self.codec, handlers, ignores, durable.store.scratch_words(), trace)
        return inbox

    # ------------------------------------------------------------------ running
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        apply_placement(self.spec.cores, self.spec.realtime, self.name)
        self._beat()
        self.recorder = self._recorder()
        if self.recorder is not None:
            self._record_commit = self.recorder.series("commit").record
            self._record_idle = self.recorder.series("idle work").record
            self._record_warm = self.recorder.series("keep warm").record
        self._attach()
        for name, actor in self.actors.items():
            try:
                await actor.on_start()
            except Exception as error:
                self.fail(name, error, "on_start")
            self._commit_actor(self.hosted[name])
        self._warmers = [
            (name, actor.keep_warm)
            for name, actor in self.actors.items()
            if type(actor).keep_warm is not Actor.keep_warm
        ]
        # Everything alive now (modules, actors, their state) lives for the whole process:
        # keep it out of the collector so that a full collection stays short on the hot path.
        gc.collect()
        gc.freeze()
        self._trace_pauses()
        self._report_ready()
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
        if self.inboxes:
            await self._drain()
        else:
            await self.stopped.wait()
        await self._shutdown()
        return 0

    def _report_ready(self) -> None:
        """Tell the supervisor this node is up (it starts the next sibling then)."""
        self._ready = True
        pid = os.getpid()
        mask = sum(1 << core for core in os.sched_getaffinity(0))
        for row in self.rows.values():
            self.health.rows["core_mask"][row] = mask
            self.health.rows["ready_pid"][row] = pid

    def _blocked(self) -> bool:
        """A publish waits on a full ring: stay visibly alive; say whether to give up.

        A node still starting (re-sending its predecessor's outbox, or an `on_start` that
        publishes) reports ready here: the consumer it waits for may be a sibling that its
        supervisor starts only after this node is ready, and both would wait forever.
        The supervisor marks the node STOPPING before it sends SIGTERM, and the
        signal itself cannot be handled while the loop is blocked in a write.
        """
        self._beat()
        if not self._ready:
            self._report_ready()
        states = self.health.rows["state"]
        return self.stopping or any(
            int(states[row]) == State.STOPPING for row in self.rows.values()
        )

    def request_stop(self) -> None:
        self.stopping = True
        self.stopped.set()
        if self._wait is not None:
            self._wait.interrupt()  # wake the drain loop: its inputs may stay empty

    def _abort(self) -> None:
        """A publish gave up at stop: the handler that made it did not finish, so neither
        its state nor its input position may be committed (it is redone after restart)."""
        self.aborted = True
        self.request_stop()

    def _recorder(self) -> LatencyRecorder | None:
        """This node's latency histograms (`trace_latency`), by series:

        - `<stream>-><actor>`: publish stamp -> handed to the handler (the hop);
        - `handle <stream>-><actor>`: the handler's run;
        - `publish <stream>`: stamp -> every ring written (encode, outbox, writes);
        - `handler until publish <stream>`: handler begins -> its publish stamp;
        - `commit`: a commit pass; `gc pause`: a garbage collection;
        - `idle work`: a piece of work an actor asked for at a quiet moment (`when_idle`);
        - `keep warm`: the actors' `keep_warm` calls between two empty spin slices.
        """
        if not self.spec.trace_latency:
            return None
        series = ["commit", "gc pause", "idle work", "keep warm"]
        for actor in self.spec.actors:
            for ring in self.topology.inputs_of(actor):
                series += [f"{ring.stream}->{actor}", f"handle {ring.stream}->{actor}"]
            for stream in self.topology.actors[actor].outputs.values():
                series += [f"publish {stream}", f"handler until publish {stream}"]
        return LatencyRecorder(self.config.name, f"node.{self.name}", series)

    def _trace_publish(self, output: OutputStream) -> None:
        """Record each publish of `output`: its cost, and when a handler made it, how
        long the handler took to get there (together with the hops, every microsecond
        of a message's way through the node is in some series)."""
        recorder, handling = self.recorder, self.handling
        if recorder is None:
            return
        record_publish = recorder.series(f"publish {output.name}").record
        record_lead = recorder.series(f"handler until publish {output.name}").record
        clock = time.monotonic_ns

        def traced(stamp_ns: int) -> None:
            record_publish(clock() - stamp_ns)
            since = handling.ns
            if since:
                record_lead(stamp_ns - since)

        output.traced = traced

    def _trace_pauses(self) -> None:
        """Garbage collections: a pause here is a pause of every message in flight."""
        recorder = self.recorder
        if recorder is None:
            return
        record = recorder.series("gc pause").record
        clock = time.monotonic_ns
        started = [0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = clock()
            else:
                record(clock() - started[0])

        gc.callbacks.append(on_gc)

    async def _drain(self) -> None:
        """Drain every input in batches without committing; save the records of the
        actors that handled something, then commit the rings (module docstring of
        kernel/streams.py): a crash anywhere in between redelivers, never loses.

        Group commit keeps the cost of saving a large state off most messages' path, and
        its timing keeps it off their way: the commit runs when the inputs are empty and
        `commit_interval_s` has passed since the last one (a burst of messages is handled
        whole, then committed), or, if the inputs never go quiet, once
        COMMIT_OVERDUE_FACTOR intervals have passed. The heartbeat commits what is left."""
        readers = [inbox.reader for inbox in self.inboxes]
        rank = {
            (ring.stream, ring.consumer): i
            for i, ring in enumerate(self.topology.drain_order(self.name))
        }
        polls = [
            (inbox.reader.poll_decode, inbox.table, inbox, self.hosted[inbox.actor])
            for inbox in sorted(self.inboxes, key=lambda inbox: rank[inbox.stream, inbox.actor])
        ]
        interval_ns = round(self.spec.commit_interval_s * 1e9)
        overdue_ns = COMMIT_OVERDUE_FACTOR * interval_ns
        wait = self._wait = make_wait_strategy(self.spec.wait, self.doorbells.get(self.name))
        if self.stopping:
            wait.interrupt()
        decoders = self.codec.decode_table
        batch = self.spec.batch
        clock = time.monotonic_ns
        last_yield = clock()
        try:
            self._replay(decoders, batch)
            while not self.stopping:
                try:
                    got = self._poll_inputs(polls, decoders, batch)
                except NodeStopping:
                    self._abort()
                    return
                if got:
                    self._uncommitted = True
                    now = clock()
                    if now - self._committed_ns >= overdue_ns:
                        self._commit_pass()
                    if now - last_yield > YIELD_EVERY_NS:
                        await asyncio.sleep(0)
                        last_yield = clock()
                elif self._idle:
                    # Before any commit: the work is for the next message, which may be
                    # on its way (the next bar's decision, prepared).
                    self._run_idle()
                elif self._round or (
                    self._uncommitted
                    and (clock() - self._committed_ns >= interval_ns or self._holding_space())
                ):
                    # One actor per quiet moment, then poll again: a message that came
                    # meanwhile waits for one actor's save at most, not for all of them.
                    self._commit_next()
                elif self._warmers and isinstance(wait, SpinWait):
                    await wait.wait_async(readers, between_slices=self._keep_warm)
                    last_yield = clock()
                else:
                    await wait.wait_async(readers)
                    last_yield = clock()
            if not self.aborted:
                self._drain_sinks(polls, decoders, batch)
        finally:
            wait.close()

    def _poll_inputs(self, polls: list[Any], decoders: tuple[Any, ...], batch: int) -> int:
        """One pass over the inputs, a batch from each: the messages handled."""
        got = 0
        self._handling = True
        for poll_decode, table, inbox, hosted in polls:
            try:
                handled = poll_decode(decoders, table, batch, 0, False)
            except NodeStopping:
                raise
            except Exception as error:
                handled = self._failed_delivery(inbox, error)
            if handled:
                got += handled
                hosted.dirty = True
        self._handling = False
        return got

    def _drain_sinks(self, polls: list[Any], decoders: tuple[Any, ...], batch: int) -> None:
        """A clean stop: what waits in the inputs of actors that publish nothing (the
        journal) is handled before the last commit, for at most half the node's
        `shutdown_timeout_s`. The supervisor stops nodes in reverse start order, so their
        producers, started after them, have stopped: what is left is all there is, and a
        clean stop loses none of it. Actors that publish are not drained: their consumers
        may have stopped (a fill the venue executed now would reach no book), and what
        stays in their inputs is what a restart of the run delivers again."""
        sinks = [poll for poll in polls if not self.topology.actors[poll[2].actor].outputs]
        deadline = time.monotonic_ns() + round(self.spec.shutdown_timeout_s * 5e8)
        try:
            while sinks and time.monotonic_ns() < deadline:
                if not self._poll_inputs(sinks, decoders, batch):
                    return
        except NodeStopping:
            self._abort()

    def _commit_pass(self) -> None:
        """Save the record of every actor with something new, then commit the rings."""
        started = time.monotonic_ns()
        self._uncommitted = False
        self._round.clear()
        for hosted in self.hosted.values():
            if hosted.has_news():
                self._commit_actor(hosted)
        for inbox in self.inboxes:
            inbox.reader.commit()
        self._committed_ns = time.monotonic_ns()
        if self._record_commit is not None:
            self._record_commit(self._committed_ns - started)

    def _when_idle(self, actor: str, work: Callable[[], None]) -> None:
        self._idle.append((actor, work))

    def _keep_warm(self) -> None:
        """Every actor's `keep_warm`, between two empty spin slices."""
        started = time.monotonic_ns()
        for actor, warm in self._warmers:
            try:
                warm()
            except Exception as error:
                self.fail(actor, error, "keep warm")
        if self._record_warm is not None:
            self._record_warm(time.monotonic_ns() - started)

    def _run_idle(self) -> None:
        """One piece of idle work (`Actor.when_idle`); its exception fails the node."""
        actor, work = self._idle.popleft()
        started = time.monotonic_ns()
        try:
            work()
        except Exception as error:
            self.fail(actor, error, "idle work")
        if self._record_idle is not None:
            self._record_idle(time.monotonic_ns() - started)

    def _holding_space(self) -> bool:
        """Whether this node holds a quarter of some input ring handled but uncommitted:
        its producer may be waiting for that space, so the commit must not wait for the
        interval (the node would sleep while the producer waits on it)."""
        for inbox in self.inboxes:
            reader = inbox.reader
            if 4 * (reader.handled_pos - reader.committed_pos) >= reader.info.capacity:
                return True
        return False

    def _commit_next(self) -> None:
        """Save the record of the next actor of the commit round, then commit its rings
        (each actor's record covers its own inputs only, so actors commit one by one as
        well as together). A round is the actors with something new when it starts;
        actors that handle a message meanwhile wait for the next round. Otherwise, with
        messages tens of microseconds apart (a tick feed), the actors that handle every
        message would always be new again, the round would never end, and the node
        would spend its quiet moments committing them over and over."""
        if not self._round:
            self._round = [hosted for hosted in self.hosted.values() if hosted.has_news()]
            self._round.reverse()  # popped from the end, in hosting order
            self._uncommitted = False  # a message handled from now on sets it again
        while self._round:
            hosted = self._round.pop()
            if hosted.has_news():  # not saved meanwhile by an overdue pass
                started = time.monotonic_ns()
                self._commit_actor(hosted)
                for inbox in hosted.inboxes:
                    inbox.reader.commit()
                if self._record_commit is not None:
                    self._record_commit(time.monotonic_ns() - started)
                break
        if not self._round:
            self._committed_ns = time.monotonic_ns()

    def _replay(self, decoders: tuple[Any, ...], batch: int) -> None:
        """Hand each replaying actor the inputs its predecessor had handled after the last
        commit, all before the first commit (a commit mid-replay would mix the two
        incarnations' outputs), then end the replay and commit."""
        replaying = [hosted for hosted in self.hosted.values() if hosted.replaying]
        if not replaying:
            return
        self._handling = True
        for hosted in replaying:
            for inbox in hosted.inboxes:
                while inbox.seq < inbox.replay_to:
                    try:
                        handled = inbox.reader.poll_decode(decoders, inbox.table, batch, 0, False)
                    except Exception as error:
                        handled = self._failed_delivery(inbox, error)
                    if not handled:
                        log_event(
                            log,
                            logging.WARNING,
                            "replay stopped short: the ring holds no more",
                            actor=inbox.actor,
                            stream=inbox.stream,
                            seq=inbox.seq,
                            expected=inbox.replay_to,
                        )
                        break
            self._end_replay(hosted)
            self._commit_actor(hosted)
        for inbox in self.inboxes:
            inbox.reader.commit()
        self._handling = False

    def _commit_actor(self, hosted: HostedActor) -> None:
        """Save the actor's state with its input positions and output seqs. The actor's
        part failing (`before_commit`, `state_to_save`) fails the node, from whichever
        caller: a timer or the heartbeat would otherwise only have asyncio log it."""
        actor = hosted.actor
        try:
            actor.before_commit()
            state = None if type(actor).State is None else actor.state_to_save()
        except Exception as error:
            self.fail(actor.name, error, "commit")
        durable = hosted.durable
        record = durable.record
        for inbox in hosted.inboxes:
            record.inputs[inbox.key] = inbox.seq
        for output in hosted.outputs:
            record.outputs[output.name] = output.seq
        if record.attempts:
            record.attempts = {
                key: attempt
                for key, attempt in record.attempts.items()
                if attempt.seq > record.inputs.get(key, 0)
            }
        if state is not None:
            record.state = STATE_ENCODER.encode(state)
        durable.save()
        if hosted.outbox is not None:
            hosted.outbox.clear()
        hosted.dirty = False
        hosted.committed_out = hosted.published()

    def _failed_delivery(self, inbox: Inbox, error: Exception) -> int:
        """A handler raised (fail the node, counting the attempt), or a record could not
        be decoded (quarantine it now: decoding it again cannot succeed). Returns the
        records consumed."""
        hosted = self.hosted[inbox.actor]
        durable = hosted.durable
        in_flight, done = durable.marks(inbox.index)
        if in_flight > done:
            text = f"{type(error).__name__}: {error}"
            durable.count_failure(inbox.index, inbox.key, in_flight, text)
            self.fail(inbox.actor, error, "on_message", inbox.reader)
        if not isinstance(error, (msgspec.DecodeError, UnknownRecordType)):
            self.fail(inbox.actor, error, "on_message", inbox.reader)
        captured: list[tuple[int, bytes]] = []
        inbox.reader.poll(
            lambda type_id, view: captured.append((type_id, bytes(view))), 1, 0, False
        )
        type_id, payload = captured[0]
        known = 0 < type_id <= len(self.codec.types)
        self.quarantine.put(
            inbox.actor,
            inbox.stream,
            0,
            self.codec.types[type_id - 1].__name__ if known else f"type id {type_id}",
            None,
            payload,
            1,
            f"undecodable: {type(error).__name__}: {error}",
        )
        durable.record.quarantined += 1
        return 1

    def _quarantine_message(self, inbox: Inbox, msg: Any) -> None:
        """Deliver-time: `msg` failed `delivery.max_attempts` times; keep it, skip it."""
        durable = self.hosted[inbox.actor].durable
        attempt = durable.record.attempts.pop(inbox.key, None)
        self.quarantine.put(
            inbox.actor,
            inbox.stream,
            msg.seq,
            type(msg).__name__,
            msgspec.to_builtins(msgspec.structs.asdict(msg)),
            self.codec.encode(msg)[1],
            attempt.failures if attempt else 0,
            (attempt.error if attempt else "") or "its handler kept failing (crash or hang)",
        )
        durable.record.quarantined += 1
        inbox.poison = 0

    def _heartbeat_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._beat()
        # What the drain loop has left uncommitted for long, and the output seqs of actors
        # that publish from tasks (a feed), are committed here: not on every beat, which
        # would stall the messages in flight at a random moment, only when overdue.
        overdue_ns = COMMIT_OVERDUE_FACTOR * round(self.spec.commit_interval_s * 1e9)
        if (
            not self.stopping
            and not self._handling
            and time.monotonic_ns() - self._committed_ns >= overdue_ns
        ):
            self._commit_pass()
        self._heartbeat = loop.call_later(
            self.config.heartbeat_interval_s, self._heartbeat_loop, loop
        )

    def _beat(self) -> None:
        rows = self.health.rows
        now = time.monotonic_ns()
        for actor_name, row in self.rows.items():
            rows["heartbeat_ns"][row] = now
            hosted = self.hosted.get(actor_name)
            if hosted is None:
                continue
            inboxes = hosted.inboxes
            rows["msgs_in"][row] = sum(inbox.reader.consumed for inbox in inboxes)
            rows["ring_depth"][row] = sum(inbox.reader.depth_bytes() for inbox in inboxes)
            rows["msgs_out"][row] = hosted.published()
            rows["duplicates"][row] = sum(inbox.duplicates for inbox in inboxes)
            rows["unhandled"][row] = sum(inbox.unhandled for inbox in inboxes)
            rows["gaps"][row] = sum(inbox.gaps for inbox in inboxes)
            rows["dropped"][row] = sum(inbox.reader.dropped for inbox in inboxes)
            rows["quarantined"][row] = hosted.durable.record.quarantined

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
        if not self.aborted:
            for hosted in self.hosted.values():
                self._commit_actor(hosted)
            for inbox in self.inboxes:
                inbox.reader.commit()
        self._beat()
        for hosted in self.hosted.values():
            hosted.durable.close()
            if hosted.outbox is not None:
                hosted.outbox.close()
        for inbox in self.inboxes:
            inbox.reader.close()
        for output in self.outputs:
            output.close()
        log_event(log, logging.INFO, "node stopped", node=self.name)

    # ------------------------------------------------------ timers and tasks
    def _report_problem(self, actor: str, problem: str | None) -> None:
        row = self.rows[actor]
        # The text before the flag: a reader that sees the problem also sees why.
        if problem is not None:
            self.health.set_error(row, problem)
        self.health.rows["problem"][row] = problem is not None

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
        self._handling = True
        try:
            self.actors[actor].on_timer(name)
        except NodeStopping:
            self._abort()
            return
        except Exception as error:
            self.fail(actor, error, f"on_timer({name!r})")
        self._handling = False
        self._commit_actor(self.hosted[actor])

    def _spawn(self, actor: str, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)

        def done(finished: "asyncio.Task[None]") -> None:
            self.tasks.discard(finished)
            if finished.cancelled() or finished.exception() is None:
                return
            if isinstance(finished.exception(), NodeStopping):
                self._abort()
            else:
                self.fail(actor, finished.exception(), "task")  # type: ignore[arg-type]

        task.add_done_callback(done)
        return task

    # ------------------------------------------------------------------ failing
    def fail(
        self, actor: str, error: BaseException, stage: str, reader: RingReader | None = None
    ) -> NoReturn:
        """Log the failure with the message that caused it, record it, exit at once
        (nothing of the failed pass is committed: it is redelivered)."""
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
