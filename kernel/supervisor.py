"""The supervisor tree, with Erlang/OTP semantics.

Leaves are nodes (OS processes forked by the zygote); inner vertices are
supervisors living in the supervisor process. A supervisor starts its children
in order and stops them in reverse (SIGTERM, then SIGKILL after the node's
shutdown timeout). When a child fails (exits, or its heartbeat stops advancing
and it is killed) the supervisor applies its strategy:

- one_for_one: restart that child;
- one_for_all: stop the other children (reverse order), restart all in order;
- rest_for_one: stop the children started after it (reverse), restart it and them.

Restart types: `permanent` always, `transient` only after an abnormal exit,
`temporary` never. More than `max_restarts` restarts within `period_s` fails the
supervisor: it stops its children and its parent handles it as a failed child.
The root failing fails the run.

All decisions run in one task, one event at a time, so strategies never
interleave; process exits reported while a strategy is running are queued.

Every wait on a node is a wait on its incarnation's exit future (`NodeProcess`),
which the zygote client settles whatever happens: the node exits, the zygote
dies, or the client stops. So no stop or kill can wait forever, and a pid the
OS reuses for a later incarnation is never mistaken for an earlier one.
"""

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field

from config.schema import NodeConfig, SupervisorConfig, SystemConfig
from kernel.health import HealthTable, State
from kernel.logs import log_event
from kernel.zygote_client import NodeProcess, ZygoteClient

log = logging.getLogger("kernel.supervisor")

READY_POLL_S = 0.001


class SupervisorFailed(Exception):
    """A supervisor exceeded its restart intensity (or could not start)."""

    def __init__(self, supervisor: "Supervisor", reason: str) -> None:
        super().__init__(f"supervisor {supervisor.name!r} failed: {reason}")
        self.supervisor = supervisor


@dataclass(eq=False)
class NodeChild:
    spec: NodeConfig
    parent: "Supervisor"
    rows: list[int]
    process: NodeProcess | None = None
    """The current incarnation (the last one forked), alive or not."""
    state: State = State.STOPPED
    restarts: int = 0
    started_ns: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def restart(self) -> str:
        return self.spec.restart

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0


@dataclass(eq=False)
class Supervisor:
    spec: SupervisorConfig
    parent: "Supervisor | None"
    children: list["NodeChild | Supervisor"] = field(default_factory=list)
    restart_times: deque[float] = field(default_factory=deque)
    state: State = State.STOPPED

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def restart(self) -> str:
        return self.spec.restart

    def allow_restart(self) -> bool:
        """Record a restart; False when it exceeds max_restarts within period_s."""
        now = time.monotonic()
        self.restart_times.append(now)
        while self.restart_times and now - self.restart_times[0] > self.spec.period_s:
            self.restart_times.popleft()
        return len(self.restart_times) <= self.spec.max_restarts

    def nodes(self) -> list[NodeChild]:
        out: list[NodeChild] = []
        for child in self.children:
            out.extend([child] if isinstance(child, NodeChild) else child.nodes())
        return out


