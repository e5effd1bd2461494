"""Shared-memory segments under /dev/shm: the one place that creates, opens and judges them.

Every GrandModel segment (rings, the health table, latency histograms, snapshot stores,
the kill switch) is the file `/dev/shm/gm-<name>` and starts with the same 64-byte
header, so any tool can tell what a segment is, who owns it and whether it is stale
without knowing its payload. Little-endian:

    0  u64 magic         "GMSHMSEG"
    8  u16 kind          what the payload is (Kind)
   10  u16 lifetime      when it may be removed (Lifetime)
   12  u32 version       the kind's own layout version
   16  u64 payload_size  bytes after the header: the file is exactly 64 + payload_size
   24  u64 owner pid     \\ the owner's identity; the start time tells a reused pid
   32  u64 owner start   /  from the process that created the segment
   40  u64 created_ns    wall clock
   48  u32 crc32 of bytes 0..47;  52..63 reserved (zero)

The header is written once, before the segment gets its name: `create` builds the file
under a private temporary name and links it into place, so nobody (an attacher, a
cleanup) ever sees a half-initialised segment. Only `adopt` rewrites it later, and only
the owner of a stale segment (a run taking over what a crashed run left). Segments are
created 0600 and every open uses O_NOFOLLOW and checks that the file is a regular file
owned by our euid and writable by nobody else. A file of the wrong size is refused, never resized.

Staleness comes from the header, never from the name: see `Lifetime`.

We map files ourselves instead of using multiprocessing.shared_memory: its resource
tracker unlinks segments when an attaching process exits, which breaks crash-only
restarts.
"""

import contextlib
import enum
import errno
import itertools
import mmap
import os
import re
import stat
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ringbuf._core import SharedWords
from ringbuf.procs import is_alive, start_ticks

__all__ = [
    "HEADER_BYTES",
    "MAGIC",
    "PREFIX",
    "SHM_DIR",
    "Header",
    "Kind",
    "Lifetime",
    "OutOfSharedMemory",
    "Owner",
    "SegmentCorrupted",
    "SegmentExists",
    "SegmentKindMismatch",
    "SegmentLifetimeMismatch",
    "SegmentNotFound",
    "SegmentSizeMismatch",
    "SegmentVersionMismatch",
    "SharedWords",
    "ShmError",
    "ShmSegment",
    "UnsafeSegment",
    "adopt",
    "attach",
    "create",
    "create_or_attach",
    "read",
    "read_header",
    "remove_abandoned_temporaries",
    "segment_names",
    "segment_path",
    "unlink",
]

SHM_DIR = "/dev/shm"
PREFIX = "gm-"
MAGIC = int.from_bytes(b"GMSHMSEG", "little")
HEADER_BYTES = 64
_HEADER = struct.Struct("<QHHIQQQQ")
_CRC = struct.Struct("<I")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_TEMP_SERIAL = itertools.count()  # threads of one process never share a temporary name
_TEMP = re.compile(r"^\.gm-(?P<name>.+)\.(?P<pid>\d+)-(?P<ticks>\d+)-\d+\.tmp$")


class Kind(enum.IntEnum):
    """What a segment's payload is. One registry, so two formats never share a number."""

    RING = 1
    HEALTH = 2
    LATENCY = 3
    SNAPSHOT = 4
    KILLSWITCH = 5
    OUTBOX = 6


class Lifetime(enum.IntEnum):
    """When a segment may be removed; the only thing cleanup looks at besides the owner.

    EPHEMERAL: belongs to its owner process; stale once that process is gone.
    RUN: belongs to a run; its owner is the run's supervisor. A clean stop of the run
        removes it (`ringbuf.remove_run`); stale once the supervisor is gone.
    DURABLE: outlives processes and runs (a kill switch, actor state); never stale,
        removed only on purpose.
    """

    EPHEMERAL = 1
    RUN = 2
    DURABLE = 3


@dataclass(frozen=True)
class Owner:
    """A process identity that survives pid reuse: pid and start time in clock ticks."""

    pid: int
    start_ticks: int

    @classmethod
    def current(cls) -> "Owner":
        pid = os.getpid()
        return cls(pid, start_ticks(pid) or 0)

    @property
    def alive(self) -> bool:
        """True while this very process runs (a new process under the same pid is not it)."""
        return is_alive(self.pid, self.start_ticks)


