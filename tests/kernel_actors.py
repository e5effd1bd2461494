"""Actors and messages for the kernel tests (the kernel knows nothing of trading)."""

import asyncio
import os
from functools import partial
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np

from actors.common.pacing import Pacer
from kernel.actor import Actor, Port
from kernel.messages import Message


class Number(Message, array_like=True, gc=False):
    value: int = 0


class Text(Message, array_like=True, gc=False):
    body: str = ""


class Blob(Message, array_like=True, gc=False):
    data: Annotated[bytes, msgspec.Meta(max_length=2048)] = b""


TestMessage = Number | Text | Blob


class SourceParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    count: int = 0
    per_tick: int = 50


class Source(Actor):
    """Publishes Number(value=seq) up to `count` (0: forever), `per_tick` per loop turn."""

    Params = SourceParams
    outputs = {"out": Port(Number)}

    async def on_start(self) -> None:
        self.out = self.output("out")
        self.spawn(self._run())

    async def _run(self) -> None:
        while self.params.count == 0 or self.out.seq < self.params.count:
            for _ in range(self.params.per_tick):
                if self.params.count and self.out.seq >= self.params.count:
                    break
                self.out.publish(Number(value=self.out.seq + 1))
            await asyncio.sleep(0.001)


class PacedSourceParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    count: int
    every_us: float


class PacedSource(Source):
    """Publishes Number(value=seq) up to `count`, one every `every_us` microseconds (paced
    like the feed's ticks): a steady stream with short quiet moments between messages."""

    Params = PacedSourceParams

    async def _run(self) -> None:
        step_ns = round(self.params.every_us * 1000)
        due_ns = np.arange(self.out.seq, self.params.count, dtype=np.int64) * step_ns
        await Pacer("xN", speed=1.0, batch=1).run(due_ns, self._publish)

    def _publish(self, count: int) -> None:
        for _ in range(count):
            self.out.publish(Number(value=self.out.seq + 1))


class Relay(Actor):
    async def on_start(self) -> None:
        self.out = self.output("out")

    def on_number(self, msg: Number) -> None:
        self.out.publish(Number(value=msg.value, origin_ns=msg.origin_ns))

    inputs = {Number: on_number}
    outputs = {"out": Port(Number)}


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

    def on_number(self, msg: Number) -> None:
        if msg.value <= self.last:
            return
        if msg.value in (self.params.crash_at, self.params.hang_at) and self._fault_due():
            if msg.value == self.params.crash_at:
                raise RuntimeError(f"sink told to crash at {msg.value}")
            while True:
                pass
        self.marks[msg.value] += 1
        self.last = msg.value

    inputs = {Number: on_number}


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


CHAIN_MODULUS = (1 << 61) - 1


def chain(previous: int, value: int) -> int:
    """An order-sensitive digest: a lost, repeated or reordered value changes it."""
    return (previous * 1_000_003 + value) % CHAIN_MODULUS


class LedgerState(msgspec.Struct, kw_only=True):
    count: int = 0
    total: int = 0
    digest: int = 0


class Ledger(Actor):
    """Folds every Number into its durable state (no dedupe of its own: the kernel's)."""

    State = LedgerState

    def on_number(self, msg: Number) -> None:
        state = self.state
        state.count += 1
        state.total += msg.value
        state.digest = chain(state.digest, msg.value)

    inputs = {Number: on_number}


class BulkyState(LedgerState, kw_only=True):
    ballast: bytes = b""


class BulkyParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    ballast_bytes: int


class BulkyLedger(Ledger):
    """A Ledger whose record carries `ballast_bytes` more: every save copies and
    checksums them, as for an actor with a large state."""

    Params = BulkyParams
    State = BulkyState

    async def on_start(self) -> None:
        if not self.state.ballast:
            self.state.ballast = bytes(self.params.ballast_bytes)


class Unsaveable(Actor):
    """Its timer changes its state, which then cannot be saved: the commit after the
    timer fails."""

    State = LedgerState

    async def on_start(self) -> None:
        self.set_timer("tick", 0.05)

    def on_timer(self, name: str) -> None:
        self.state.count += 1

    def state_to_save(self) -> LedgerState:
        if self.state.count:  # the start's commit succeeds
            raise RuntimeError(f"cannot save after {self.state.count} ticks")
        return self.state


class RelayState(LedgerState, kw_only=True):
    resent: list[int] = []
    """Values the kernel told it (`on_resent`) its crashed predecessor had published."""