class SupervisorTree:
    def __init__(self, config: SystemConfig, health: HealthTable, zygote: ZygoteClient) -> None:
        self.config = config
        self.health = health
        self.zygote = zygote
        nodes = {node.name: node for node in config.nodes}
        supervisors = {sup.name: sup for sup in config.supervisors}

        def build(name: str, parent: Supervisor | None) -> Supervisor:
            sup = Supervisor(supervisors[name], parent)
            for child in supervisors[name].children:
                if child in nodes:
                    sup.children.append(NodeChild(nodes[child], sup, health.rows_of(child)))
                else:
                    sup.children.append(build(child, sup))
            return sup

        self.root = build(config.root, None)
        self.events: asyncio.Queue[tuple[NodeChild, NodeProcess]] = asyncio.Queue()
        self.hang_killed: set[NodeProcess] = set()
        """Incarnations killed for a stopped heartbeat, until their exit is seen."""
        self.failed = asyncio.Event()
        self.failure: str | None = None
        self._stopping = False
        self._hang_task: asyncio.Task[None] | None = None
        self._event_task: asyncio.Task[None] | None = None

    def _supervision_ended(self, task: "asyncio.Task[None]") -> None:
        """A supervision task must never end on its own: if one does, fail the run."""
        if task.cancelled() or self.failed.is_set():
            return
        error = task.exception()
        self.failure = f"supervision task ended: {error!r}"
        log_event(log, logging.ERROR, "supervision task ended", error=repr(error))
        self.failed.set()

    # -------------------------------------------------------------- exits
    def _exited(self, child: NodeChild, process: NodeProcess, _: "asyncio.Future[int]") -> None:
        # Queued whatever the child's state: _process_events decides, in order, whether
        # the exit is news (a running incarnation failed) or expected (stopped, replaced).
        self.events.put_nowait((child, process))

    def zygote_lost(self) -> None:
        """The zygote died, and every node with it; the client has settled their exits."""
        self.failure = "the zygote died"
        self.failed.set()

    # ------------------------------------------------------- health writes
    def _record(self, child: NodeChild, state: State, status: int | None = None) -> None:
        child.state = state
        rows = self.health.rows
        for row in child.rows:
            # The state last: a reader that sees it finds the fields it describes written.
            rows["pid"][row] = child.pid
            rows["restarts"][row] = child.restarts
            if status is not None:
                rows["exit_status"][row] = status
            rows["state"][row] = int(state)

    # ---------------------------------------------------- start and stop
    async def start(self) -> None:
        """Start the whole tree in order; raises SupervisorFailed if any start fails."""
        loop = asyncio.get_running_loop()
        self._event_task = loop.create_task(self._process_events())
        self._hang_task = loop.create_task(self._watch_heartbeats())
        for task in (self._event_task, self._hang_task):
            task.add_done_callback(self._supervision_ended)
        await self._start_supervisor(self.root)

    async def _start_supervisor(self, sup: Supervisor) -> None:
        sup.restart_times.clear()
        sup.state = State.RUNNING
        for child in sup.children:
            if not await self._start_child(child):
                await self._stop_supervisor(sup)
                raise SupervisorFailed(sup, f"child {child.name!r} failed to start")

    async def _start_child(self, child: "NodeChild | Supervisor") -> bool:
        if isinstance(child, Supervisor):
            try:
                await self._start_supervisor(child)
            except SupervisorFailed:
                return False
            return True
        return await self._start_node(child)

    async def _start_node(self, child: NodeChild) -> bool:
        """Fork the node and wait until it reports ready; False if it dies or times out."""
        started = time.monotonic()
        process = await self.zygote.spawn(child.name)
        pid = process.pid
        child.process = process
        child.started_ns = time.monotonic_ns()
        died = process.exited
        # Even if it already exited (both reports in one read), the callback still runs.
        died.add_done_callback(functools.partial(self._exited, child, process))
        self._record(child, State.STARTING)
        rows = self.health.rows
        deadline = started + child.spec.start_timeout_s
        while not all(int(rows["ready_pid"][row]) == pid for row in child.rows):
            if died.done():
                self._record(child, State.FAILED, died.result())
                log_event(
                    log,
                    logging.ERROR,
                    "node died while starting",
                    node=child.name,
                    pid=pid,
                    status=died.result(),
                )
                return False
            if time.monotonic() > deadline:
                log_event(
                    log,
                    logging.ERROR,
                    "node did not become ready",
                    node=child.name,
                    pid=pid,
                    timeout_s=child.spec.start_timeout_s,
                )
                self._record(child, State.FAILED, await self._kill(child))
                return False
            await asyncio.sleep(READY_POLL_S)
        self._record(child, State.RUNNING)
        log_event(
            log,
            logging.INFO,
            "node started",
            node=child.name,
            pid=pid,
            start_ms=round((time.monotonic() - started) * 1e3, 2),
            restarts=child.restarts,
        )
        return True

    async def _kill(self, child: NodeChild) -> int:
        assert child.process is not None
        died = child.process.exited
        if not died.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signal.SIGKILL)
        # Shielded: cancelling this waiter (a stop) must not cancel the exit itself,
        # which others wait on and read.
        return await asyncio.shield(died)

    async def _stop_node(self, child: NodeChild) -> None:
        # STOPPING too: a stop interrupted by cancellation (the tree's stop cancels a
        # strategy mid-way) left a node that was told to go but not waited for.
        alive = (State.RUNNING, State.STARTING, State.STOPPING)
        if child.state not in alive or child.process is None:
            return
        self._record(child, State.STOPPING)
        died = child.process.exited
        if not died.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(died), child.spec.shutdown_timeout_s)
            except TimeoutError:
                log_event(
                    log,
                    logging.WARNING,
                    "node ignored SIGTERM, killing",
                    node=child.name,
                    pid=child.pid,
                    timeout_s=child.spec.shutdown_timeout_s,
                )
                await self._kill(child)
        self._record(child, State.STOPPED, died.result())

    async def _stop_supervisor(self, sup: Supervisor) -> None:
        for child in reversed(sup.children):
            await self._stop_child(child)
        sup.state = State.STOPPED

    async def _stop_child(self, child: "NodeChild | Supervisor") -> None:
        if isinstance(child, Supervisor):
            await self._stop_supervisor(child)
        else:
            await self._stop_node(child)

    async def stop(self) -> None:
        """Stop the whole tree, children in reverse start order."""
        self._stopping = True
        for task in (self._hang_task, self._event_task):
            if task is not None:
                task.cancel()
        # Let a strategy that was mid-way unwind first, so that it does not signal or
        # fork concurrently with the stop; whatever it left half done, the stop finishes.
        for task in (self._hang_task, self._event_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._stop_supervisor(self.root)

    # ------------------------------------------------------------ failures
    async def _process_events(self) -> None:
        while True:
            child, process = await self.events.get()
            self.hang_killed.discard(process)
            if self.failed.is_set() or child.process is not process:
                continue  # the run is failing (zygote died), or that incarnation was replaced
            if self._stopping or child.state != State.RUNNING:
                continue  # expected: it was being stopped, or failed while starting
            pid, status = process.pid, process.exited.result()
            self._record(child, State.FAILED if status else State.STOPPED, status)
            log_event(
                log,
                logging.WARNING,
                "node exited",
                node=child.name,
                pid=pid,
                status=status,
                restart=child.restart,
            )
            try:
                await self._child_failed(child.parent, child, abnormal=status != 0)
            except SupervisorFailed as failure:
                self.failure = str(failure)
                log_event(log, logging.ERROR, "root supervisor failed", reason=self.failure)
                self.failed.set()
                return

    async def _child_failed(
        self, sup: Supervisor, child: "NodeChild | Supervisor", abnormal: bool
    ) -> None:
        """Apply `sup`'s strategy to a failed child; escalate when it gives up."""
        while True:
            try:
                await self._apply_strategy(sup, child, abnormal)
                return
            except SupervisorFailed as failure:
                if sup.parent is None:
                    raise
                log_event(
                    log,
                    logging.ERROR,
                    "supervisor failed, escalating",
                    supervisor=sup.name,
                    parent=sup.parent.name,
                    reason=str(failure),
                )
                child, sup, abnormal = sup, sup.parent, True

    async def _apply_strategy(
        self, sup: Supervisor, child: "NodeChild | Supervisor", abnormal: bool
    ) -> None:
        if child.restart == "temporary" or (child.restart == "transient" and not abnormal):
            log_event(
                log,
                logging.INFO,
                "child not restarted",
                supervisor=sup.name,
                child=child.name,
                restart=child.restart,
            )
            if isinstance(child, Supervisor):
                await self._stop_supervisor(child)
            return
        failed: NodeChild | Supervisor | None = child
        while failed is not None:
            if not sup.allow_restart():
                log_event(
                    log,
                    logging.ERROR,
                    "restart intensity exceeded",
                    supervisor=sup.name,
                    max_restarts=sup.spec.max_restarts,
                    period_s=sup.spec.period_s,
                )
                await self._stop_supervisor(sup)
                raise SupervisorFailed(sup, "restart intensity exceeded")
            index = sup.children.index(failed)
            if sup.spec.strategy == "one_for_one":
                affected = [failed]
            elif sup.spec.strategy == "one_for_all":
                affected = list(sup.children)
            else:
                affected = sup.children[index:]
            log_event(
                log,
                logging.WARNING,
                "restarting",
                supervisor=sup.name,
                strategy=sup.spec.strategy,
                failed=failed.name,
                children=[c.name for c in affected],
            )
            for other in reversed(affected):
                if other is not failed:
                    await self._stop_child(other)
            if isinstance(failed, Supervisor):
                await self._stop_supervisor(failed)
            failed = None
            for restarted in affected:
                if isinstance(restarted, NodeChild):
                    restarted.restarts += 1
                if not await self._start_child(restarted):
                    failed = restarted
                    break

    # ------------------------------------------------------------- hangs
    async def _watch_heartbeats(self) -> None:
        """Kill nodes whose heartbeat stopped; their exit then runs the strategy."""
        timeouts = [node.heartbeat_timeout_s for node in self.config.nodes]
        period = min(0.5, max(0.02, min(timeouts) / 4)) if timeouts else 0.5
        while True:
            await asyncio.sleep(period)
            for child, silent_s in self._find_hung(time.monotonic_ns()):
                log_event(
                    log,
                    logging.ERROR,
                    "node hung: heartbeat stopped, killing",
                    node=child.name,
                    pid=child.pid,
                    silent_s=round(silent_s, 3),
                )
                assert child.process is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGKILL)

    def _find_hung(self, now_ns: int) -> list[tuple[NodeChild, float]]:
        """Running nodes silent past their heartbeat timeout, each incarnation only once.

        Keyed by incarnation, not pid: the OS may give a restarted node a pid that an
        earlier, hung incarnation had, and the new one must still be watched. An entry
        goes when its exit is processed, so the set holds only kills in flight.
        """
        rows = self.health.rows
        hung: list[tuple[NodeChild, float]] = []
        for child in self.root.nodes():
            process = child.process
            if child.state != State.RUNNING or process is None or process in self.hang_killed:
                continue
            last = min(int(rows["heartbeat_ns"][row]) for row in child.rows)
            silent_s = (now_ns - max(last, child.started_ns)) / 1e9
            if silent_s > child.spec.heartbeat_timeout_s:
                self.hang_killed.add(process)
                hung.append((child, silent_s))
        return hung
