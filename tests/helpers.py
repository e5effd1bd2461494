"""Helpers shared by the tests."""

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from kernel.actor import ActorContext
from kernel.codec import Codec
from kernel.streams import OutputStream
from ringbuf import RingReader, RingWriter, create_ring, destroy_ring


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.001)


class StreamCapture:
    """A real ring behind an OutputStream, read back and decoded: what an actor published.

    `already_published` records are written and consumed first, as if a previous
    incarnation of the producer had published them (the stream's seq resumes after).
    """

    def __init__(self, stream: str, codec: Codec, already_published: int = 0) -> None:
        self.codec = codec
        self.ring = f"test-{uuid.uuid4().hex[:10]}-{stream}"
        self.segment = create_ring(self.ring, 1 << 26, schema=codec.schema)
        self.writer = RingWriter(self.ring, schema=codec.schema)
        self.reader = RingReader(self.ring, schema=codec.schema)
        for _ in range(already_published):
            self.writer.write(0, b"")
        self.reader.poll(lambda type_id, payload: None, already_published)
        self.stream = OutputStream(stream, [self.writer], codec)
        self.stream.seq = already_published
        self._messages: list[Any] = []

    @property
    def messages(self) -> list[Any]:
        """Every message published so far, in order."""
        while self.reader.poll_decode(self.codec.decode_table, self._messages.append, 1 << 20):
            pass
        return self._messages

    def close(self) -> None:
        self.writer.close()
        self.reader.close()
        destroy_ring(self.segment)


TEST_SYSTEM = f"test-ctx-{os.getpid()}"
"""The system name actors driven in-process by tests share; its segments are removed
after every test (tests/conftest.py)."""


def actor_context(
    name: str,
    outputs: dict[str, OutputStream],
    system: str = TEST_SYSTEM,
    new_run: bool = False,
    problems: list[str | None] | None = None,
    tasks: "list[asyncio.Task[None]] | None" = None,
    idle: "list[Callable[[], None]] | None" = None,
) -> ActorContext:
    """An ActorContext for driving an actor directly inside a test's event loop; the
    problems it reports go to `problems`, the tasks it spawns to `tasks`, the idle work it
    asks for to `idle` (else it runs at the loop's next turn)."""

    def spawn(actor: str, coro: Any) -> "asyncio.Task[None]":
        task = asyncio.get_running_loop().create_task(coro)
        if tasks is not None:
            tasks.append(task)
        return task

    return ActorContext(
        name=name,
        node="test",
        system=system,
        new_run=new_run,
        outputs=outputs,
        set_timer=lambda actor, timer, interval, repeat: None,
        cancel_timer=lambda actor, timer: None,
        spawn=spawn,
        report_problem=lambda actor, problem: (
            problems.append(problem) if problems is not None else None
        ),
        when_idle=(lambda actor, work: idle.append(work)) if idle is not None else None,
    )
