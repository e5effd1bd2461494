"""Instructions per message for each stage of the order path, counted by callgrind.

The e2e benchmark's wall-clock figures move from run to run on a shared machine; the
number of instructions a stage executes per message does not. This module counts them
with `valgrind --tool=callgrind` (`perf stat` is not available on every VM):

- `publish <stream>`: `OutputStream.publish` as the node wires it (kernel/node.py
  `_output`, `_trace_publish`, `_resend_outbox`): stamp seq and times, encode, append to
  the producer's outbox, write every ring of the stream (the fan-out of the e2e
  topology), trace the publish;
- `deliver <stream>-><actor>`: one `RingReader.poll_decode` of one record, as the node's
  drain loop calls it, with the dispatch table the node builds (`NodeRuntime._inbox`,
  kernel/inbox.py: decode, dedupe on seq, in-flight/done words, hop tracing) around a
  handler that does nothing (a C builtin), so the actor's own work is not counted here;
- `handler <actor> (<message>)`: the actor's real handler, its output ports unwired
  (`UnwiredOutput`: the publish it makes is the next `publish` stage, not counted twice).

Messages are realistic: `record` runs the e2e configuration (bench/e2e.py `bench_config`:
the feed's synthetic market, 5 s bars, the baseline tactical strategy, the risk limits
there) in-process, the rings drained in the order the hot node drains them, and keeps
what every actor was handed. A stage then replays its actor's whole input sequence, so
its state evolves as in the e2e run, but only the messages of the measured type count:
callgrind starts uninstrumented (imports, numba and the preparation run at about the
speed of `--tool=none`), the driver switches instrumentation on once everything is
prepared and toggles collection on and off around each measured operation with
callgrind's client requests (CALLGRIND_START_INSTRUMENTATION, CALLGRIND_TOGGLE_COLLECT;
issued from Python through ctypes, see `_Callgrind`). The toggles' own cost is the
`overhead` stage, subtracted from every other one.

Each stage runs twice under callgrind, with N and 2N measured messages, and the result is
(I(2N) - I(N)) / N: start-up, imports, preparation and the first messages' warm-up
cancel out. The interpreter runs with PYTHONHASHSEED=0; what still differs between runs
(clock readings, hence which histogram buckets fill past the small-int cache, and the
allocator's state) moves a stage's count by up to about 1 %, where its wall-clock latency
moves by tens of percent. Counts are guest instructions: a clock read is a system call
under valgrind, not the vDSO code it runs natively, and cache misses and branch
mispredictions, which instructions do not show, still cost time. Handler stages stamp each
message's envelope just before it is handled, and publish stages mark the handler begun
just before the publish, so the latency histograms the kernel and the venue record see
live values, not the recording's age.

`python -m bench.instructions` prints the table; `python -m bench.instructions --stage NAME
--count N --inputs FILE` is the driver that runs under callgrind.
"""

import argparse
import asyncio
import ctypes
import functools
import gc
import json
import math
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from bench.report import Case, SuiteReport

REPO = Path(__file__).resolve().parent.parent
QUICK_MESSAGES = 100
"""N of the smoke run (`--quick`): counts still repeat, start-up still cancels out."""
TICKS_PER_S = 2500.0
"""The e2e default market pace (it decides nothing here but is part of its config)."""
CHUNK = 256
"""Records written to a ring (or published) between two uncollected drains/commits."""


# ------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """One measured operation: `kind` publish, deliver, handler or overhead."""

    kind: str
    stream: str = ""
    """The stream published or delivered (publish, deliver)."""
    actor: str = ""
    """The producer (publish), the consumer (deliver) or the handling actor (handler)."""
    message: str = ""
    """The measured message type (handler), by name."""
    source: str = ""
    """Whose recorded inputs hold the stream's messages (publish: the on-path consumer)."""


PATH = (
    # (stream, producer, the consumer on the order path)
    ("ticks", "feed", "bars"),
    ("bars", "bars", "tactical"),
    ("intents", "tactical", "risk"),
    ("verdicts", "risk", "execution"),
    ("orders", "execution", "venue"),
)
HANDLERS = {
    # after the deliver stage of each hop: (label, actor, message type)
    "ticks": [("bars (tick)", "bars", "Tick"), ("venue (tick)", "venue", "Tick")],
    "bars": [("tactical (bar)", "tactical", "Bar")],
    "intents": [("risk (intent)", "risk", "TradeIntent")],
    "verdicts": [("execution (verdict)", "execution", "RiskVerdict")],
    "orders": [("venue (order)", "venue", "OrderRequest")],
}


