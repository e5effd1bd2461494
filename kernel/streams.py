"""Output streams and the delivery contract every actor relies on.

Delivery semantics (enforced by this module, kernel/inbox.py and kernel/node.py):

1. **Rings are at-least-once.** A consumer commits its rings' read cursors only after
   its actors' records are saved (below), so a consumer killed at any point gets every
   uncommitted message again.
2. **Handling is exactly-once.** Every message carries its stream's `seq` (1, 2, 3, ...
   stamped here). Per input, the kernel keeps the last handled `seq` in the actor's
   durable record and drops anything at or below it before the handler sees it.
3. **State and positions commit together.** At each group commit (kernel/node.py
   `_drain`), after each timer, and on the heartbeat for actors that publish from tasks,
   the kernel saves one record per actor holding its `State`, the last handled `seq` of
   every input and the last `seq` of every output, crash-consistently (two checksummed
   slots), then commits that actor's read cursors. A restarted actor resumes exactly at
   its last commit.
4. **No consumer misses a message, none sees two versions of one.** Every publish is
   first appended to the producer's outbox (kernel/outbox.py), cleared at each commit.
   A restarted producer first sends its outbox again, byte for byte, to every ring of
   each stream: a consumer whose ring missed a message (a publish interrupted between
   two fan-out rings) gets it, one that had it drops it by `seq`. Then it replays the
   inputs its predecessor handled since the commit (the predecessor's in-flight marks
   say how far), all in its first drain pass; publishes under `seq`s its predecessor
   already published write nothing, so the world keeps the first version even if a
   replayed handler decides differently (an interleaving of two inputs, a clock). After
   the replay the output `seq` continues past both. A new run resumes past every `seq`
   its consumers have handled, so fresh messages are never mistaken for duplicates.
5. **Poison messages are quarantined.** A message whose handler fails (exception,
   hang or crash) `delivery.max_attempts` times is written to the quarantine file,
   counted, shown as degraded health, and skipped. An undecodable record is
   quarantined at once. `grandmodel quarantine` lists them.
6. **Unhandled types are counted** in health (`unhandled`), never silently dropped.

Across a whole-system restart the rings are new: messages that were published but not
yet consumed when the previous run stopped are not replayed; consumers count the gap
(`gaps` in health).
"""

import time
from collections.abc import Callable

import msgspec

from kernel import faults
from kernel.codec import Codec
from kernel.outbox import OutboxFull
from ringbuf import RingFull, RingWriter

BLOCKED_SLICE_S = 0.05
"""How long a write blocked by a full ring waits before checking in with its node."""


class NodeStopping(Exception):
    """Raised out of a publish blocked on a full ring when the node is told to stop."""


class OutputStream:
    """One output port as its producer sees it: the stream it is wired to, its rings.

    `seq` is the last sequence number published; the node restores it from the
    producer's durable record. `on_blocked` is called every BLOCKED_SLICE_S while a
    write waits for a slow consumer (`block` policy): it keeps the node's heartbeat
    going and returns True when the node must stop, which aborts the publish with
    NodeStopping (the message is published again after the restart, see point 4).
    """

    def __init__(
        self,
        name: str,
        writers: list[RingWriter],
        codec: Codec,
        on_blocked: Callable[[], bool] = lambda: False,
        producer: str = "",
    ) -> None:
        self.name = name
        self.writers = writers
        self.producer = producer
        self._codec = codec
        self._type_ids = codec.ids
        self._encode = codec.encode_payload
        self._on_blocked = on_blocked
        self._writes = tuple(writer.write for writer in writers)
        self.seq = 0
        self.replay_until = 0
        """Seqs up to this one were published by a predecessor (re-sent from its outbox):
        publishing them again while the inputs are replayed writes nothing."""
        self.outbox: Callable[[int, int, bytes], bool] | None = None
        """Called with (seq, type id, payload) before the first ring is written; False
        when the outbox is full."""
        self.on_outbox_full: Callable[[], None] = lambda: None
        """Makes room in a full outbox (a commit), or raises when none may happen now."""
        self.traced: Callable[[int], None] | None = None
        """Called with the publish stamp once every ring has the message (latency tracing)."""

    def publish(self, msg: msgspec.Struct) -> None:
        """Stamp seq and ts_ns (and origin_ns if unset), encode once, keep it in the
        outbox, write it to each ring.

        Rings with the `block` policy wait for their consumer; `drop` rings count
        the loss and move on.
        """
        seq = self.seq + 1
        msg.seq = seq  # type: ignore[attr-defined]
        if seq <= self.replay_until:
            self.seq = seq
            return
        now = time.monotonic_ns()
        msg.ts_ns = now  # type: ignore[attr-defined]
        if not msg.origin_ns:  # type: ignore[attr-defined]
            msg.origin_ns = now  # type: ignore[attr-defined]
        # One dict lookup instead of a call to Codec.encode; an unknown type still gets
        # the codec's error naming it (record type ids start at 1).
        type_id = self._type_ids.get(type(msg)) or self._codec.type_id(type(msg))
        payload = self._encode(msg)
        if self.outbox is not None and not self.outbox(seq, type_id, payload):
            self.on_outbox_full()  # a commit empties it, or it raises OutboxFull
            if not self.outbox(seq, type_id, payload):
                raise OutboxFull(f"a message of {len(payload)} bytes exceeds the outbox")
        if faults.armed:
            faults.hit(self.producer, "before_publish")
        self.write(type_id, payload)
        # Counted only once every ring has it: a publish cut short is not committed as
        # published, so the restarted producer publishes it again (point 4 above).
        self.seq = seq
        if self.traced is not None:
            self.traced(now)

    def write(self, type_id: int, payload: bytes) -> None:
        """Write one encoded message to every ring (also used to re-send the outbox)."""
        first = True
        for write in self._writes:
            if not first and faults.armed:
                faults.hit(self.producer, "between_rings")
            first = False
            try:
                write(type_id, payload, True, BLOCKED_SLICE_S)
            except RingFull:
                self._wait_for_room(write, type_id, payload)

    def _wait_for_room(self, write: Callable[..., None], type_id: int, payload: bytes) -> None:
        """Retry a write a full `block` ring refused, checking in with the node between
        tries (the first try is in `write`, without a loop: the common case)."""
        while True:
            if self._on_blocked():
                raise NodeStopping(f"stopped while publishing on {self.name!r}")
            try:
                write(type_id, payload, True, BLOCKED_SLICE_S)
                return
            except RingFull:
                continue

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class UnwiredOutput(OutputStream):
    """An optional port the config leaves unwired: publishing counts and does nothing."""

    def __init__(self, port: str, codec: Codec, producer: str) -> None:
        super().__init__(port, [], codec, producer=producer)

    def publish(self, msg: msgspec.Struct) -> None:
        self.seq += 1
