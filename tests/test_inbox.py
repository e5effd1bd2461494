"""InboxCore/Delivery (ringbuf/_core.c), the per-message work of kernel/inbox.py: each
message handed to a handler once, in order, with its marks, counters and traces."""

import time

import msgspec
import numpy as np
import pytest

from kernel.latency import BUCKETS, SERIES_WORDS
from ringbuf._core import HdrSeries, InboxCore, Instant, SharedWords


class Msg(msgspec.Struct):
    seq: int
    ts_ns: int = 0


class Other(msgspec.Struct):
    seq: int
    ts_ns: int = 0


class Harness:
    def __init__(self, seq: int = 0, traced: bool = False) -> None:
        self.words = bytearray(64)
        self.marks = SharedWords(self.words)
        self.handled: list[tuple[int, int, int]] = []
        self.quarantined: list[int] = []
        self.unhandled: list[str] = []
        self.histograms = bytearray(8 * 2 * SERIES_WORDS)
        trace = ()
        if traced:
            self.handling = Instant()
            trace = (
                HdrSeries(self.histograms, 0, BUCKETS),
                HdrSeries(self.histograms, 8 * SERIES_WORDS, BUCKETS),
                self.handling,
            )
        self.core = InboxCore(
            seq,
            self.marks,
            16,  # input 1: in-flight word 2, done word 3
            24,
            lambda msg: self.quarantined.append(msg.seq),
            lambda msg: self.unhandled.append(type(msg).__name__),
            *trace,
        )
        self.deliver = self.core.entry(self.handle)
        self.ignore = self.core.entry(None, True)
        self.count_unhandled = self.core.entry(None)

    def handle(self, msg: Msg) -> None:
        words = np.frombuffer(self.words, dtype=np.uint64)
        self.handled.append((msg.seq, int(words[2]), int(words[3])))

    def series(self, index: int) -> np.ndarray:
        words = np.frombuffer(self.histograms, dtype=np.uint64)
        return words[index * SERIES_WORDS : (index + 1) * SERIES_WORDS]


def test_each_seq_is_handled_once_in_order_between_its_marks():
    inbox = Harness(seq=2)
    for seq in (1, 2, 3, 3, 4, 2, 5):
        inbox.deliver(Msg(seq))
    # in flight = the seq, done = the previous one, while the handler runs
    assert inbox.handled == [(3, 3, 0), (4, 4, 3), (5, 5, 4)]
    words = np.frombuffer(inbox.words, dtype=np.uint64)
    assert (words[2], words[3]) == (5, 5)
    assert (inbox.core.seq, inbox.core.duplicates, inbox.core.gaps) == (5, 4, 0)


def test_a_seq_that_skips_ahead_counts_a_gap_and_is_handled():
    inbox = Harness(seq=10)
    inbox.deliver(Msg(11))
    inbox.deliver(Msg(15))
    assert [seq for seq, _, _ in inbox.handled] == [11, 15] and inbox.core.gaps == 1


def test_the_poison_seq_is_quarantined_instead_of_handled():
    inbox = Harness()
    inbox.core.poison = 2
    for seq in (1, 2, 3):
        inbox.deliver(Msg(seq))
    assert [seq for seq, _, _ in inbox.handled] == [1, 3]
    assert inbox.quarantined == [2] and inbox.core.seq == 3


def test_ignored_and_unhandled_types_advance_and_only_unhandled_ones_count():
    inbox = Harness()
    inbox.ignore(Other(1))
    inbox.count_unhandled(Other(2))
    inbox.count_unhandled(Other(2))  # a redelivery: a duplicate, not counted again
    inbox.deliver(Msg(3))
    assert inbox.unhandled == ["Other"] and inbox.core.unhandled == 1
    assert inbox.core.duplicates == 1 and [s for s, _, _ in inbox.handled] == [3]


def test_a_handler_that_raises_leaves_the_message_in_flight_and_unhandled():
    inbox = Harness()

    def fail(msg: Msg) -> None:
        raise RuntimeError("boom")

    failing = inbox.core.entry(fail)
    with pytest.raises(RuntimeError, match="boom"):
        failing(Msg(1))
    words = np.frombuffer(inbox.words, dtype=np.uint64)
    assert (words[2], words[3], inbox.core.seq) == (1, 0, 0)  # redelivered after restart


def test_a_traced_delivery_records_the_hop_and_the_handler_run():
    inbox = Harness(traced=True)
    seen: list[int] = []
    traced = inbox.core.entry(lambda msg: seen.append(inbox.handling.ns))
    stamped = time.monotonic_ns() - 5_000_000  # published 5 ms ago
    traced(Msg(1, ts_ns=stamped))
    hop, handle = inbox.series(0), inbox.series(1)
    assert hop[0] == 1 and handle[0] == 1
    assert 5_000_000 <= hop[1] < 5_000_000_000  # max = the hop itself, in ns
    assert seen[0] >= stamped + 5_000_000 and inbox.handling.ns == 0