def _stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    for stream, producer, consumer in PATH:
        stages[f"publish {stream} (stamp+encode+write)"] = Stage(
            "publish", stream, producer, source=consumer
        )
        stages[f"deliver {stream}->{consumer} (poll+decode+dispatch)"] = Stage(
            "deliver", stream, consumer
        )
        for label, actor, message in HANDLERS[stream]:
            stages[f"handler {label}"] = Stage("handler", actor=actor, message=message)
    return stages


STAGES = _stages()
"""The table, in order along the order path."""
OVERHEAD = "overhead"
"""Two collection toggles around nothing: subtracted from every stage."""


# ------------------------------------------------------------------- callgrind control
_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T'), callgrind.h
_TOGGLE_COLLECT = _BASE + 2
_START_INSTRUMENTATION = _BASE + 4
_STOP_INSTRUMENTATION = _BASE + 5
_RUNNING_ON_VALGRIND = 0x1001
# valgrind.h's client request for amd64 as a function `f(args, default)`: the magic
# preamble (four rotations of rdi summing to 128 bits, a no-op on a real CPU), then
# `xchg rbx, rbx` with rax -> the 6 request words and rdx = the default, which a real
# CPU returns unchanged and valgrind replaces with the request's result.
_REQUEST_AMD64 = bytes.fromhex(
    "4889f8"  # mov rax, rdi
    "4889f2"  # mov rdx, rsi
    "48c1c703"  # rol rdi, 3
    "48c1c70d"  # rol rdi, 13
    "48c1c73d"  # rol rdi, 61
    "48c1c733"  # rol rdi, 51
    "4887db"  # xchg rbx, rbx
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)


