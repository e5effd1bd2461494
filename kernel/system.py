"""`grandmodel run`: bring a configured system up, keep it up, bring it down.

Order of start: remove stale segments of a crashed run of the same name, create
the health table, the rings and the doorbells, start the zygote, start the
supervisor tree. The run ends on SIGINT/SIGTERM, after `--duration`, or when the
root supervisor fails (then the configured `failure_hooks` run first); then the tree
stops in reverse order, the zygote exits
and the run's segments are unlinked (durable ones, the actors' records and a latched kill
switch, stay for the next run). Exit status: 0 clean stop, 1 root failure.
"""

import asyncio
import logging
import os
import signal
import time

import msgspec

from config.loader import import_object
from config.schema import SystemConfig
from kernel.codec import Codec
from kernel.durable import read_record
from kernel.health import HealthTable
from kernel.logs import log_event
from kernel.node import RUN_ID_ENV
from kernel.outbox import outbox_name, outbox_payload
from kernel.supervisor import SupervisorFailed, SupervisorTree
from kernel.topology import Topology
from kernel.zygote_client import ZygoteClient, ZygoteError
from ringbuf import (
    Doorbell,
    RingError,
    Segment,
    create_ring,
    destroy_ring,
    read_info,
    remove_run,
    remove_stale,
    shm,
)

log = logging.getLogger("kernel.system")


def keep_off_spinning_cores(config: SystemConfig) -> None:
    """Pin this process (the supervisor; the zygote inherits it) to the cores no spinning
    node holds: a spinning node owns its core, and a supervisor check or a fork landing
    there would stall the order path for a whole time slice. Left alone when every
    core spins."""
    spinning = {core for node in config.nodes if node.wait == "spin" for core in node.cores}
    allowed = os.sched_getaffinity(0)
    rest = allowed - spinning
    if rest and rest != allowed:
        os.sched_setaffinity(0, rest)


class AlreadyRunning(RuntimeError):
    """Another run of the same system name is alive."""


