"""Actors and messages for the kernel tests (the kernel knows nothing of trading)."""

import asyncio
import os
from pathlib import Path

import msgspec
import numpy as np

from kernel.actor import Actor
from kernel.messages import Message


class Number(Message, array_like=True, gc=False):
    value: int = 0


class Text(Message, array_like=True, gc=False):
    body: str = ""


TestMessage = Number | Text


class SourceParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stream: str = "numbers"
    count: int = 0
    per_tick: int = 50


class Source(Actor):
    """Publishes Number(value=seq) up to `count` (0: forever), `per_tick` per loop turn."""

    Params = SourceParams

    async def on_start(self) -> None:
        self.out = self.output(self.params.stream)
        self.spawn(self._run())

    async def _run(self) -> None:
        while self.params.count == 0 or self.out.seq < self.params.count:
            for _ in range(self.params.per_tick):
                if self.params.count and self.out.seq >= self.params.count:
                    break
                self.out.publish(Number(value=self.out.seq + 1))
            await asyncio.sleep(0.001)


class RelayParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stream: str = "relayed"


class Relay(Actor):
    Params = RelayParams

    async def on_start(self) -> None:
        self.out = self.output(self.params.stream)

    def on_message(self, msg: Number) -> None:
        self.out.publish(Number(value=msg.value, origin_ns=msg.origin_ns))


class SinkParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    marks: str
    crash_at: int = 0
    hang_at: int = 0
    faults_file: str = ""
    faults: int = 1


class Sink(Actor):
    """Marks each value handled in a file (marks[value] += 1), deduping redeliveries.

    `crash_at`/`hang_at` make it raise / loop forever on that value, `faults` times
    in all: each fault appends a line to `faults_file`, which outlives restarts.
    """

    Params = SinkParams

    async def on_start(self) -> None:
        self.marks = np.memmap(self.params.marks, dtype=np.uint8, mode="r+")
        handled = np.flatnonzero(self.marks)
        self.last = int(handled[-1]) if handled.size else 0

    def _fault_due(self) -> bool:
        path = Path(self.params.faults_file)
        done = len(path.read_text().splitlines()) if path.exists() else 0
        if done >= self.params.faults:
            return False
        with path.open("a") as faults:
            faults.write("fault\n")
        return True

    def on_message(self, msg: Number) -> None:
        if msg.value <= self.last:
            return
        if msg.value in (self.params.crash_at, self.params.hang_at) and self._fault_due():
            if msg.value == self.params.crash_at:
                raise RuntimeError(f"sink told to crash at {msg.value}")
            while True:
                pass
        self.marks[msg.value] += 1
        self.last = msg.value


class Idle(Actor):
    """Consumes nothing and does nothing but stay alive: a plain supervised child."""


class WarmedParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    report: str


class Warmed(Actor):
    """Reports in which process its class was warmed up and in which it runs."""

    Params = WarmedParams
    warmed_in = 0

    @classmethod
    def warm_up(cls) -> None:
        cls.warmed_in = os.getpid()

    async def on_start(self) -> None:
        Path(self.params.report).write_text(f"{self.warmed_in} {os.getpid()}")
