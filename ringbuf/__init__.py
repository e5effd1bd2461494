"""Lock-free single-producer/single-consumer rings in shared memory.

Knows nothing of trading: records are (type id, bytes). See layout.py for the
bytes and ring.py for the publication protocol.
"""

from ringbuf.cleanup import list_segments, remove_stale
from ringbuf.doorbell import Doorbell
from ringbuf.errors import (
    DoorbellMissing,
    RecordTooLarge,
    RingBusy,
    RingClosed,
    RingCorrupted,
    RingError,
    RingExists,
    RingFull,
    RingNotFound,
    RingSchemaMismatch,
    RingSizeMismatch,
    RingVersionMismatch,
    UnknownRecordType,
)
from ringbuf.inspect import RingStats, inspect_ring
from ringbuf.ring import RingReader, RingWriter, create_ring, destroy_ring
from ringbuf.segment import RingInfo, Segment, read_info, unlink_segment
from ringbuf.wait import BackoffWait, ParkWait, SpinWait, WaitStrategy, make_wait_strategy

__all__ = [
    "BackoffWait",
    "Doorbell",
    "DoorbellMissing",
    "ParkWait",
    "RecordTooLarge",
    "RingBusy",
    "RingClosed",
    "RingCorrupted",
    "RingError",
    "RingExists",
    "RingFull",
    "RingInfo",
    "RingNotFound",
    "RingReader",
    "RingSchemaMismatch",
    "RingSizeMismatch",
    "RingStats",
    "RingVersionMismatch",
    "RingWriter",
    "Segment",
    "SpinWait",
    "UnknownRecordType",
    "WaitStrategy",
    "create_ring",
    "destroy_ring",
    "inspect_ring",
    "list_segments",
    "make_wait_strategy",
    "read_info",
    "remove_stale",
    "unlink_segment",
]
