"""The supervisor's side of the zygote: start it, ask for nodes, hear of exits."""

import asyncio
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable

import msgspec
import orjson

from config.schema import SystemConfig
from kernel.zygote import MAX_PACKET

ExitListener = Callable[[int, int], None]


class ZygoteError(RuntimeError):
    """The zygote could not start or died."""


class ZygoteClient:
    def __init__(self, config: SystemConfig, doorbells: dict[str, int]) -> None:
        self.config = config
        self.doorbells = doorbells
        self.on_exit: ExitListener = lambda pid, status: None
        self.process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[int] | None = None
        self._spawns: deque[tuple[str, asyncio.Future[int]]] = deque()
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
        while True:
            try:
                packet = self._sock.recv(MAX_PACKET)
            except BlockingIOError:
                return
            if not packet:
                self._lost()
                return
            event = orjson.loads(packet)
            kind = event["ev"]
            if kind == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(event["pid"])
            elif kind == "spawned":
                node, future = self._spawns.popleft()
                if node != event["node"]:
                    raise ZygoteError(f"zygote spawned {event['node']!r}, expected {node!r}")
                if not future.done():
                    future.set_result(event["pid"])
            elif kind == "exited":
                self.on_exit(event["pid"], event["status"])

    def _lost(self) -> None:
        assert self._sock is not None
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        error = ZygoteError("the zygote died")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        while self._spawns:
            _, future = self._spawns.popleft()
            if not future.done():
                future.set_exception(error)
        if self.on_death is not None:
            self.on_death()

    async def spawn(self, node: str) -> int:
        """Fork a node; returns its pid."""
        if self._sock is None:
            raise ZygoteError("the zygote is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._spawns.append((node, future))
        self._sock.send(orjson.dumps({"op": "spawn", "node": node}))
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
