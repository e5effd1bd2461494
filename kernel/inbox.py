"""One input of one actor: dedupe by `seq`, dispatch by record type id, poison tracking.

The ring's C drain loop decodes each record with the codec's decoder for its type id
and calls `table[type_id](message)`. Every entry of the table is built here:

- a handled type: drop the message if its `seq` is at or below the last handled one
  (a redelivery), else mark it in flight in shared memory, call the handler, mark it
  done, advance;
- an ignored type (`Actor.ignores`): advance;
- any other type: count it as unhandled (health shows it), advance.

The in-flight/done words live in the actor's durable store: after a crash the node
reads them to tell which message was being handled when the process died (its
delivery attempts are counted; see kernel/durable.py).
"""

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from kernel import faults
from kernel.codec import Codec
from kernel.latency import Handling
from ringbuf import RingReader

log = logging.getLogger("kernel.inbox")

Deliver = Callable[[Any], None]


class Inbox:
    """Consumer-side state of one ring: the last handled `seq` and the counters."""

    __slots__ = (
        "_warned",
        "actor",
        "duplicates",
        "gaps",
        "index",
        "key",
        "poison",
        "quarantine",
        "reader",
        "replay_to",
        "seq",
        "stream",
        "table",
        "unhandled",
    )

    def __init__(
        self,
        reader: RingReader,
        stream: str,
        producer: str,
        actor: str,
        index: int,
        seq: int,
    ) -> None:
        self.reader = reader
        self.stream = stream
        self.key = input_key(stream, producer)
        self.actor = actor
        self.index = index
        self.seq = seq
        self.replay_to = 0
        """The last seq the previous process started handling (the replay's end)."""
        self.poison = 0
        """A `seq` to quarantine instead of handling (0: none)."""
        self.quarantine: Callable[[Inbox, Any], None] = lambda inbox, msg: None
        self.duplicates = 0
        self.unhandled = 0
        self.gaps = 0
        self.table: tuple[Deliver | None, ...] = ()
        self._warned: set[type] = set()

    def build(
        self,
        codec: Codec,
        handlers: dict[type, Callable[[Any], object]],
        ignored: tuple[type, ...],
        set_word: Callable[[int, int], None],
        trace: "HopTrace | None",
    ) -> None:
        """The dispatch table indexed by record type id (index 0 is unused). `set_word`
        stores a u64 at a byte offset of the actor's durable store (its scratch words)."""
        entries: list[Deliver | None] = [None]
        for kind in codec.types:
            handler = handlers.get(kind)
            if handler is not None:
                entries.append(self._deliver(handler, set_word, trace))
            else:
                entries.append(self._skip(kind in ignored))
        self.table = tuple(entries)

    def _deliver(
        self,
        handler: Callable[[Any], object],
        set_word: Callable[[int, int], None],
        trace: "HopTrace | None",
    ) -> Deliver:
        inbox = self
        in_flight, done = 16 * self.index, 16 * self.index + 8  # byte offsets of words
        actor = self.actor
        clock = time.monotonic_ns
        armed = faults.armed  # fixed for the process's life (set from the environment)
        if trace is not None:
            record_hop, record_handle, handling = trace.hop, trace.handle, trace.handling

        def deliver(msg: Any) -> None:
            if trace is not None:
                received = clock()
                record_hop(received - msg.ts_ns)
                handling.since_ns = received
            seq = msg.seq
            last = inbox.seq
            if seq <= last:
                inbox.duplicates += 1
                return
            if seq != last + 1 and last:
                inbox.gaps += 1
            if seq == inbox.poison:
                inbox.quarantine(inbox, msg)
                inbox.seq = seq
                return
            set_word(in_flight, seq)
            handler(msg)
            set_word(done, seq)
            inbox.seq = seq
            if trace is not None:
                handling.since_ns = 0
                record_handle(clock() - received)
            if armed:
                faults.hit(actor, "after_handler")

        return deliver

    def _skip(self, ignored: bool) -> Deliver:
        inbox = self

        def skip(msg: Any) -> None:
            seq = msg.seq
            if seq <= inbox.seq:
                inbox.duplicates += 1
                return
            inbox.seq = seq
            if not ignored:
                inbox.unhandled += 1
                kind = type(msg)
                if kind not in inbox._warned:
                    inbox._warned.add(kind)
                    log.warning(
                        "actor %s does not handle %s (stream %s): counted as unhandled",
                        inbox.actor,
                        kind.__name__,
                        inbox.stream,
                    )

        return skip


class HopTrace(NamedTuple):
    """What a traced input records: each message's hop (publish stamp -> handed to the
    handler: encode, ring write, wake-up, waiting behind other work, decode) and how
    long its handler ran; `handling` tells the node's outputs when the handler began."""

    hop: Callable[[int], None]
    handle: Callable[[int], None]
    handling: Handling


def input_key(stream: str, producer: str) -> str:
    """How a durable record names an input: a new producer of a stream starts afresh."""
    return f"{stream}<-{producer}"
