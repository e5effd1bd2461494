"""One input of one actor: dedupe by `seq`, dispatch by record type id, poison tracking.

The ring's C drain loop decodes each record with the codec's decoder for its type id
and calls `table[type_id](message)`. Every entry of the table is built here, a C
`Delivery` (ringbuf/_core.c) that does, per message:

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
from collections.abc import Callable
from typing import Any, NamedTuple

from kernel import faults
from kernel.codec import Codec
from ringbuf import RingReader
from ringbuf._core import HdrSeries, InboxCore, Instant, SharedWords

log = logging.getLogger("kernel.inbox")

Deliver = Callable[[Any], None]


class Inbox:
    """Consumer-side state of one ring: the last handled `seq` and the counters (kept by
    its `InboxCore`, in C, which does the per-message work of the module docstring)."""

    __slots__ = (
        "_poison",
        "_seq",
        "_warned",
        "actor",
        "core",
        "index",
        "key",
        "quarantine",
        "reader",
        "replay_to",
        "stream",
        "table",
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
        self.core: InboxCore | None = None
        self._seq = seq
        self._poison = 0
        self.replay_to = 0
        """The last seq the previous process started handling (the replay's end)."""
        self.quarantine: Callable[[Inbox, Any], None] = lambda inbox, msg: None
        self.table: tuple[Deliver | None, ...] = ()
        self._warned: set[type] = set()

    def build(
        self,
        codec: Codec,
        handlers: dict[type, Callable[[Any], object]],
        ignored: tuple[type, ...],
        marks: SharedWords,
        trace: "HopTrace | None",
    ) -> None:
        """The dispatch table indexed by record type id (index 0 is unused). `marks` are
        the actor's durable scratch words: this input's in-flight and done `seq` are the
        words at byte offsets 16 * index and 16 * index + 8."""
        after_handler = None
        if faults.armed:  # fixed for the process's life (set from the environment)
            actor = self.actor

            def after_handler() -> None:
                faults.hit(actor, "after_handler")

        self.core = InboxCore(
            self._seq,
            marks,
            16 * self.index,
            16 * self.index + 8,
            lambda msg: self.quarantine(self, msg),
            self._warn_unhandled,
            *(trace if trace is not None else ()),
            after_handler=after_handler,
        )
        self.core.poison = self._poison
        entries: list[Deliver | None] = [None]
        for kind in codec.types:
            entries.append(self.core.entry(handlers.get(kind), kind in ignored))
        self.table = tuple(entries)

    def _warn_unhandled(self, msg: Any) -> None:
        kind = type(msg)
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(
                "actor %s does not handle %s (stream %s): counted as unhandled",
                self.actor,
                kind.__name__,
                self.stream,
            )

    @property
    def seq(self) -> int:
        """The last seq handled (or skipped)."""
        return self.core.seq if self.core is not None else self._seq

    @property
    def poison(self) -> int:
        """A `seq` to quarantine instead of handling (0: none)."""
        return self.core.poison if self.core is not None else self._poison

    @poison.setter
    def poison(self, seq: int) -> None:
        if self.core is not None:
            self.core.poison = seq
        else:
            self._poison = seq

    @property
    def duplicates(self) -> int:
        return self.core.duplicates if self.core is not None else 0

    @property
    def unhandled(self) -> int:
        return self.core.unhandled if self.core is not None else 0

    @property
    def gaps(self) -> int:
        return self.core.gaps if self.core is not None else 0


class HopTrace(NamedTuple):
    """What a traced input records: each message's hop (publish stamp -> handed to the
    handler: encode, ring write, wake-up, waiting behind other work, decode) and how
    long its handler ran; `handling` tells the node's outputs when the handler began."""

    hop: HdrSeries
    handle: HdrSeries
    handling: Instant


def input_key(stream: str, producer: str) -> str:
    """How a durable record names an input: a new producer of a stream starts afresh."""
    return f"{stream}<-{producer}"
