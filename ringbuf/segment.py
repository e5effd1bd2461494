"""Shared-memory segments under /dev/shm: create, attach, validate, unlink.

We map files in /dev/shm ourselves instead of using multiprocessing.shared_memory:
its resource tracker unlinks segments when an attaching process exits, which
breaks crash-only restarts.
"""

import mmap
import os
import re
import time
from dataclasses import dataclass

from ringbuf import layout
from ringbuf.errors import (
    RingCorrupted,
    RingExists,
    RingNotFound,
    RingSchemaMismatch,
    RingSizeMismatch,
    RingVersionMismatch,
)
from ringbuf.procs import start_ticks

SHM_DIR = "/dev/shm"
PREFIX = "gm-"
PERSIST = "persist"
"""Segments named `<run>.persist.<what>` are state meant to outlive runs (a latched
kill switch): cleanup never treats them as stale and a run's shutdown keeps them."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def segment_path(name: str) -> str:
    """The /dev/shm path of a ring name; rejects names that could escape the folder."""
    if not _NAME.match(name):
        raise ValueError(
            f"invalid ring name {name!r}: use 1-200 characters of [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    return os.path.join(SHM_DIR, PREFIX + name)


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


class Segment:
    """A mapped ring segment. Owns the mmap; `close` unmaps, `unlink` removes the name."""

    def __init__(self, name: str, path: str, mapping: mmap.mmap, info: RingInfo) -> None:
        self.name = name
        self.path = path
        self.mapping = mapping
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
    ) -> "Segment":
        _check_capacity(capacity)
        if full_policy not in layout.FULL_POLICIES:
            raise ValueError(
                f"full_policy must be one of {layout.FULL_POLICIES}, not {full_policy!r}"
            )
        path = segment_path(name)
        if replace:
            unlink_segment(name)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            raise RingExists(f"ring {name!r} already exists at {path}") from None
        try:
            size = layout.HEADER_SIZE + capacity
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        pid = os.getpid()
        fields = {
            "magic": layout.MAGIC,
            "version": layout.LAYOUT_VERSION,
            "header_size": layout.HEADER_SIZE,
            "capacity": capacity,
            "full_policy": layout.FULL_POLICIES.index(full_policy),
            "flags": layout.FLAG_DOORBELL if doorbell else 0,
            "creator_pid": pid,
            "creator_start_ticks": start_ticks(pid) or 0,
            "created_ns": time.time_ns(),
            "schema": schema,
        }
        static = layout.pack_static(fields)
        mapping[: len(static)] = static
        return cls(name, path, mapping, _info(name, fields))

    @classmethod
    def attach(cls, name: str, capacity: int | None = None, schema: int | None = None) -> "Segment":
        path = segment_path(name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise RingNotFound(f"no ring named {name!r} (looked for {path})") from None
        try:
            size = os.fstat(fd).st_size
            if size < layout.HEADER_SIZE + layout.MIN_CAPACITY:
                raise RingCorrupted(
                    f"ring {name!r}: segment is {size} bytes, smaller than any valid ring"
                )
            mapping = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        try:
            info = _validate(name, mapping, size, capacity, schema)
        except BaseException:
            mapping.close()
            raise
        return cls(name, path, mapping, info)

    def close(self) -> None:
        """Unmap. Raises BufferError while a caller still holds a view of the mapping."""
        if not self.mapping.closed:
            self.mapping.close()

    def unlink(self) -> None:
        """Remove the name; processes that still map the segment keep their mapping."""
        unlink_segment(self.name)


def map_shared_file(path: str, size: int) -> tuple[mmap.mmap, bool]:
    """Map a fixed-size file under /dev/shm, creating it if absent; True when created.

    For state that is not a ring but shares its lifecycle (histograms, snapshots):
    a file of another size is refused, never resized.
    """
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        existing = os.fstat(fd).st_size
        if existing not in (0, size):
            raise ValueError(f"{path} holds {existing} bytes, not the {size} expected")
        if existing == 0:
            os.ftruncate(fd, size)
        return mmap.mmap(fd, size), existing == 0
    finally:
        os.close(fd)


def unlink_segment(name: str) -> bool:
    """Remove a segment by ring name; False when there was none."""
    try:
        os.unlink(segment_path(name))
    except FileNotFoundError:
        return False
    return True


def read_info(name: str) -> RingInfo:
    """Read and validate a segment's static header without keeping it mapped."""
    segment = Segment.attach(name)
    try:
        return segment.info
    finally:
        segment.close()


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


def _info(name: str, fields: dict[str, int]) -> RingInfo:
    return RingInfo(
        name=name,
        capacity=fields["capacity"],
        full_policy=layout.FULL_POLICIES[fields["full_policy"]],
        doorbell=bool(fields["flags"] & layout.FLAG_DOORBELL),
        creator_pid=fields["creator_pid"],
        creator_start_ticks=fields["creator_start_ticks"],
        created_ns=fields["created_ns"],
        schema=fields["schema"],
    )


def _validate(
    name: str, mapping: mmap.mmap, size: int, capacity: int | None, schema: int | None
) -> RingInfo:
    fields, crc_ok = layout.unpack_static(bytes(mapping[: layout.LINE]))
    if fields["magic"] != layout.MAGIC:
        raise RingCorrupted(f"ring {name!r}: bad magic {fields['magic']:#x}, not a GrandModel ring")
    if fields["version"] != layout.LAYOUT_VERSION:
        raise RingVersionMismatch(
            f"ring {name!r}: layout version {fields['version']}, this build reads "
            f"version {layout.LAYOUT_VERSION}"
        )
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
    if size != layout.HEADER_SIZE + cap:
        raise RingSizeMismatch(
            f"ring {name!r}: segment is {size} bytes but the header says capacity {cap}"
        )
    if capacity is not None and capacity != cap:
        raise RingSizeMismatch(f"ring {name!r}: capacity is {cap}, expected {capacity}")
    if schema is not None and schema != fields["schema"]:
        raise RingSchemaMismatch(
            f"ring {name!r}: schema {fields['schema']:#x}, expected {schema:#x}"
        )
    return _info(name, fields)
