"""Read a ring's counters without claiming either end (for monitoring and audits)."""

from dataclasses import dataclass

from ringbuf import layout
from ringbuf._core import SharedWords
from ringbuf.segment import Segment


@dataclass(frozen=True)
class RingStats:
    name: str
    published: int
    consumed: int
    dropped: int
    depth_bytes: int
    producer_attached: bool
    consumer_attached: bool


def inspect_ring(name: str) -> RingStats:
    """Counters of a ring by name: records published and committed, drops, depth."""
    segment = Segment.attach(name)
    words = SharedWords(segment.mapping)
    try:
        write = words.load_acquire(layout.WRITE_CURSOR)
        read = words.load_acquire(layout.READ_CURSOR)
        committed = layout.committed_count(words, write)
        return RingStats(
            name=name,
            published=committed[0] if committed else 0,
            consumed=words.load_acquire(layout.CONSUMED),
            dropped=words.load_acquire(layout.DROPPED),
            depth_bytes=write - read,
            producer_attached=words.load_acquire(layout.PRODUCER_PID) != 0,
            consumer_attached=words.load_acquire(layout.CONSUMER_PID) != 0,
        )
    finally:
        words.release()
        segment.close()
