"""The supervisor and its zygote client when a child dies at an unlucky moment.

A supervisor tree runs in the test's own event loop on a real zygote forking real
nodes, as `kernel.system` runs one, so a test can hold the zygote's reports back
(remove the client's reader) and hand them over in one read, or stop the tree in
the middle of a strategy. Every wait has a timeout: a regression fails, never hangs.
"""

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from config.loader import load_config
from config.schema import SystemConfig
from kernel.health import HealthTable, State
from kernel.supervisor import NodeChild, SupervisorFailed, SupervisorTree
from kernel.topology import Topology
from kernel.zygote import MAX_PACKET
from kernel.zygote_client import NodeProcess, ZygoteClient, ZygoteError
from ringbuf.procs import is_alive
from tests.systems import REPO, base_config, write_config

IDLE = "tests.kernel_actors:Idle"
GUARD_S = 30.0
"""How long any single wait may take before the test fails: a hang guard, not a budget."""


async def until(condition: Callable[[], bool], what: str, timeout_s: float = GUARD_S) -> None:
    """Poll `condition` from the event loop (so the tree keeps running) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.001)


def packets_queued(sock: socket.socket) -> int:
    """How many whole packets wait in `sock` (at least; 0, 1 or 2 is all we ask)."""
    import array
    import fcntl
    import termios

    pending = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, pending)  # all bytes queued, every packet
    if pending[0] == 0:
        return 0
    first = len(sock.recv(MAX_PACKET, socket.MSG_PEEK))
    return 1 if pending[0] == first else 2


class LiveTree:
    """A health table, a started zygote and a SupervisorTree over them (not started)."""

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.health = HealthTable.create(config.name, Topology(config).actor_rows())
        self.zygote = ZygoteClient(config, {})
        self.tree = SupervisorTree(config, self.health, self.zygote)
        self.zygote.on_death = self.tree.zygote_lost
        self.held = False

    @property
    def sock(self) -> socket.socket:
        assert self.zygote._sock is not None
        return self.zygote._sock

    def hold_reports(self) -> None:
        """Stop reading the zygote's reports: they queue up in the socket."""
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.held = True

    def deliver_reports(self) -> None:
        """Read again: everything queued meanwhile arrives in one `_on_readable` call."""
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self.zygote._on_readable)
        self.held = False

    def node(self, name: str) -> NodeChild:
        (child,) = [c for c in self.tree.root.nodes() if c.name == name]
        return child

    def row(self, actor: str) -> dict[str, Any]:
        (row,) = [r for r in self.health.snapshot() if r["actor"] == actor]
        return row

    async def close(self) -> None:
        if self.held and self.zygote._sock is not None:
            self.deliver_reports()
        try:
            await asyncio.wait_for(self.tree.stop(), GUARD_S)
        finally:
            await self.zygote.stop()
            self.health.unlink()
            self.health.close()


