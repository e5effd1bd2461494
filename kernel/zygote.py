"""The zygote: a warm process that forks nodes.

A fresh interpreter that imports numpy and friends takes a second or more; the
order path cannot be down that long. The supervisor starts one zygote per run,
which imports everything the nodes need (the configured preloads, the message
union, every actor class) and then forks a node on request in a few
milliseconds. It reaps its children and reports each exit to the supervisor.

Protocol (SOCK_SEQPACKET, one JSON object per packet):
  supervisor -> zygote: {"config": ..., "doorbells": {...}} once, then
                        {"op": "spawn", "node": NAME}
  zygote -> supervisor: {"ev": "ready"}, {"ev": "spawned", "node": NAME, "pid": PID},
                        {"ev": "exited", "pid": PID, "status": CODE or -SIGNAL}
Both the zygote and its nodes die with their parent (PR_SET_PDEATHSIG), so a
killed supervisor leaves no orphans.
"""

import ctypes
import importlib
import logging
import os
import selectors
import signal
import socket
import sys
from typing import Any, NoReturn

import msgspec
import orjson

from config.loader import import_object
from config.schema import SystemConfig
from kernel.logs import log_event, setup_logging

PR_SET_PDEATHSIG = 1
MAX_PACKET = 1 << 20

log = logging.getLogger("kernel.zygote")


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def exit_code(status: int) -> int:
    """A waitpid status as an exit code, or minus the signal that killed it."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(orjson.dumps(message))


def preload(config: SystemConfig) -> None:
    """Import and warm up everything a node needs, so a fork starts hot."""
    import asyncio

    import uvloop

    from kernel.codec import Codec
    from kernel.node import NodeRuntime  # noqa: F401  (imported for the forks)

    for module in config.zygote.preload:
        importlib.import_module(module)
    Codec.from_union(import_object(config.messages, "messages"))
    for cls in {import_object(actor.cls, f"actors.{actor.name}.cls") for actor in config.actors}:
        cls.warm_up()
    # The first event loop pays for lazy imports and setup; pay it here, once.
    uvloop.run(asyncio.sleep(0))


def run_node(config: SystemConfig, node: str, doorbells: dict[str, int], zygote: int) -> NoReturn:
    """In the forked child: become the node and never return into the zygote."""
    code = 1
    try:
        die_with_parent()
        if os.getppid() != zygote:
            # The zygote died between the fork and the prctl, so no signal will come:
            # an orphan node nobody supervises must not run.
            os._exit(1)

        import uvloop

        from kernel.health import HealthTable
        from kernel.node import NodeRuntime

        setup_logging(f"node:{node}", config.logging.level, config.logging.file)
        health = HealthTable.attach(config.name)
        runtime = NodeRuntime(config, node, doorbells, health)
        code = uvloop.run(runtime.run())
    except BaseException as error:  # anything escaping the runtime is a node failure
        log_event(
            log, logging.ERROR, "node crashed", node=node, error=f"{type(error).__name__}: {error}"
        )
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(code)


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    die_with_parent()
    setup = orjson.loads(control.recv(MAX_PACKET))
    config = msgspec.convert(setup["config"], SystemConfig)
    doorbells: dict[str, int] = setup["doorbells"]
    setup_logging("zygote", config.logging.level, config.logging.file)
    preload(config)

    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    send(control, {"ev": "ready", "pid": os.getpid()})
    log_event(
        log,
        logging.INFO,
        "zygote ready",
        preloaded=sorted(sys.modules.keys() & {*config.zygote.preload}),
    )

    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                packet = control.recv(MAX_PACKET)
                if not packet:
                    return  # the supervisor is gone; our children die with us
                request = orjson.loads(packet)
                node = request["node"]
                zygote = os.getpid()
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    selector.close()
                    control.close()
                    os.close(wake_read)
                    os.close(wake_write)
                    run_node(config, node, doorbells, zygote)
                send(control, {"ev": "spawned", "node": node, "pid": pid})
            else:
                while True:
                    try:
                        os.read(wake_read, 4096)
                    except BlockingIOError:
                        break
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    send(control, {"ev": "exited", "pid": pid, "status": exit_code(status)})


if __name__ == "__main__":
    main()