class StatefulRelay(Ledger):
    """A Ledger that also republishes each Number: a producer and a consumer at once."""

    State = RelayState

    def on_resent(self, msg: Number) -> None:
        self.state.resent.append(msg.value)

    async def on_start(self) -> None:
        self.out = self.output("out")

    def on_number(self, msg: Number) -> None:
        super().on_number(msg)
        self.out.publish(Number(value=msg.value, origin_ns=msg.origin_ns))

    outputs = {"out": Port(Number)}


class PoisonParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    poison: int
    mode: str = "raise"


class PoisonedLedger(Ledger):
    """A Ledger whose handler raises (or hangs) on every delivery of one value."""

    Params = PoisonParams

    def on_number(self, msg: Number) -> None:
        if msg.value == self.params.poison:
            if self.params.mode == "hang":
                while True:
                    pass
            raise ValueError(f"poisoned by {msg.value}")
        super().on_number(msg)


class TextSource(Actor):
    """Declares a stream of Numbers, Texts and Blobs (up to 2 KiB each)."""

    outputs = {"out": Port(Number, Text, Blob)}


class TextSink(Actor):
    def on_text(self, msg: Text) -> None:
        self.last = msg.body

    inputs = {Text: on_text}


class NumberAndTextSink(TextSink):
    def on_number(self, msg: Number) -> None:
        self.number = msg.value

    inputs = {Number: on_number, Text: TextSink.on_text}
    ignores = (Blob,)


class CountParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    count: int


class LyingSource(Actor):
    """Declares Numbers only, but every 4th message it publishes is a Text: its
    consumers must count those as unhandled."""

    Params = CountParams
    outputs = {"out": Port(Number)}

    async def on_start(self) -> None:
        out = self.output("out")
        for i in range(out.seq + 1, self.params.count + 1):
            out.publish(Text(body=str(i)) if i % 4 == 0 else Number(value=i - i // 4))


NUMBER_TYPE_ID = 1
"""Number's record type id: its 1-based position in TestMessage."""


class ForgingSource(Actor):
    """Publishes Numbers with one record of garbage bytes written straight onto its rings
    after the 25th (a producer bug): consumers must quarantine it and go on."""

    Params = CountParams
    outputs = {"out": Port(Number)}

    async def on_start(self) -> None:
        out = self.output("out")
        for value in range(out.seq + 1, self.params.count + 1):
            out.publish(Number(value=value))
            if value == 25:
                for writer in out.writers:
                    writer.write(NUMBER_TYPE_ID, b"\xc1\xc1", True)


class HangOnceParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    hang_at: int
    faults_file: str


class HangOnceLedger(Ledger):
    """A Ledger that hangs once on one value (the marker file outlives its restarts)."""

    Params = HangOnceParams

    def on_number(self, msg: Number) -> None:
        marker = Path(self.params.faults_file)
        if msg.value == self.params.hang_at and not marker.exists():
            marker.write_text("hung\n")
            while True:
                pass
        super().on_number(msg)


class IdleNotesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    notes: str
    fail_at: int = 0
    faults_file: str = ""


class IdleNotes(Actor):
    """For each Number, asks for idle work (`when_idle`) that appends "<value> <last value
    handled when the work ran>" to `notes`; the work for `fail_at` raises, once (its
    fault is noted in `faults_file`, which outlives restarts)."""

    Params = IdleNotesParams

    async def on_start(self) -> None:
        self.last = 0

    def on_number(self, msg: Number) -> None:
        self.last = msg.value
        self.when_idle(partial(self._note, msg.value))

    def _note(self, value: int) -> None:
        faults = Path(self.params.faults_file)
        if value == self.params.fail_at and not faults.exists():
            faults.write_text("fault\n")
            raise RuntimeError(f"idle work told to fail at {value}")
        with Path(self.params.notes).open("a") as notes:
            notes.write(f"{value} {self.last}\n")

    inputs = {Number: on_number}


class WarmNotesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    notes: str
    fail_at: int = 0
    faults_file: str = ""


class WarmNotes(Actor):
    """Counts the Numbers it handles and its `keep_warm` calls; every 50th call rewrites
    `notes` with "<calls> <numbers handled>". The call numbered `fail_at` raises, once
    (its fault is noted in `faults_file`, which outlives restarts)."""

    Params = WarmNotesParams

    async def on_start(self) -> None:
        self.handled = 0
        self.calls = 0

    def on_number(self, msg: Number) -> None:
        self.handled += 1

    def keep_warm(self) -> None:
        self.calls += 1
        faults = Path(self.params.faults_file)
        if self.calls == self.params.fail_at and not faults.exists():
            faults.write_text("fault\n")
            raise RuntimeError(f"keep_warm told to fail at call {self.calls}")
        if self.calls % 50 == 0:
            Path(self.params.notes).write_text(f"{self.calls} {self.handled}\n")

    inputs = {Number: on_number}
