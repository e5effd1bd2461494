"""The supervisor's side of the zygote: start it, ask for nodes, hear of exits.

Each spawn returns a `NodeProcess`, one incarnation of a node, whose `exited`
future the client itself creates when the zygote reports the fork. The zygote
always reports a fork before that child's exit, so an exit is never lost, even
when both reports arrive in one read, before the spawner has run again.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import orjson

from config.schema import SystemConfig
from kernel.zygote import MAX_PACKET


class ZygoteError(RuntimeError):
    """The zygote could not start or died."""


@dataclass(eq=False)
class NodeProcess:
    """One forked node process; compared by identity, so a reused pid is another one."""

    node: str
    pid: int
    exited: "asyncio.Future[int]"
    """Its exit code, or minus the signal that killed it."""


class ZygoteClient:
    def __init__(self, config: SystemConfig, doorbells: dict[str, int]) -> None:
        self.config = config
        self.doorbells = doorbells
        self.process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[int] | None = None
        self._spawns: deque[tuple[str, asyncio.Future[NodeProcess]]] = deque()
        self._live: dict[int, NodeProcess] = {}
        self._error: ZygoteError | None = None
        self.on_death: Callable[[], None] | None = None

    async def start(self, timeout_s: float = 120.0) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # A session of its own: Ctrl-C in a terminal signals the foreground process group,
        # which must reach only the supervisor, so that it stops the tree in order.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernel.zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno(), *self.doorbells.values()],
            start_new_session=True,
        )
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        ours.send(
            orjson.dumps({"config": msgspec.to_builtins(self.config), "doorbells": self.doorbells})
        )
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except TimeoutError:
            raise ZygoteError(f"the zygote was not ready within {timeout_s}s") from None

    def _on_readable(self) -> None:
        assert self._sock is not None
        while self._error is None:
            try:
                packet = self._sock.recv(MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as error:
                self._lost(ZygoteError(f"the zygote died ({error})"))
                return
            if not packet:
                self._lost(ZygoteError("the zygote died"))
                return
            event = orjson.loads(packet)
            kind = event["ev"]
            if kind == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(event["pid"])
            elif kind == "spawned":
                self._spawned(event["node"], event["pid"])
            elif kind == "exited":
                process = self._live.pop(event["pid"], None)
                if process is not None and not process.exited.done():
                    process.exited.set_result(event["status"])

    def _spawned(self, node: str, pid: int) -> None:
        process = NodeProcess(node, pid, asyncio.get_running_loop().create_future())
        # Registered before anything else runs: the same read may carry its exit next.
        self._live[pid] = process
        expected, future = self._spawns.popleft()
        if node != expected:
            # The protocol is broken and no later answer can be trusted: end the zygote
            # (its nodes die with it) so that every waiter is settled, not left hanging.
            if self.process is not None:
                self.process.kill()
            self._lost(ZygoteError(f"zygote spawned {node!r}, expected {expected!r}"))
            return
        if future.done():
            # The spawner was cancelled while waiting: nobody would ever stop this node.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        future.set_result(process)

    def _lost(self, error: ZygoteError) -> None:
        assert self._sock is not None
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        self._settle(error)
        if self.on_death is not None:
            self.on_death()

    def _settle(self, error: ZygoteError) -> None:
        """The zygote is gone and its nodes with it (PR_SET_PDEATHSIG): answer every waiter."""
        self._error = error
        while self._spawns:
            _, future = self._spawns.popleft()
            if not future.done():
                future.set_exception(error)
        for process in self._live.values():
            if not process.exited.done():
                process.exited.set_result(-signal.SIGKILL)
        self._live.clear()

    async def spawn(self, node: str) -> NodeProcess:
        """Fork a node. Cancelling the wait kills the node once it is forked."""
        if self._error is not None:
            raise self._error
        if self._sock is None:
            raise ZygoteError("the zygote is not running")
        future: asyncio.Future[NodeProcess] = asyncio.get_running_loop().create_future()
        self._spawns.append((node, future))
        try:
            self._sock.send(orjson.dumps({"op": "spawn", "node": node}))
        except OSError as error:
            self._spawns.pop()  # never sent, so never answered
            raise ZygoteError(f"the zygote died ({error})") from None
        return await future

    async def stop(self) -> None:
        if self._sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self.process is not None:
            # Closing the socket makes the zygote exit; its nodes die with it.
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), 5)
            except TimeoutError:
                self.process.kill()
                self.process.wait()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if self._error is None:
            self._settle(ZygoteError("the zygote was stopped"))