@dataclass(frozen=True)
class Header:
    """The common header of a segment."""

    kind: int
    """A `Kind` value; an int, so a kind this build does not know can still be listed."""
    lifetime: Lifetime
    version: int
    payload_size: int
    owner: Owner
    created_ns: int

    @property
    def size(self) -> int:
        """The exact size of the file this header describes."""
        return HEADER_BYTES + self.payload_size

    @property
    def stale(self) -> bool:
        """Nobody will use it again: not DURABLE and its owner is gone."""
        return self.lifetime is not Lifetime.DURABLE and not self.owner.alive

    def pack(self) -> bytes:
        body = _HEADER.pack(
            MAGIC,
            self.kind,
            self.lifetime,
            self.version,
            self.payload_size,
            self.owner.pid,
            self.owner.start_ticks,
            self.created_ns,
        )
        tail = _CRC.pack(zlib.crc32(body))
        return (body + tail).ljust(HEADER_BYTES, b"\0")

    @classmethod
    def unpack(cls, raw: bytes, where: str) -> "Header":
        """Parse and check magic and checksum; `where` names the segment in errors."""
        if len(raw) < HEADER_BYTES:
            raise SegmentCorrupted(f"{where}: {len(raw)} bytes, smaller than a segment header")
        body = raw[: _HEADER.size]
        magic, kind, lifetime, version, payload, pid, ticks, created = _HEADER.unpack(body)
        if magic != MAGIC:
            raise SegmentCorrupted(f"{where}: bad magic {magic:#x}, not a GrandModel segment")
        (crc,) = _CRC.unpack_from(raw, _HEADER.size)
        if crc != zlib.crc32(body):
            raise SegmentCorrupted(f"{where}: header checksum mismatch")
        try:
            known = Lifetime(lifetime)
        except ValueError:
            raise SegmentCorrupted(f"{where}: unknown lifetime {lifetime}") from None
        return cls(kind, known, version, payload, Owner(pid, ticks), created)


class ShmError(Exception):
    """Base class of every shared-memory segment error."""


class SegmentNotFound(ShmError, FileNotFoundError):
    """No segment under that name."""


class SegmentExists(ShmError, FileExistsError):
    """A segment under that name already exists and creation was exclusive."""


class UnsafeSegment(ShmError, PermissionError):
    """The path is a symlink, not a regular file, not ours, or writable by others:
    never opened, never removed by cleanup."""


class SegmentCorrupted(ShmError, ValueError):
    """The file is too small for a header, or the header fails its magic or checksum."""


class SegmentKindMismatch(ShmError, ValueError):
    """A valid segment of another kind than the caller expects."""


class SegmentVersionMismatch(ShmError, ValueError):
    """A segment of the expected kind, written by another layout version."""


class SegmentSizeMismatch(ShmError, ValueError):
    """The file's size disagrees with its header or with what the caller expects."""


class SegmentLifetimeMismatch(ShmError, ValueError):
    """An existing segment has another lifetime than the caller asked for."""


class OutOfSharedMemory(ShmError, MemoryError):
    """/dev/shm has no room for a new segment's pages."""


