"""Ring segments: a ring is a Kind.RING segment of ringbuf.shm (line 0 of its header
starts with the common segment header; see layout.py for the rest)."""

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ringbuf import layout, shm
from ringbuf.errors import (
    RingCorrupted,
    RingExists,
    RingNotFound,
    RingSchemaMismatch,
    RingSizeMismatch,
    RingVersionMismatch,
)

__all__ = ["RingInfo", "Segment", "read_info", "segment_path", "unlink_segment"]


@dataclass(frozen=True)
class RingInfo:
    """The static description of a ring, from line 0 of its header."""

    name: str
    capacity: int
    full_policy: str
    doorbell: bool
    creator_pid: int
    creator_start_ticks: int
    created_ns: int
    schema: int
    lifetime: shm.Lifetime = shm.Lifetime.RUN


class Segment:
    """A mapped ring segment. `mapping` covers the whole file (the C core's offsets are
    file offsets); `close` unmaps, `unlink` removes the name."""

    def __init__(self, segment: shm.ShmSegment, info: RingInfo) -> None:
        self._segment = segment
        self.name = segment.name
        self.path = segment.path
        self.mapping: mmap.mmap = segment.mapping
        self.info = info

    @classmethod
    def create(
        cls,
        name: str,
        capacity: int,
        full_policy: str = "block",
        doorbell: bool = False,
        schema: int = 0,
        replace: bool = False,
        lifetime: shm.Lifetime = shm.Lifetime.RUN,
    ) -> "Segment":
        """A new ring owned by this process: a run's supervisor creates the run's rings."""
        segment_path(name)  # a bad name is a ValueError before anything else
        _check_capacity(capacity)
        if full_policy not in layout.FULL_POLICIES:
            raise ValueError(
                f"full_policy must be one of {layout.FULL_POLICIES}, not {full_policy!r}"
            )
        if replace:
            unlink_segment(name)
        fields = {
            "header_size": layout.HEADER_SIZE,
            "capacity": capacity,
            "full_policy": layout.FULL_POLICIES.index(full_policy),
            "flags": layout.FLAG_DOORBELL if doorbell else 0,
            "schema": schema,
        }

        static = layout.pack_ring_static(fields)

        def write_static(mapping: mmap.mmap) -> None:
            mapping[layout.STATIC_OFFSET : layout.STATIC_OFFSET + len(static)] = static

        with _ring_errors(name):
            segment = shm.create(
                name,
                shm.Kind.RING,
                layout.LAYOUT_VERSION,
                layout.HEADER_SIZE + capacity - shm.HEADER_BYTES,
                lifetime,
                init=write_static,
            )
        return cls(segment, _info(name, segment.header, fields))

    @classmethod
    def attach(cls, name: str, capacity: int | None = None, schema: int | None = None) -> "Segment":
        segment_path(name)  # a bad name is a ValueError naming a ring
        with _ring_errors(name):
            segment = shm.attach(
                name,
                shm.Kind.RING,
                layout.LAYOUT_VERSION,
                min_size=layout.HEADER_SIZE + layout.MIN_CAPACITY,
            )
        try:
            info = _validate(name, segment, capacity, schema)
        except BaseException:
            segment.close()
            raise
        return cls(segment, info)

    def close(self) -> None:
        """Unmap. Raises BufferError while a caller still holds a view of the mapping."""
        self._segment.close()

    def unlink(self) -> None:
        """Remove the name; processes that still map the segment keep their mapping."""
        unlink_segment(self.name)


def segment_path(name: str) -> str:
    """The /dev/shm path of a ring name; rejects names that could escape the folder."""
    return shm.segment_path(name, "ring")


def unlink_segment(name: str) -> bool:
    """Remove a segment by name; False when there was none."""
    return shm.unlink(name)


def read_info(name: str) -> RingInfo:
    """Read and validate a segment's static header without keeping it mapped."""
    segment = Segment.attach(name)
    try:
        return segment.info
    finally:
        segment.close()


@contextmanager
def _ring_errors(name: str) -> Iterator[None]:
    """Raise the ring's own error types for what the segment layer found."""
    try:
        yield
    except shm.SegmentNotFound:
        raise RingNotFound(f"no ring named {name!r} (looked for {segment_path(name)})") from None
    except shm.SegmentExists:
        raise RingExists(f"ring {name!r} already exists at {segment_path(name)}") from None
    except shm.SegmentVersionMismatch as error:
        raise RingVersionMismatch(str(error)) from None
    except shm.SegmentSizeMismatch as error:
        raise RingSizeMismatch(str(error)) from None
    except (shm.SegmentCorrupted, shm.SegmentKindMismatch) as error:
        raise RingCorrupted(str(error)) from None


def _check_capacity(capacity: int) -> None:
    if (
        not isinstance(capacity, int)
        or capacity & (capacity - 1)
        or not (layout.MIN_CAPACITY <= capacity <= layout.MAX_CAPACITY)
    ):
        raise ValueError(
            f"capacity must be a power of two between {layout.MIN_CAPACITY} and "
            f"{layout.MAX_CAPACITY} bytes, not {capacity!r}"
        )


def _info(name: str, header: shm.Header, fields: dict[str, int]) -> RingInfo:
    return RingInfo(
        name=name,
        capacity=fields["capacity"],
        full_policy=layout.FULL_POLICIES[fields["full_policy"]],
        doorbell=bool(fields["flags"] & layout.FLAG_DOORBELL),
        creator_pid=header.owner.pid,
        creator_start_ticks=header.owner.start_ticks,
        created_ns=header.created_ns,
        schema=fields["schema"],
        lifetime=header.lifetime,
    )


def _validate(
    name: str, segment: shm.ShmSegment, capacity: int | None, schema: int | None
) -> RingInfo:
    """The ring's own fields, after shm.attach checked the common header and file size."""
    fields, crc_ok = layout.unpack_static(bytes(segment.mapping[: layout.LINE]))
    if not crc_ok:
        raise RingCorrupted(f"ring {name!r}: header checksum mismatch")
    cap = fields["capacity"]
    if (
        fields["header_size"] != layout.HEADER_SIZE
        or cap & (cap - 1)
        or cap < layout.MIN_CAPACITY
        or fields["full_policy"] >= len(layout.FULL_POLICIES)
    ):
        raise RingCorrupted(f"ring {name!r}: impossible header values {fields}")
    if segment.header.size != layout.HEADER_SIZE + cap:
        raise RingSizeMismatch(
            f"ring {name!r}: segment is {segment.header.size} bytes but the header says "
            f"capacity {cap}"
        )
    if capacity is not None and capacity != cap:
        raise RingSizeMismatch(f"ring {name!r}: capacity is {cap}, expected {capacity}")
    if schema is not None and schema != fields["schema"]:
        raise RingSchemaMismatch(
            f"ring {name!r}: schema {fields['schema']:#x}, expected {schema:#x}"
        )
    return _info(name, segment.header, fields)
