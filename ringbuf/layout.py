"""Byte layout of a ring segment.

The header is a run of 128-byte lines. Each line has exactly one writer, so a
cursor update never shares a cache line (or an adjacent-line prefetch pair) with a
counter that another process writes:

    line 0  static description, written once at creation: the common segment
            header (ringbuf/shm.py, bytes 0-63), then the ring's own fields
            (+ crc32 of them)
    line 1  write cursor                          producer
    line 2  read cursor (committed)               consumer
    line 3  producer state: commit slots, drops   producer
    line 4  consumer sleep epoch (park flag)      consumer
    line 5  consumer state: owner pid, stats      consumer

Cursors are monotonically increasing byte positions; the index in the data area is
`cursor & (capacity - 1)`. Records are `[u32 length][u16 type][u16 flags][payload]`
padded to 8 bytes; type 0xFFFF marks the padding that skips to the start of the
data area when a record would not fit before its end.
"""

import struct
import zlib
from typing import TYPE_CHECKING

from ringbuf import shm
from ringbuf._core import (
    COMMIT_SLOT_0,
    COMMIT_SLOT_1,
    CONSUMED,
    CONSUMER_PID,
    DROPPED,
    HEADER_SIZE,
    LINE,
    PADDING_TYPE,
    PRODUCER_PID,
    READ_CURSOR,
    RECORD_HEADER,
    SLEEP_EPOCH,
    WRITE_CURSOR,
)

if TYPE_CHECKING:
    from ringbuf._core import SharedWords

# 2: line 0 starts with the common segment header (was: the ring's own magic and owner).
LAYOUT_VERSION = 2
ALIGN = 8
MAX_TYPE = PADDING_TYPE - 1
MIN_CAPACITY = 1024
MAX_CAPACITY = 1 << 31

# Line 0 after the common header: the ring's static description, then its crc32.
STATIC_OFFSET = shm.HEADER_BYTES
STATIC = struct.Struct("<IIQI4xQ")
STATIC_FIELDS = ("header_size", "full_policy", "capacity", "flags", "schema")
CHECKSUM_OFFSET = STATIC_OFFSET + STATIC.size  # u32 crc32 of the static struct
FLAG_DOORBELL = 1

# The mutable lines' word offsets are defined once, in _core.c, and imported above.
__all__ = [
    "COMMIT_SLOT_0",
    "COMMIT_SLOT_1",
    "CONSUMED",
    "CONSUMER_PID",
    "DROPPED",
    "HEADER_SIZE",
    "LINE",
    "PADDING_TYPE",
    "PRODUCER_PID",
    "READ_CURSOR",
    "RECORD_HEADER",
    "SLEEP_EPOCH",
    "WRITE_CURSOR",
]

FULL_POLICIES = ("block", "drop")


def committed_count(words: "SharedWords", write: int) -> tuple[int, int] | None:
    """(records published, slot that holds the count) for write cursor `write`.

    Each publish writes (cursor, count) into the commit slot not matching the current
    cursor, then the cursor: a producer killed in between leaves the other slot
    intact and still matching. None when no slot matches (a corrupted header).
    """
    slots = [
        (words.load_acquire(offset), words.load_acquire(offset + 8))
        for offset in (COMMIT_SLOT_0, COMMIT_SLOT_1)
    ]
    matching = [i for i, (cursor, _) in enumerate(slots) if cursor == write]
    if not matching:
        return None
    best = max(matching, key=lambda i: slots[i][1])
    return slots[best][1], best


def record_size(payload_len: int) -> int:
    """Bytes a record occupies in the data area, header and padding included."""
    return (payload_len + RECORD_HEADER + ALIGN - 1) & ~(ALIGN - 1)


def pack_static(fields: dict[str, int]) -> bytes:
    """Serialize line 0: the common header, the ring's fields and their crc32."""
    header = shm.Header(
        kind=fields["kind"],
        lifetime=shm.Lifetime(fields["lifetime"]),
        version=fields["version"],
        payload_size=fields["payload_size"],
        owner=shm.Owner(fields["creator_pid"], fields["creator_start_ticks"]),
        created_ns=fields["created_ns"],
    )
    return header.pack() + pack_ring_static(fields)


def pack_ring_static(fields: dict[str, int]) -> bytes:
    """The ring's own fields and their crc32, which belong at STATIC_OFFSET."""
    body = STATIC.pack(*(fields[name] for name in STATIC_FIELDS))
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_static(raw: bytes) -> tuple[dict[str, int], bool]:
    """Parse line 0; the flag tells whether the ring fields' crc32 matches.

    Raises shm.SegmentCorrupted when the common header itself is broken."""
    header = shm.Header.unpack(raw, "ring header")
    body = raw[STATIC_OFFSET:CHECKSUM_OFFSET]
    (stored_crc,) = struct.unpack_from("<I", raw, CHECKSUM_OFFSET)
    fields = {
        "kind": header.kind,
        "lifetime": int(header.lifetime),
        "version": header.version,
        "payload_size": header.payload_size,
        "creator_pid": header.owner.pid,
        "creator_start_ticks": header.owner.start_ticks,
        "created_ns": header.created_ns,
    }
    fields.update(zip(STATIC_FIELDS, STATIC.unpack(body), strict=True))
    return fields, stored_crc == zlib.crc32(body)
