"""Lock-free single-producer/single-consumer rings in shared memory, and the one
shared-memory segment format (ringbuf.shm) that every GrandModel segment uses.

Knows nothing of trading: records are (type id, bytes). See layout.py for the bytes,
ring.py for the publication protocol and shm.py for segments, lifetimes and cleanup.
"""

from ringbuf import shm
from ringbuf.cleanup import SegmentStatus, list_segments, remove_run, remove_stale
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
from ringbuf.shm import Kind, Lifetime, Owner, SharedWords, ShmError, ShmSegment
from ringbuf.wait import BackoffWait, ParkWait, SpinWait, WaitStrategy, make_wait_strategy

__all__ = [
    "BackoffWait",
    "Doorbell",
    "DoorbellMissing",
    "Kind",
    "Lifetime",
    "Owner",
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
    "SegmentStatus",
    "SharedWords",
    "ShmError",
    "ShmSegment",
    "SpinWait",
    "UnknownRecordType",
    "WaitStrategy",
    "create_ring",
    "destroy_ring",
    "inspect_ring",
    "list_segments",
    "make_wait_strategy",
    "read_info",
    "remove_run",
    "remove_stale",
    "shm",
    "unlink_segment",
]
