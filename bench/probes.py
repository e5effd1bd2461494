"""Actors the benchmarks run inside real systems (not part of any trading topology)."""

import asyncio
import time

import msgspec
import numpy as np

from kernel.actor import Actor, Port
from kernel.messages import Message


class Pulse(Message, array_like=True, gc=False):
    value: int = 0


BenchMessage = Pulse


class PulseParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    per_ms: int = 5


class PulseSource(Actor):
    """Publishes `per_ms` pulses every millisecond, forever."""

    Params = PulseParams
    outputs = {"out": Port(Pulse)}

    async def on_start(self) -> None:
        self.out = self.output("out")
        self.spawn(self._run())

    async def _run(self) -> None:
        while True:
            for _ in range(self.params.per_ms):
                self.out.publish(Pulse(value=self.out.seq + 1))
            await asyncio.sleep(0.001)


class ProbeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stamps: str


class ProbeState(msgspec.Struct, kw_only=True):
    """A durable state of a realistic size (a risk book and its memory are about this big),
    so that the restart time includes restoring it."""

    handled: int = 0
    window: list[float] = msgspec.field(default_factory=lambda: [0.0] * 512)


class RestartProbe(Actor):
    """Records, per incarnation, when it first consumed a message after starting.

    The stamps file holds [incarnations, first_consume_ns of the latest, messages].
    """

    Params = ProbeParams
    State = ProbeState
    state: ProbeState

    async def on_start(self) -> None:
        self.stamps = np.memmap(self.params.stamps, dtype=np.int64, mode="r+")
        self.first = True

    def on_pulse(self, msg: Pulse) -> None:
        if self.first:
            self.first = False
            self.stamps[1] = time.monotonic_ns()
            self.stamps[0] += 1
        self.stamps[2] += 1
        state = self.state
        state.window[state.handled % len(state.window)] = float(msg.value)
        state.handled += 1

    inputs = {Pulse: on_pulse}