class _Callgrind:
    """Valgrind client requests from Python: a few bytes of machine code in an executable
    page, called through ctypes. On a real CPU every request returns its default (0)."""

    def __init__(self) -> None:
        machine = os.uname().machine
        if machine not in ("x86_64", "amd64"):
            raise RuntimeError(
                f"callgrind client requests are only wired for x86-64, not {machine}"
            )
        self._page = mmap.mmap(
            -1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
        )
        self._page.write(_REQUEST_AMD64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        prototype = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
        self._call = prototype(address)
        self._args: list[ctypes.Array[ctypes.c_size_t]] = []

    def request(self, code: int) -> int:
        args = (ctypes.c_size_t * 6)(code)
        return self._call(ctypes.addressof(args), 0)

    def bound(self, code: int) -> Callable[[], int]:
        """The request as a call without arguments to rebuild: for the measured loops."""
        args = (ctypes.c_size_t * 6)(code)
        self._args.append(args)
        return functools.partial(self._call, ctypes.addressof(args), 0)

    @property
    def running_on_valgrind(self) -> bool:
        return self.request(_RUNNING_ON_VALGRIND) > 0


# --------------------------------------------------------------------- configuration
def _bench_config_text(system: str) -> str:
    from bench.e2e import bench_config

    return bench_config(
        system, Path(tempfile.gettempdir()) / f"{system}.jsonl", TICKS_PER_S, "spin"
    )


def _load_config(text: str, system: str) -> Any:
    """The e2e SystemConfig under the name `system` (the TOML's own name is replaced)."""
    from config.loader import load_config

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(text)
    try:
        config = load_config(handle.name, environ={})
    finally:
        os.unlink(handle.name)
    return msgspec.structs.replace(config, name=system)


def _system_name() -> str:
    return f"bench-instr-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _remove_segments(system: str) -> None:
    from ringbuf import shm

    for name in shm.segment_names(f"{system}."):
        shm.unlink(name)


# ------------------------------------------------------------------------- recording
class Delivery(msgspec.Struct, array_like=True):
    """One record an actor was handed, as it lay in its ring."""

    stream: str
    type_id: int
    payload: bytes


class Recording(msgspec.Struct):
    config: str
    """The e2e config (TOML) the messages come from."""
    inputs: dict[str, list[Delivery]]
    """Actor -> the messages it handled, in the order it was handed them."""


def _actor_context(name: str, node: str, outputs: dict[str, Any], system: str) -> Any:
    from kernel.actor import ActorContext

    def no_timer(*args: object) -> None:
        return None

    def no_task(actor: str, coro: Any) -> Any:
        coro.close()
        raise RuntimeError("the instruction bench runs no actor tasks")

    return ActorContext(name, node, outputs, no_timer, no_timer, no_task, system)


def _start(actors: Sequence[Any]) -> None:
    async def start() -> None:
        for actor in actors:
            await actor.on_start()

    asyncio.run(start())


def _needs(stage: Stage) -> tuple[str, str]:
    """(actor, stream or message type) of which a stage measures one per message."""
    if stage.kind == "handler":
        return stage.actor, stage.message
    if stage.kind == "publish":
        return stage.source, stage.stream
    return stage.actor, stage.stream


def record(need: int, config_text: str | None = None) -> Recording:
    """Run the e2e actors in-process until every stage has `need` messages to measure.

    The feed's market publishes tick by tick on real rings; after each tick the hot
    node's inputs are drained in its order (`Topology.drain_order`) until all are empty:
    at the e2e pace the node has one tick's consequences in flight at a time.
    """
    from actors.common.ticks import make_ticks
    from actors.feed.market import SyntheticMarket
    from config.loader import import_object
    from kernel.codec import Codec
    from kernel.streams import OutputStream
    from kernel.topology import Topology
    from ringbuf import RingReader, RingWriter, create_ring

    system = _system_name()
    config_text = config_text or _bench_config_text("bench-instructions")
    config = _load_config(config_text, system)
    topology = Topology(config)
    codec = Codec.from_union(import_object(config.messages, "messages"))
    inputs: dict[str, list[Delivery]] = {}
    counts: dict[tuple[str, str], int] = {}
    needs = {_needs(stage) for stage in STAGES.values()}
    with ExitStack() as stack:
        stack.callback(_remove_segments, system)
        for ring in topology.rings:
            create_ring(ring.name, ring.capacity, ring.full_policy, schema=codec.schema)
        streams = {}
        for stream in sorted({s for a in config.actors for s in a.outputs.values()}):
            writers = [
                RingWriter(ring.name, schema=codec.schema)
                for ring in topology.rings_of_stream(stream)
            ]
            streams[stream] = OutputStream(stream, writers, codec)
            stack.callback(streams[stream].close)
        hot = topology.nodes[topology.node_of[PATH[0][2]]]
        actors = {}
        for name in hot.actors:
            actor_config = topology.actors[name]
            cls = import_object(actor_config.cls, name)
            ports = {port: streams[stream] for port, stream in actor_config.outputs.items()}
            context = _actor_context(name, hot.name, ports, system)
            actors[name] = cls(cls.parse_params(actor_config.params, topology.config), context)
        _start(list(actors.values()))
        polls = []
        for ring in topology.drain_order(hot.name):
            actor = actors[ring.consumer]
            handlers = {
                kind: getattr(actor, method) for kind, method in type(actor).handlers().items()
            }
            seen = inputs.setdefault(ring.consumer, [])
            reader = RingReader(ring.name, schema=codec.schema)
            stack.callback(reader.close)
            keep = _keeper(codec, ring.consumer, ring.stream, handlers, seen, counts)
            polls.append(functools.partial(reader.poll, keep, 256))
        feed = topology.actors[PATH[0][1]]
        feed_params = import_object(feed.cls, feed.name).parse_params(feed.params, topology.config)
        market = SyntheticMarket(feed_params)
        ticks = streams[feed.outputs["ticks"]]
        while any(counts.get(key, 0) < need for key in needs):
            batch = market.next_batch(1024)
            for tick in make_ticks(**batch._asdict()):
                ticks.publish(tick)
                while sum(poll() for poll in polls):
                    pass
    return Recording(config=config_text, inputs=inputs)


def _keeper(
    codec: Any,
    actor: str,
    stream: str,
    handlers: dict[type, Callable[[Any], object]],
    seen: list[Delivery],
    counts: dict[tuple[str, str], int],
) -> Callable[[int, memoryview], None]:
    """A ring handler that keeps each record the actor handles, then has it handled."""

    def keep(type_id: int, view: memoryview) -> None:
        payload = bytes(view)
        msg = codec.decode(type_id, payload)
        handler = handlers.get(type(msg))
        if handler is None:  # a type the actor ignores (acks and rejects for risk)
            return
        seen.append(Delivery(stream, type_id, payload))
        for key in ((actor, stream), (actor, type(msg).__name__)):
            counts[key] = counts.get(key, 0) + 1
        handler(msg)

    return keep


# ---------------------------------------------------------------------------- driver
class _Bench:
    """What a driver run holds: the config under its own system name, its segments."""

    def __init__(self, recording: Recording, stack: ExitStack) -> None:
        from config.loader import import_object
        from kernel.codec import Codec
        from kernel.topology import Topology

        self.system = _system_name()
        stack.callback(_remove_segments, self.system)
        self.config = _load_config(recording.config, self.system)
        self.topology = Topology(self.config)
        self.codec = Codec.from_union(import_object(self.config.messages, "messages"))
        self.recording = recording
        self.stack = stack
        self._health: Any = None

    def deliveries(self, actor: str, stream: str = "") -> list[Delivery]:
        return [d for d in self.recording.inputs[actor] if not stream or d.stream == stream]

    def decode(self, delivery: Delivery) -> Any:
        return self.codec.decode(delivery.type_id, delivery.payload)

    def create_rings(self, stream: str) -> None:
        from ringbuf import create_ring

        for ring in self.topology.rings_of_stream(stream):
            # Without a doorbell: the e2e hot node spins, and its rings have none.
            create_ring(ring.name, ring.capacity, ring.full_policy, schema=self.codec.schema)

    def node(self, actor: str) -> Any:
        """A NodeRuntime of `actor`'s node, its latency recorder made as `run` makes it."""
        from kernel.health import HealthTable
        from kernel.node import NodeRuntime

        if self._health is None:
            self._health = HealthTable.create(self.system, self.topology.actor_rows())
        runtime = NodeRuntime(self.config, self.topology.node_of[actor], {}, self._health)
        runtime.recorder = runtime._recorder()
        return runtime

    def hosted(self, runtime: Any, actor: str) -> Any:
        """The node's record of an actor, with a bare Actor standing in for it."""
        from kernel.actor import Actor
        from kernel.durable import DurableRecord
        from kernel.node import HostedActor

        durable = DurableRecord(self.system, actor, runtime.run_id)
        self.stack.callback(durable.close)
        stand_in = Actor(None, _actor_context(actor, runtime.name, {}, self.system))
        return HostedActor(stand_in, durable, runtime.rows[actor])

    def actor(self, name: str) -> Any:
        """The actor, started, with every output port unwired (publishing costs nothing)."""
        from config.loader import import_object
        from kernel.streams import UnwiredOutput

        actor_config = self.topology.actors[name]
        cls = import_object(actor_config.cls, name)
        ports = {port: UnwiredOutput(port, self.codec, name) for port in cls.outputs}
        context = _actor_context(name, self.topology.node_of[name], ports, self.system)
        actor = cls(cls.parse_params(actor_config.params), context)
        _start([actor])
        return actor


Step = tuple[Callable[[Any], object] | None, Any, Callable[[], object] | None]
"""(measured operation or None, its argument, uncollected work to do after it)."""


@dataclass
class Plan:
    steps: list[Step]
    poll: tuple[Callable[..., int], Any, Any] | None = None
    """Deliver stages: (poll_decode, decoders, table), called as the node's drain does."""

    @property
    def measured(self) -> int:
        return sum(1 for operation, _, _ in self.steps if operation is not None)


def _repeated(repeat: int, operation: Callable[..., object]) -> Callable[[Any], None]:
    def twice_or_more(arg: Any) -> None:
        for _ in range(repeat):
            operation(arg)

    return twice_or_more


def _publish_plan(bench: _Bench, stage: Stage, count: int, repeat: int) -> Plan:
    from ringbuf import RingReader

    bench.create_rings(stage.stream)
    runtime = bench.node(stage.actor)
    output = runtime._output(stage.stream, stage.actor)
    runtime._trace_publish(output)
    hosted = bench.hosted(runtime, stage.actor)
    hosted.outputs = [output]
    runtime._resend_outbox(hosted)  # the outbox, wired as `_attach` wires it
    handling = runtime.handling

    def handler_begins() -> None:
        # Every producer but the feed publishes from inside a handler: the node's publish
        # tracing then also records how long the handler took to get there.
        handling.ns = time.monotonic_ns()

    readers = [
        RingReader(ring.name, schema=bench.codec.schema)
        for ring in bench.topology.rings_of_stream(stage.stream)
    ]
    for closing in (*readers, output, hosted.outbox):
        bench.stack.callback(closing.close)
    records = bench.deliveries(stage.source, stage.stream)[:count]
    if len(records) < count:
        raise RuntimeError(f"the recording holds {len(records)} {stage.stream}, not {count}")
    outbox = hosted.outbox

    def commit() -> None:  # what the node's commit pass and the consumers do meanwhile
        outbox.clear()
        for reader in readers:
            reader.poll(_discard_record, 1 << 20)

    publish = output.publish if repeat == 1 else _repeated(repeat, output.publish)
    steps: list[Step] = []
    for i, record_ in enumerate(records):
        msg = bench.decode(record_)
        msg.seq = msg.ts_ns = 0  # as its producer made it
        if stage.actor == PATH[0][1]:
            msg.origin_ns = 0  # a tick starts its chain: its publish stamps the origin
        if stage.actor != PATH[0][1]:
            steps.append((None, None, handler_begins))
        last = i % CHUNK == CHUNK - 1 or repeat > 1
        steps.append((publish, msg, commit if last else None))
    return Plan(steps)


def _deliver_plan(bench: _Bench, stage: Stage, count: int, repeat: int) -> Plan:
    from ringbuf import RingWriter

    bench.create_rings(stage.stream)
    runtime = bench.node(stage.actor)
    index, ring = next(
        (i, ring)
        for i, ring in enumerate(bench.topology.inputs_of(stage.actor))
        if ring.stream == stage.stream
    )
    records = bench.deliveries(stage.actor, stage.stream)[: count * repeat]
    if len(records) < count * repeat:
        raise RuntimeError(f"the recording holds {len(records)} {stage.stream}, not {count}")
    kinds = {bench.codec.types[d.type_id - 1] for d in records}
    hosted = bench.hosted(runtime, stage.actor)
    # The node's own inbox for the ring, dispatching to a handler that does nothing.
    inbox = runtime._inbox(ring, hosted, index, dict.fromkeys(kinds, _discard), ())
    writer = RingWriter(ring.name, schema=bench.codec.schema)
    bench.stack.callback(inbox.reader.close)
    bench.stack.callback(writer.close)
    decoders = bench.codec.decode_table
    poll_decode = inbox.reader.poll_decode

    def poll(_: object) -> None:
        poll_decode(decoders, inbox.table, 1, 0, False)

    operation = _repeated(repeat, poll) if repeat > 1 else poll
    steps: list[Step] = []
    for start in range(0, len(records), CHUNK * repeat):
        chunk = records[start : start + CHUNK * repeat]

        def refill(chunk: list[Delivery] = chunk) -> None:
            inbox.reader.commit()  # as the node's commit pass does
            for delivery in chunk:
                msg = bench.decode(delivery)
                msg.ts_ns = time.monotonic_ns()  # published just now, as in a live run
                writer.write(*bench.codec.encode(msg))

        steps.append((None, None, refill))
        steps += [(operation, None, None)] * (len(chunk) // repeat)
    return Plan(steps, (poll_decode, decoders, inbox.table) if repeat == 1 else None)


def _handler_plan(bench: _Bench, stage: Stage, count: int, repeat: int) -> Plan:
    actor = bench.actor(stage.actor)
    handlers = {kind: getattr(actor, method) for kind, method in type(actor).handlers().items()}
    steps: list[Step] = []
    measured = 0
    for delivery in bench.deliveries(stage.actor):
        msg = bench.decode(delivery)
        handler = handlers[type(msg)]
        if type(msg).__name__ != stage.message:
            steps.append((None, None, functools.partial(handler, msg)))
            continue
        steps.append((None, None, functools.partial(_arrives, msg)))
        steps.append((handler if repeat == 1 else _repeated(repeat, handler), msg, None))
        measured += 1
        if measured == count:
            return Plan(steps)
    raise RuntimeError(f"the recording holds {measured} {stage.message} for {stage.actor}")


def _arrives(msg: Any) -> None:
    """Stamp the envelope as if the message (and its chain) had been published just now:
    a handler that reads the clock against it (the venue's spans) sees live values."""
    now = time.monotonic_ns()
    msg.ts_ns = msg.origin_ns = now
    if hasattr(msg, "intent_ns"):
        msg.intent_ns = now


def _overhead_plan(bench: _Bench, stage: Stage, count: int, repeat: int) -> Plan:
    return Plan([(_discard, None, None)] * count)


def _discard_record(type_id: int, view: memoryview) -> None:
    return None


_discard = id
"""The handler of the deliver stages: a C builtin of one argument, the cheapest call."""

_PLANS = {
    "publish": _publish_plan,
    "deliver": _deliver_plan,
    "handler": _handler_plan,
    "overhead": _overhead_plan,
}


def _run_plan(plan: Plan, toggle: Callable[[], object], overhead: bool) -> None:
    """Collect each measured operation alone: the loops differ only in the call between
    the two toggles (the `overhead` loop has none, and is what the others subtract)."""
    if overhead:
        for _ in plan.steps:
            toggle()
            toggle()
    elif plan.poll is not None:
        poll_decode, decoders, table = plan.poll
        for operation, _, after in plan.steps:
            if operation is not None:
                toggle()
                poll_decode(decoders, table, 1, 0, False)  # as NodeRuntime._drain polls
                toggle()
            if after is not None:
                after()
    else:
        for operation, arg, after in plan.steps:
            if operation is not None:
                toggle()
                operation(arg)
                toggle()
            if after is not None:
                after()


def drive(stage_name: str, count: int, inputs: Path | None = None, repeat: int = 1) -> int:
    """Run one stage for `count` messages (`repeat` operations each), collecting only the
    measured operations when under callgrind; returns how many were measured."""
    stage = Stage("overhead") if stage_name == OVERHEAD else STAGES[stage_name]
    if inputs is not None:
        recording = msgspec.msgpack.decode(inputs.read_bytes(), type=Recording)
    else:
        recording = record(count * repeat)
    callgrind = _Callgrind()
    with ExitStack() as stack:
        bench = _Bench(recording, stack)
        # Everything is made before the measurement starts: the inputs decoded, the
        # actors started, the rings created and filled, the calls bound.
        plan = _PLANS[stage.kind](bench, stage, count, repeat)
        gc.collect()
        gc.freeze()  # as the node does once its actors are started
        toggle = callgrind.bound(_TOGGLE_COLLECT)
        callgrind.request(_START_INSTRUMENTATION)
        _run_plan(plan, toggle, stage.kind == "overhead")
        callgrind.request(_STOP_INSTRUMENTATION)
        gc.unfreeze()
    return plan.measured


# -------------------------------------------------------------------------- measuring
@dataclass
class StageCount:
    name: str
    per_message: float
    """Instructions per message (the overhead subtracted)."""
    counts: tuple[int, int]
    """Instructions collected with N and with 2N messages."""
    seconds: float
    """Wall time of both callgrind runs."""


def valgrind_path() -> str:
    path = shutil.which("valgrind")
    if path is None:
        raise RuntimeError("valgrind not found: apt-get install valgrind")
    return path


def _collected(stage: str, count: int, inputs: Path, workdir: Path, repeat: int = 1) -> int:
    """Instructions callgrind collects for one driver run."""
    out = workdir / f"callgrind.{uuid.uuid4().hex[:8]}.out"
    command = [
        valgrind_path(),
        "-q",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--stage",
        stage,
        "--count",
        str(count),
        "--repeat",
        str(repeat),
        "--inputs",
        str(inputs),
    ]
    nice = shutil.which("nice")
    if nice is not None:  # share the machine politely: the counts do not depend on it
        command = [nice, "-n", "19", *command]
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"callgrind run of {stage!r} x{count} failed ({result.returncode}):\n"
            f"{result.stderr[-4000:]}"
        )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if not report["valgrind"]:
        raise RuntimeError("the driver's client requests did not reach valgrind")
    if report["measured"] != count:
        raise RuntimeError(f"{stage!r} measured {report['measured']} messages, not {count}")
    try:
        return _totals(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def _totals(text: str) -> int:
    """The event total of a callgrind out file (`totals:`, else `summary:`)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("totals", "summary") and value.strip():
            found[key] = int(value.split()[0])
    if "totals" in found:
        return found["totals"]
    if "summary" in found:
        return found["summary"]
    raise RuntimeError("no totals in the callgrind output")


def _difference(
    stage: str, messages: int, inputs: Path, workdir: Path, repeat: int = 1
) -> tuple[float, tuple[int, int], float]:
    started = time.monotonic()
    single = _collected(stage, messages, inputs, workdir, repeat)
    double = _collected(stage, 2 * messages, inputs, workdir, repeat)
    return (double - single) / messages, (single, double), time.monotonic() - started


def count_stages(
    messages: int = 2000,
    stages: Sequence[str] | None = None,
    repeat: int = 1,
    progress: Callable[[StageCount], None] | None = None,
) -> list[StageCount]:
    """Instructions per message of each stage (all by default), with their raw counts."""
    valgrind_path()
    if messages < 1:
        raise ValueError("messages must be at least 1")
    names = list(STAGES) if stages is None else list(stages)
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known: {list(STAGES)}")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        workdir = Path(tmp)
        inputs = workdir / "inputs.msgpack"
        inputs.write_bytes(msgspec.msgpack.encode(record(2 * messages * repeat)))
        per, counts, seconds = _difference(OVERHEAD, messages, inputs, workdir)
        overhead = StageCount(OVERHEAD, per, counts, seconds)
        results = [overhead]
        if progress is not None:
            progress(overhead)
        for name in names:
            per, counts, seconds = _difference(name, messages, inputs, workdir, repeat)
            result = StageCount(name, per - overhead.per_message, counts, seconds)
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def measure(messages: int = 2000) -> dict[str, float]:
    """Instructions per message of every stage of the order path (see the module doc)."""
    return {
        result.name: result.per_message
        for result in count_stages(messages)
        if result.name != OVERHEAD
    }


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--messages", type=int, default=2000, help="N (the runs use N and 2N)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: N = {QUICK_MESSAGES}")
    parser.add_argument("--no-enforce", action="store_true", help="(no budgets to enforce)")
    parser.add_argument(
        "--only", action="append", metavar="STAGE", help="measure this stage (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the stages")
    driver = parser.add_argument_group("driver (runs under callgrind)")
    driver.add_argument("--stage", help="run this stage once, measured")
    driver.add_argument("--count", type=int, help="measured messages")
    driver.add_argument("--repeat", type=int, default=1, help="operations per message")
    driver.add_argument("--inputs", type=Path, help="a recording (default: record now)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(STAGES))
        return 0
    if args.stage is not None:
        if args.count is None:
            parser.error("--stage needs --count")
        if args.stage != OVERHEAD and args.stage not in STAGES:
            parser.error(f"unknown stage {args.stage!r} (see --list)")
        measured = drive(args.stage, args.count, args.inputs, args.repeat)
        under = _Callgrind().running_on_valgrind
        report = {"stage": args.stage, "count": args.count, "measured": measured}
        print(json.dumps({**report, "valgrind": under}))
        return 0
    try:
        valgrind_path()
    except RuntimeError as missing:
        print(f"bench instructions: not measured: {missing}", flush=True)
        return 0
    messages = QUICK_MESSAGES if args.quick else args.messages
    started = time.monotonic()
    width = max(map(len, STAGES)) + 2
    print(f"{'stage':<{width}}{'instructions/message':>22}{'callgrind s':>13}", flush=True)

    def show(result: StageCount) -> None:
        print(
            f"{result.name:<{width}}{result.per_message:>22,.0f}{result.seconds:>13.1f}",
            flush=True,
        )

    results = count_stages(messages, args.only, progress=show)
    report = SuiteReport("instructions")
    for result in results:
        value = round(result.per_message)
        report.cases.append(Case(result.name, "instr/msg", messages, *[value] * 5))
    report.notes.append(
        f"N = {messages} messages per run (runs of N and 2N); the {OVERHEAD} row is "
        f"subtracted from the others; {time.monotonic() - started:.0f} s in all"
    )
    finite = all(math.isfinite(result.per_message) for result in results)
    return max(report.finish(enforce=not args.no_enforce), 0 if finite else 1)


if __name__ == "__main__":
    sys.exit(main())