@pytest.fixture
async def live_tree(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the zygote imports the test actors
    opened: list[LiveTree] = []

    async def open_tree(path: Path) -> LiveTree:
        live = LiveTree(load_config(path))
        opened.append(live)
        await live.zygote.start()
        return live

    yield open_tree
    for live in opened:
        await live.close()


def config_of(tmp_path: Path, nodes: list[tuple[str, str, dict]], **root: Any) -> Path:
    """One actor per node: (node, actor class, extra node fields); actor `<node>_actor`."""
    config = base_config(tmp_path)
    config["actors"] = []
    config["nodes"] = []
    for name, cls, fields in nodes:
        params = fields.pop("params", None)
        actor = {"name": f"{name}_actor", "cls": cls, **({"params": params} if params else {})}
        config["actors"].append(actor)
        config["nodes"].append({"name": name, "actors": [actor["name"]], "wait": "backoff"})
        config["nodes"][-1].update(fields)
    config["supervisors"] = [{"name": "root", "children": [n for n, _, _ in nodes], **root}]
    return write_config(tmp_path / "system.toml", config)


async def test_an_exit_read_together_with_its_spawn_fails_the_start_instead_of_hanging(
    tmp_path, live_tree
):
    """Finding 1: "spawned" and "exited" of one child in one read.

    The exit used to reach the supervisor before it knew the pid and was dropped; the
    start then timed out and its kill awaited an exit that had already come: forever.
    """
    path = config_of(
        tmp_path, [("quitter", "tests.supervisor_actors:ExitAtStart", {"start_timeout_s": 2})]
    )
    live = await live_tree(path)
    live.hold_reports()
    start = asyncio.ensure_future(live.tree.start())
    await until(lambda: packets_queued(live.sock) >= 2, "both reports queued")
    live.deliver_reports()
    with pytest.raises(SupervisorFailed, match="'quitter' failed to start"):
        await asyncio.wait_for(start, GUARD_S)
    row = live.row("quitter_actor")
    assert row["state"] == "FAILED"
    assert row["exit_status"] == 1  # the node's own exit, not a kill after a timeout


async def test_the_client_settles_an_exit_that_arrives_in_the_same_read_as_its_spawn(
    tmp_path,
):
    """Finding 1 at the client: a packet pair fed to it directly."""
    client = ZygoteClient(load_config(config_of(tmp_path, [("n", IDLE, {})])), {})
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    client._sock = ours
    loop = asyncio.get_running_loop()
    loop.add_reader(ours.fileno(), client._on_readable)
    try:
        spawn = asyncio.ensure_future(client.spawn("n"))
        theirs.settimeout(GUARD_S)
        request = await asyncio.to_thread(theirs.recv, MAX_PACKET)
        assert orjson.loads(request) == {"op": "spawn", "node": "n"}
        # Both before the client reads anything (a pid nobody signals: this test kills
        # nothing, and the client signals only spawns that were cancelled).
        theirs.send(orjson.dumps({"ev": "spawned", "node": "n", "pid": 999_999_999}))
        theirs.send(orjson.dumps({"ev": "exited", "pid": 999_999_999, "status": 3}))
        process = await asyncio.wait_for(spawn, GUARD_S)
        assert process.pid == 999_999_999
        assert await asyncio.wait_for(asyncio.shield(process.exited), GUARD_S) == 3
    finally:
        loop.remove_reader(ours.fileno())
        ours.close()
        theirs.close()


async def test_a_cancelled_spawn_kills_the_node_it_forked(tmp_path):
    """Finding 4: a spawner cancelled (the tree stopping) before the fork was reported
    left a node nobody knew of, alive until the zygote went."""
    client = ZygoteClient(load_config(config_of(tmp_path, [("n", IDLE, {})])), {})
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    client._sock = ours
    loop = asyncio.get_running_loop()
    loop.add_reader(ours.fileno(), client._on_readable)
    forked = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        spawn = asyncio.ensure_future(client.spawn("n"))
        theirs.settimeout(GUARD_S)
        await asyncio.to_thread(theirs.recv, MAX_PACKET)
        spawn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await spawn
        theirs.send(orjson.dumps({"ev": "spawned", "node": "n", "pid": forked.pid}))
        status = await asyncio.wait_for(asyncio.to_thread(forked.wait), GUARD_S)
        assert status == -signal.SIGKILL
    finally:
        loop.remove_reader(ours.fileno())
        ours.close()
        theirs.close()
        if forked.poll() is None:
            forked.kill()
            forked.wait()


async def test_a_dead_zygote_settles_every_exit_and_refuses_spawns(tmp_path, live_tree):
    """Finding 4: nothing waits forever on a zygote that is gone."""
    live = await live_tree(config_of(tmp_path, [("n", IDLE, {})]))
    process = await asyncio.wait_for(live.zygote.spawn("n"), GUARD_S)
    assert live.zygote.process is not None
    live.zygote.process.kill()
    assert await asyncio.wait_for(asyncio.shield(process.exited), GUARD_S) == -signal.SIGKILL
    assert live.tree.failed.is_set() and live.tree.failure == "the zygote died"
    with pytest.raises(ZygoteError):
        await asyncio.wait_for(live.zygote.spawn("n"), GUARD_S)


async def test_a_zygote_killed_right_after_a_fork_leaves_no_orphan_node(tmp_path, live_tree):
    """Finding 4: the zygote dying between a fork and the node's PR_SET_PDEATHSIG left
    the node running forever, reparented and unsupervised.

    Killed as soon as the fork is reported, the zygote often dies inside that window;
    a few zygotes make hitting it at least once likely (nothing fails when it is missed).
    """
    for _ in range(5):
        live = await live_tree(config_of(tmp_path, [("n", IDLE, {})]))
        assert live.zygote.process is not None
        process = await asyncio.wait_for(live.zygote.spawn("n"), GUARD_S)
        live.zygote.process.kill()
        try:
            await until(lambda p=process: not is_alive(p.pid), "the node to die with its zygote")
        finally:
            if is_alive(process.pid):  # the orphan this test found: do not leave it running
                os.kill(process.pid, signal.SIGKILL)


def stopping(live: LiveTree, node: str) -> Callable[[], bool]:
    return lambda: live.node(node).state == State.STOPPING


async def test_stopping_the_tree_mid_strategy_still_stops_the_node_being_stopped(
    tmp_path, live_tree
):
    """Finding 4: the tree's stop cancels a one_for_all that is waiting for a node to go.

    That node was left STOPPING, and the stop skipped it as if it were gone: it kept
    running, unrecorded, until the zygote's exit took it down.
    """
    report = tmp_path / "terms"
    slow = {"shutdown_timeout_s": 60, "params": {"report": str(report)}}
    path = config_of(
        tmp_path,
        [("slow", "tests.supervisor_actors:SecondTermStops", slow), ("b", IDLE, {})],
        strategy="one_for_all",
    )
    live = await live_tree(path)
    await asyncio.wait_for(live.tree.start(), GUARD_S)
    slow_process = live.node("slow").process
    assert slow_process is not None
    os.kill(live.node("b").pid, signal.SIGKILL)  # one_for_all: stop `slow`, restart both
    await until(stopping(live, "slow"), "the strategy to stop `slow`")
    await until(lambda: report.exists() and report.read_text() == "1", "the first SIGTERM")
    await asyncio.wait_for(live.tree.stop(), GUARD_S)  # sends the second one
    assert slow_process.exited.done() and slow_process.exited.result() == 0
    assert live.row("slow_actor")["state"] == "STOPPED"
    assert not is_alive(slow_process.pid)


async def test_stopping_the_tree_while_a_strategy_kills_a_node_neither_fails_nor_hangs(
    tmp_path, live_tree
):
    """Finding 4: the tree's stop cancels a strategy waiting in its SIGKILL for the exit.

    The cancellation used to cancel the node's exit future itself, and the stop then
    read it: CancelledError out of the tree's stop, the run never cleaned up.
    """
    stubborn = {"shutdown_timeout_s": 0.5}
    path = config_of(
        tmp_path,
        [("stubborn", "tests.supervisor_actors:IgnoresTerm", stubborn), ("b", IDLE, {})],
        strategy="one_for_all",
    )
    live = await live_tree(path)
    await asyncio.wait_for(live.tree.start(), GUARD_S)
    process = live.node("stubborn").process
    assert process is not None
    os.kill(live.node("b").pid, signal.SIGKILL)
    await until(stopping(live, "stubborn"), "the strategy to stop `stubborn`")
    # SIGTERM is ignored; after its shutdown timeout the strategy SIGKILLs it and waits
    # for the exit report, which we keep back: the strategy is frozen inside its kill.
    live.hold_reports()
    await until(lambda: not is_alive(process.pid), "the strategy's SIGKILL")
    stop = asyncio.ensure_future(live.tree.stop())
    event_task = live.tree._event_task
    assert event_task is not None
    await until(event_task.done, "the strategy to be cancelled")
    live.deliver_reports()
    await asyncio.wait_for(stop, GUARD_S)
    assert process.exited.result() == -signal.SIGKILL
    assert live.row("stubborn_actor")["state"] == "STOPPED"


async def test_a_hung_node_restarted_under_a_reused_pid_is_watched_again(tmp_path):
    """Finding 2: the hang watcher remembered killed pids forever, so a restarted node
    the OS gave an old pid to was never checked for a hang again.

    A real kernel does not reuse a pid on request, so the two incarnations here share
    one by construction; nothing is signalled (`_find_hung` only decides).
    """
    config = load_config(config_of(tmp_path, [("n", IDLE, {"heartbeat_timeout_s": 0.5})]))
    health = HealthTable.create(config.name, Topology(config).actor_rows())
    try:
        tree = SupervisorTree(config, health, ZygoteClient(config, {}))
        child = tree.root.nodes()[0]
        loop = asyncio.get_running_loop()
        reused_pid = 999_999_999

        def incarnation() -> NodeProcess:
            process = NodeProcess("n", reused_pid, loop.create_future())
            child.process, child.started_ns = process, 1
            process.exited.add_done_callback(functools.partial(tree._exited, child, process))
            tree._record(child, State.RUNNING)  # and its heartbeat never came (0)
            return process

        now = time.monotonic_ns()
        first = incarnation()
        assert [c for c, _ in tree._find_hung(now)] == [child]
        assert tree._find_hung(now) == []  # killed once, not again while it dies
        first.exited.set_result(-signal.SIGKILL)
        second = incarnation()  # the restart, under the same pid
        assert [c for c, _ in tree._find_hung(now)] == [child]
        # The watcher's memory is only of kills in flight: processed exits prune it.
        second.exited.set_result(-signal.SIGKILL)
        tree._stopping = True  # the exits are processed, no strategy runs
        events = loop.create_task(tree._process_events())
        try:
            await until(lambda: not tree.hang_killed, "the exits to prune the watcher")
        finally:
            events.cancel()
    finally:
        health.unlink()
        health.close()