class System:
    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.topology = Topology(config)
        self.segments: list[Segment] = []
        self.doorbells: dict[str, Doorbell] = {}
        self.health: HealthTable | None = None
        self.zygote: ZygoteClient | None = None
        self.tree: SupervisorTree | None = None

    def _create_resources(self) -> int:
        """Rings, health table and doorbells; the run id. A crashed run's rings and outboxes
        are taken over (`_recover_crashed_run`), and its id with them."""
        recovered = self._recover_crashed_run()
        # What a crashed run left (its supervisor, the owner of its RUN segments, is
        # dead, pid and start time compared) and this run did not take over goes; DURABLE
        # state (kill switch, actor records) stays. A live run's table makes the create
        # below fail.
        removed = remove_stale(f"{self.config.name}.")
        if removed:
            log_event(
                log, logging.WARNING, "removed stale segments of a crashed run", segments=removed
            )
        try:
            self.health = HealthTable.create(self.config.name, self.topology.actor_rows())
        except FileExistsError:
            raise AlreadyRunning(
                f"a system named {self.config.name!r} is already running "
                f"(see `grandmodel status --name {self.config.name}`)"
            ) from None
        schema = self._schema()
        for ring in self.topology.rings:
            if recovered is not None:
                self.segments.append(Segment.attach(ring.name, ring.capacity, schema))
            else:
                self.segments.append(
                    create_ring(ring.name, ring.capacity, ring.full_policy, ring.doorbell, schema)
                )
        for node in self.topology.parking_nodes():
            self.doorbells[node.name] = Doorbell.create()
        return recovered if recovered is not None else time.time_ns()

    def _schema(self) -> int:
        return Codec.from_union(import_object(self.config.messages, "messages")).schema

    def _recover_crashed_run(self) -> int | None:
        """Take over the rings and outboxes of a run of this config that crashed whole
        (supervisor included), and continue it: its id, so every actor restarts as after
        a crash of its own node, within the same run. What was in the rings and not yet
        committed by its consumer is delivered, what a producer published after its last
        commit is re-sent from its outbox, and the replay of uncommitted inputs publishes
        nothing twice (README "Delivery contract"). None, and a new run, when the rings are
        not all there, stale and as configured (a clean stop removed them, the config
        changed), an outbox is not of the configured size, or no actor record names the
        run."""
        name = self.config.name
        schema = self._schema()
        for ring in self.topology.rings:
            try:
                header, _ = shm.read_header(ring.name)
                info = read_info(ring.name)
            except (shm.ShmError, RingError, OSError):
                return None
            if not header.stale or (
                info.capacity,
                info.full_policy,
                info.doorbell,
                info.schema,
            ) != (ring.capacity, ring.full_policy, ring.doorbell, schema):
                return None
        run_ids = set()
        for actor in self.topology.actors:
            try:
                record = read_record(name, actor)
            except (shm.ShmError, OSError, msgspec.DecodeError):
                return None
            if record is not None:
                run_ids.add(record.run_id)
        if not run_ids:
            return None
        # An outbox holds what its producer published after its last commit: one that
        # cannot be taken over (its size changed with the config) would lose that.
        payload = outbox_payload(self.config.delivery.outbox_bytes)
        boxes = []
        for actor in self.topology.actors:
            box = outbox_name(name, actor)
            try:
                header, _ = shm.read_header(box)
            except (shm.ShmError, OSError):
                continue
            if header.payload_size != payload:
                return None
            boxes.append(box)
        owner = shm.Owner.current()
        adopted = [
            ring.name
            for ring in self.topology.rings
            if shm.adopt(ring.name, shm.Kind.RING, owner) is not None
        ]
        if len(adopted) < len(self.topology.rings):  # changed since it was checked: a race
            for ring_name in adopted:
                shm.unlink(ring_name)
            return None
        outboxes = sum(shm.adopt(box, shm.Kind.OUTBOX, owner) is not None for box in boxes)
        run_id = max(run_ids)
        log_event(
            log,
            logging.WARNING,
            "recovering a crashed run: its rings and outboxes are taken over",
            run_id=run_id,
            rings=len(self.topology.rings),
            outboxes=outboxes,
        )
        return run_id

    def _release_resources(self) -> None:
        for segment in self.segments:
            destroy_ring(segment)
        self.segments.clear()
        # Every RUN segment this run owns (latency histograms, non-durable snapshots; the
        # health table too, unlinked again below), by the headers' owner and lifetime:
        # DURABLE state (kill switch, actor snapshots) stays for the next run.
        remove_run(f"{self.config.name}.")
        for doorbell in self.doorbells.values():
            doorbell.close()
        self.doorbells.clear()
        if self.health is not None:
            self.health.unlink()
            self.health.close()
            self.health = None

    async def run(self, duration_s: float | None = None) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        started = time.monotonic()
        keep_off_spinning_cores(self.config)
        run_id = self._create_resources()
        # Nodes tell a restart within this run from a new run by this id (the zygote
        # and every node it forks inherit the environment).
        os.environ[RUN_ID_ENV] = str(run_id)
        assert self.health is not None
        code = 0
        try:
            self.zygote = ZygoteClient(
                self.config, {name: bell.fd for name, bell in self.doorbells.items()}
            )
            self.zygote.on_death = stop.set
            await self.zygote.start()
            self.tree = SupervisorTree(self.config, self.health, self.zygote)
            self.zygote.on_death = self.tree.zygote_lost
            await self.tree.start()
            log_event(
                log,
                logging.INFO,
                "system running",
                system=self.config.name,
                nodes=[n.name for n in self.config.nodes],
                start_s=round(time.monotonic() - started, 3),
            )
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.tree.failed.wait()),
            ]
            _done, pending = await asyncio.wait(
                waiters, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            reason = None
            if self.tree.failed.is_set():
                reason = f"root supervisor failed: {self.tree.failure}"
            if self.zygote.process is not None and self.zygote.process.poll() is not None:
                log_event(log, logging.ERROR, "the zygote died")
                reason = reason or "the zygote died"
            if reason is not None:
                code = 1
                self._run_failure_hooks(reason)
        except SupervisorFailed as failure:
            log_event(log, logging.ERROR, "system failed to start", reason=str(failure))
            code = 1
            self._run_failure_hooks(f"failed to start: {failure}")
        except ZygoteError as error:
            log_event(log, logging.ERROR, "zygote failure", reason=str(error))
            code = 1
        finally:
            await self._shutdown()
        log_event(
            log,
            logging.INFO,
            "system stopped",
            system=self.config.name,
            exit_code=code,
            uptime_s=round(time.monotonic() - started, 3),
        )
        return code

    def _run_failure_hooks(self, reason: str) -> None:
        """Call the configured hooks before the tree stops; one that fails is logged and
        the others still run (the shutdown goes on regardless)."""
        for path in self.config.failure_hooks:
            try:
                import_object(path, "failure_hooks")(self.config, reason)
            except Exception as error:
                log_event(log, logging.ERROR, "failure hook failed", hook=path, error=repr(error))
            else:
                log_event(log, logging.WARNING, "failure hook ran", hook=path, reason=reason)

    async def _shutdown(self) -> None:
        if self.tree is not None:
            await self.tree.stop()
        if self.zygote is not None:
            await self.zygote.stop()
        self._release_resources()
