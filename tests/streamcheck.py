"""Self-checking stream records for cross-process ring tests.

A record is `[u64 seq][u32 crc32][body]` where the body's length and bytes derive
from seq: a torn, mixed or misplaced record fails the checksum or the length.
"""

import struct
import zlib

HEAD = struct.Struct("<QI")
MAX_BODY = 700


def body_for(seq: int) -> bytes:
    length = (seq * 2654435761) % MAX_BODY
    return (seq.to_bytes(8, "little") * (length // 8 + 1))[:length]


def make_record(seq: int) -> bytes:
    body = body_for(seq)
    return HEAD.pack(seq, zlib.crc32(body, seq & 0xFFFFFFFF)) + body


def check_record(payload: memoryview | bytes) -> int:
    """The record's seq; raises AssertionError if it is torn or corrupted."""
    seq, crc = HEAD.unpack_from(payload)
    body = payload[HEAD.size :]
    if len(body) != (seq * 2654435761) % MAX_BODY:
        raise AssertionError(f"record {seq}: body length {len(body)} is wrong")
    if zlib.crc32(body, seq & 0xFFFFFFFF) != crc:
        raise AssertionError(f"record {seq}: checksum mismatch (torn record)")
    return seq
