"""Durable actor records: state, input positions and output sequence numbers, together.

Each actor has one snapshot store `actor.<name>` (kernel/state.py: two checksummed
slots, so a save interrupted by kill -9 leaves the previous record whole). A record is
saved by the node after every drain pass in which the actor handled messages, after its
timers, and on the heartbeat when it published from a task; the node commits its rings'
read cursors only after its records are saved. So a record always reflects a prefix of
each input, and restoring it puts the actor exactly where that prefix left it.

The store also holds two words per input, written around every handler call: the
`seq` in flight and the last `seq` done. A restarted node that finds in-flight > done
knows its predecessor died inside that handler and counts a failed delivery; at
`delivery.max_attempts` the message is quarantined instead of handled again. The done
word outlives a new run (`handled_seq`): its producers resume past it.
"""

import base64
import logging
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson

from kernel.state import SnapshotStore, delete_store, state_path

log = logging.getLogger("kernel.durable")

RECORD_CAPACITY = 1 << 20
"""Bytes of one actor record (state included); a larger state fails its save loudly."""
WORDS = 64
"""Scratch words per store: in-flight and done `seq` of up to 32 inputs."""


class Attempt(msgspec.Struct, array_like=True):
    """Failed deliveries of one message of an input."""

    seq: int
    failures: int
    error: str = ""


class Record(msgspec.Struct, kw_only=True):
    run_id: int = 0
    """The run that saved it: a new run drops an ephemeral state and stale words."""
    inputs: dict[str, int] = {}
    """Input key (`stream<-producer`) -> last handled seq."""
    outputs: dict[str, int] = {}
    """Stream -> last published seq."""
    attempts: dict[str, Attempt] = {}
    """Input key -> the message that failed its last deliveries."""
    quarantined: int = 0
    state: bytes = b""
    """The actor's `State`, msgpack-encoded (empty: none saved)."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Record)


def store_owner(actor: str) -> str:
    return f"actor.{actor}"


class DurableRecord:
    """The record of one actor in one node: load, inspect crash evidence, save."""

    def __init__(self, system: str, actor: str, run_id: int) -> None:
        self.actor = actor
        self.run_id = run_id
        self.store = SnapshotStore(system, store_owner(actor), RECORD_CAPACITY, words=WORDS)
        saved = self.store.load()
        self.record = _DECODER.decode(saved) if saved is not None else Record(run_id=run_id)
        self.new_run = self.record.run_id != run_id
        if self.new_run and saved is not None:
            # Another run's messages: none is in flight in this one (nothing to replay).
            # What it handled stays (`handled_seq`): past its last commit it may have had
            # effects outside (a journal's rows), and a producer resuming in this run must
            # not number a new message the same.
            for index in range(WORDS // 2):
                self.store.store_word(2 * index, 0)

    def marks(self, index: int) -> tuple[int, int]:
        """(seq in flight, last seq done) of input `index` (kernel/inbox.py writes them)."""
        return self.store.load_word(2 * index), self.store.load_word(2 * index + 1)

    def crashed_in(self, index: int, key: str) -> int:
        """The seq whose handler was running when the previous process died (0: none)."""
        in_flight, done = self.marks(index)
        if in_flight > done and in_flight > self.record.inputs.get(key, 0):
            return in_flight
        return 0

    def count_failure(self, index: int, key: str, seq: int, error: str) -> Attempt:
        """One more failed delivery of (key, seq), saved at once (the caller may exit),
        and marked done so that the next start does not count it again."""
        attempt = self.record.attempts.get(key)
        if attempt is None or attempt.seq != seq:
            attempt = Attempt(seq, 0)
        attempt.failures += 1
        attempt.error = error or attempt.error
        self.record.attempts[key] = attempt
        self.save()
        self.store.store_word(2 * index + 1, seq)
        return attempt

    def save(self) -> None:
        self.record.run_id = self.run_id
        self.store.save(_ENCODER.encode(self.record))

    def close(self) -> None:
        self.store.close()


def read_record(system: str, actor: str) -> Record | None:
    """Another actor's last committed record (read-only use), or None. Reading creates
    no store for an actor that never ran."""
    if not os.path.exists(state_path(system, store_owner(actor))):
        return None
    store = SnapshotStore(system, store_owner(actor), RECORD_CAPACITY, words=WORDS)
    try:
        saved = store.load()
    finally:
        store.close()
    return _DECODER.decode(saved) if saved is not None else None


def handled_seq(system: str, actor: str, index: int) -> int:
    """The last seq `actor` handled on its input `index`, committed or not (the word its
    inbox writes after each message); 0 for an actor that never ran."""
    if not os.path.exists(state_path(system, store_owner(actor))):
        return 0
    store = SnapshotStore(system, store_owner(actor), RECORD_CAPACITY, words=WORDS)
    try:
        return store.load_word(2 * index + 1)
    finally:
        store.close()


def reset_record(system: str, actor: str, keep_positions: bool) -> bool:
    """Forget an actor's state; with `keep_positions` its seqs stay (the streams it
    consumes and produces continue), else the whole record goes. True if one existed."""
    if not keep_positions:
        return delete_store(system, store_owner(actor))
    record = read_record(system, actor)
    if record is None:
        return False
    record.state = b""
    record.attempts = {}
    store = SnapshotStore(system, store_owner(actor), RECORD_CAPACITY, words=WORDS)
    try:
        store.save(_ENCODER.encode(record))
    finally:
        store.close()
    return True


class Quarantine:
    """Append-only JSON lines of messages taken out of delivery, for inspection."""

    def __init__(self, path: str, system: str) -> None:
        self.path = Path(path)
        self.system = system

    def put(
        self,
        actor: str,
        stream: str,
        seq: int,
        kind: str,
        message: Any,
        payload: bytes,
        failures: int,
        reason: str,
    ) -> None:
        entry = {
            "time": time.time(),
            "system": self.system,
            "actor": actor,
            "stream": stream,
            "seq": seq,
            "type": kind,
            "failures": failures,
            "reason": reason,
            "message": message,
            "payload_b64": base64.b64encode(payload).decode(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps(entry, default=str) + b"\n"
        # One write of a whole line with O_APPEND: concurrent nodes never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.error(
            "message quarantined: %s seq %d of %s on %s after %d failures: %s",
            kind,
            seq,
            actor,
            stream,
            failures,
            reason,
        )


def read_quarantine(path: str) -> list[dict[str, Any]]:
    """The quarantined entries; a torn last line (a crash mid-write) is skipped."""
    entries = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return entries