def segment_path(name: str, what: str = "segment") -> str:
    """The /dev/shm path of a segment name; rejects names that could escape the folder.
    `what` names the thing in the error (a ring, a store)."""
    if not _NAME.match(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use 1-200 characters of [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    return os.path.join(SHM_DIR, PREFIX + name)


def segment_names(prefix: str = "") -> list[str]:
    """Names of every segment whose name starts with `prefix`, sorted."""
    start = PREFIX + prefix
    return [
        filename[len(PREFIX) :]
        for filename in sorted(os.listdir(SHM_DIR))
        if filename.startswith(start)
    ]


class ShmSegment:
    """A mapped segment. `mapping` covers the whole file, header included, so that a
    kind's offsets are file offsets; its payload starts at HEADER_BYTES.

    The descriptor stays open for `flock` (the kill switch serialises writers on it).
    """

    def __init__(self, name: str, path: str, fd: int, mapping: mmap.mmap, header: Header) -> None:
        self.name = name
        self.path = path
        self.fd = fd
        self.mapping = mapping
        self.header = header

    def close(self) -> None:
        """Unmap. Raises BufferError while a caller still holds a view of the mapping
        (the descriptor is closed anyway; the memory goes when the views do)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.mapping.closed:
            self.mapping.close()

    def unlink(self) -> bool:
        """Remove the name; processes that map the segment keep their mapping."""
        return unlink(self.name)


_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
"""Every page mapped at attach: a first touch on the hot path would be a page fault
(several microseconds under a hypervisor) in the middle of a publish or a poll."""


def _allocate(fd: int, name: str, size: int) -> None:
    """Give the segment all its pages now. A sparse file would get them on first write,
    on the hot path, and a full /dev/shm would then kill the writer with SIGBUS
    mid-run; here it is a clear error before anything uses the segment."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise OutOfSharedMemory(
            f"segment {name!r}: /dev/shm has no room for {size:,} bytes "
            f"(free some space or make /dev/shm larger)"
        ) from None


def create(
    name: str,
    kind: Kind,
    version: int,
    payload_size: int,
    lifetime: Lifetime,
    *,
    owner: Owner | None = None,
    init: Callable[[mmap.mmap], None] | None = None,
) -> ShmSegment:
    """Create a segment, fully written (header, then `init(mapping)`) before it gets its
    name. `owner` is the process whose death makes it stale: for RUN segments the run's
    supervisor, which may be another process; the caller by default.

    Raises SegmentExists if the name is taken.
    """
    if lifetime is Lifetime.EPHEMERAL and owner not in (None, Owner.current()):
        raise ValueError("an EPHEMERAL segment belongs to the process that creates it")
    if payload_size < 0:
        raise ValueError(f"payload size must be >= 0, not {payload_size}")
    path = segment_path(name)
    header = Header(kind, lifetime, version, payload_size, owner or Owner.current(), time.time_ns())
    me = Owner.current()
    # Hidden (no `gm-` prefix at the start) so listings never see it; pid and start time
    # let cleanup remove one whose creator died between creating and linking it.
    temp = os.path.join(
        SHM_DIR, f".{PREFIX}{name}.{me.pid}-{me.start_ticks}-{next(_TEMP_SERIAL)}.tmp"
    )
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, header.size)
        _allocate(fd, name, header.size)
        mapping = mmap.mmap(fd, header.size)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    try:
        mapping[:HEADER_BYTES] = header.pack()
        if init is not None:
            init(mapping)
        os.link(temp, path)
    except FileExistsError:
        raise SegmentExists(f"segment {name!r} already exists at {path}") from None
    finally:
        mapping.close()
        os.close(fd)
        os.unlink(temp)
    # Map it again under its name: a mapping shows in /proc/<pid>/maps under the path it
    # was opened by, and listings look there for who maps a segment.
    segment = attach(name, kind, version, payload_size=payload_size)
    if segment.header != header:
        segment.close()
        raise SegmentExists(f"segment {name!r} was replaced at {path} while being created")
    return segment


def attach(
    name: str,
    kind: Kind,
    version: int,
    *,
    payload_size: int | None = None,
    min_size: int = HEADER_BYTES,
) -> ShmSegment:
    """Open and map an existing segment after checking its safety, header and size.

    `payload_size`: the size the caller expects (None: whatever the header says).
    `min_size`: files smaller than this are refused as corrupted before anything else.
    """
    path = segment_path(name)
    fd = _open(path, os.O_RDWR)
    try:
        header, size = _read_header(fd, path, min_size)
        _check(header, size, path, kind, version, payload_size)
        mapping = mmap.mmap(fd, size, flags=_MAP_FLAGS)
    except BaseException:
        os.close(fd)
        raise
    return ShmSegment(name, path, fd, mapping, header)


def create_or_attach(
    name: str,
    kind: Kind,
    version: int,
    payload_size: int,
    lifetime: Lifetime,
    *,
    owner: Owner | None = None,
    init: Callable[[mmap.mmap], None] | None = None,
) -> tuple[ShmSegment, bool]:
    """Attach the segment, or create it if absent; True when this call created it.

    Of processes racing to create it, one wins and the others attach its segment.
    An existing segment of another lifetime is refused: its owner meant something else.
    """
    while True:
        try:
            segment = attach(name, kind, version, payload_size=payload_size)
        except SegmentNotFound:
            try:
                return create(
                    name, kind, version, payload_size, lifetime, owner=owner, init=init
                ), True
            except SegmentExists:
                continue  # lost the race: attach the winner's
        if segment.header.lifetime is not lifetime:
            segment.close()
            raise SegmentLifetimeMismatch(
                f"{segment.path} is a {segment.header.lifetime.name} segment, not {lifetime.name}"
            )
        return segment, False


def read_header(name: str) -> tuple[Header, int]:
    """The header and file size of a segment, checked for safety, magic and checksum
    only (not kind, version or size): for listings and cleanup."""
    path = segment_path(name)
    fd = _open(path, os.O_RDONLY)
    try:
        return _read_header(fd, path, HEADER_BYTES)
    finally:
        os.close(fd)


def read(name: str, kind: Kind, version: int, length: int | None = None) -> tuple[Header, bytes]:
    """A copy of a segment's first `length` bytes (None: all of it), header included,
    without mapping it: for readers that only look (metrics, listings)."""
    path = segment_path(name)
    fd = _open(path, os.O_RDONLY)
    try:
        header, size = _read_header(fd, path, HEADER_BYTES)
        _check(header, size, path, kind, version, None)
        want = size if length is None else min(length, size)
        raw = os.pread(fd, want, 0)
    finally:
        os.close(fd)
    if len(raw) != want:
        raise SegmentSizeMismatch(f"{path}: read {len(raw)} bytes, not the {want} expected")
    return header, raw


def adopt(name: str, kind: Kind, owner: Owner) -> Header | None:
    """Make a stale segment `owner`'s (its header rewritten with the new owner, its payload
    untouched): a run that recovers what a crashed run left. None when there is no such
    segment, it is of another kind, or it is not stale (its owner lives, or DURABLE)."""
    path = segment_path(name)
    try:
        fd = _open(path, os.O_RDWR)
    except (SegmentNotFound, UnsafeSegment):
        return None
    try:
        header, _ = _read_header(fd, path, HEADER_BYTES)
        if header.kind != kind or not header.stale:
            return None
        adopted = Header(
            header.kind,
            header.lifetime,
            header.version,
            header.payload_size,
            owner,
            header.created_ns,
        )
        os.pwrite(fd, adopted.pack(), 0)
        return adopted
    except SegmentCorrupted:
        return None
    finally:
        os.close(fd)


def unlink(name: str) -> bool:
    """Remove a segment by name; False when there was none."""
    try:
        os.unlink(segment_path(name))
    except FileNotFoundError:
        return False
    return True


def remove_abandoned_temporaries(prefix: str = "") -> list[str]:
    """Unlink creation temporaries (see `create`) whose creator is dead; their paths.

    A creator killed between creating its temporary file and linking it leaves the file
    behind under a hidden name that carries the creator's pid and start time."""
    removed = []
    for filename in sorted(os.listdir(SHM_DIR)):
        match = _TEMP.match(filename)
        if match is None or not match["name"].startswith(prefix):
            continue
        if is_alive(int(match["pid"]), int(match["ticks"])):
            continue
        path = os.path.join(SHM_DIR, filename)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed


def _open(path: str, flags: int) -> int:
    """Open without following a symlink and without blocking on a FIFO, then check that
    the file is ours: a regular file, owned by our euid, writable by nobody else."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SegmentNotFound(f"no segment at {path}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeSegment(f"{path} is a symbolic link: refusing to follow it") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeSegment(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafeSegment(
                f"{path} is owned by uid {info.st_uid}, not by us (uid {os.geteuid()})"
            )
        if info.st_mode & 0o022:
            raise UnsafeSegment(
                f"{path} is writable by group or others (mode {stat.filemode(info.st_mode)})"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_header(fd: int, path: str, min_size: int) -> tuple[Header, int]:
    size = os.fstat(fd).st_size
    if size < min_size:
        raise SegmentCorrupted(f"{path}: segment is {size} bytes, smaller than any valid one")
    return Header.unpack(os.pread(fd, HEADER_BYTES, 0), path), size


def _check(
    header: Header, size: int, path: str, kind: Kind, version: int, payload_size: int | None
) -> None:
    if header.kind != kind:
        try:
            found = Kind(header.kind).name
        except ValueError:
            found = f"kind {header.kind}"
        raise SegmentKindMismatch(f"{path} is a {found} segment, not a {kind.name} segment")
    if header.version != version:
        raise SegmentVersionMismatch(
            f"{path}: {kind.name} layout version {header.version}, this build reads "
            f"version {version}"
        )
    if size != header.size:
        raise SegmentSizeMismatch(
            f"{path} holds {size} bytes, not the {header.size} its header gives"
        )
    if payload_size is not None and payload_size != header.payload_size:
        raise SegmentSizeMismatch(
            f"{path} holds {size} bytes, not the {HEADER_BYTES + payload_size} expected"
        )
