"""List segments and remove those nobody will use again, judged by their headers."""

import os
from collections.abc import Iterable
from dataclasses import dataclass

from ringbuf import shm


@dataclass(frozen=True)
class SegmentStatus:
    """One segment under /dev/shm as its common header describes it.

    `kind`, `lifetime`, `version`, `owner` and `created_ns` are None when the header
    cannot be read; `problem` then says why (and it also flags a size that disagrees
    with the header).
    """

    name: str
    path: str
    size: int
    kind: shm.Kind | int | None
    lifetime: shm.Lifetime | None
    version: int | None
    owner: shm.Owner | None
    owner_alive: bool
    created_ns: int | None
    mapped: bool
    problem: str | None
    unsafe: bool
    """A symlink, not a regular file, not ours, or writable by others: never removed."""

    @property
    def stale(self) -> bool:
        """Nobody will use it again.

        With a header: not DURABLE and its owner (pid and start time) is gone. Without
        one (garbage, or a layout older than the common header): nobody maps it, since
        segments only get their names once fully written. Unsafe paths never are.
        """
        if self.unsafe:
            return False
        if self.lifetime is None:
            return not self.mapped
        return self.lifetime is not shm.Lifetime.DURABLE and not self.owner_alive


def _mapped_paths() -> set[str]:
    """Every /dev/shm path some process on this machine currently maps."""
    paths: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as maps:
                for line in maps:
                    if shm.SHM_DIR in line:
                        paths.add(line.split(maxsplit=5)[-1].strip().removesuffix(" (deleted)"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return paths


def _status(name: str, mapped: set[str]) -> SegmentStatus | None:
    path = shm.segment_path(name)
    try:
        size = os.lstat(path).st_size
        header, size = shm.read_header(name)
    except (FileNotFoundError, shm.SegmentNotFound):
        return None  # removed since the listing
    except (shm.ShmError, OSError) as error:
        # Not ours to judge (a symlink, a foreign file: UnsafeSegment is a PermissionError).
        unsafe = isinstance(error, PermissionError)
        return SegmentStatus(
            name,
            path,
            size,
            None,
            None,
            None,
            None,
            False,
            None,
            path in mapped,
            str(error),
            unsafe,
        )
    try:
        kind: shm.Kind | int = shm.Kind(header.kind)
    except ValueError:
        kind = header.kind
    problem = None
    if size != header.size:
        problem = f"{path} holds {size} bytes, not the {header.size} its header gives"
    return SegmentStatus(
        name=name,
        path=path,
        size=size,
        kind=kind,
        lifetime=header.lifetime,
        version=header.version,
        owner=header.owner,
        owner_alive=header.owner.alive,
        created_ns=header.created_ns,
        mapped=path in mapped,
        problem=problem,
        unsafe=False,
    )


def list_segments(prefix: str = "") -> list[SegmentStatus]:
    """Every GrandModel segment whose name starts with `prefix`, sorted by name."""
    mapped = _mapped_paths()
    found = []
    for name in shm.segment_names(prefix):
        status = _status(name, mapped)
        if status is not None:
            found.append(status)
    return found


def remove_stale(prefix: str = "") -> list[str]:
    """Unlink stale segments under `prefix` (never DURABLE ones) and temporaries of
    creators that died mid-creation; returns the names of the segments removed."""
    shm.remove_abandoned_temporaries(prefix)
    return _remove(status for status in list_segments(prefix) if status.stale)


def remove_run(prefix: str, owner: shm.Owner | None = None) -> list[str]:
    """What a run's clean stop removes under `prefix`: the RUN segments that `owner` (the
    run's supervisor; by default this process) owns, and whatever is stale. DURABLE
    segments stay for the next run; returns the names removed."""
    owner = owner or shm.Owner.current()
    shm.remove_abandoned_temporaries(prefix)
    return _remove(
        status
        for status in list_segments(prefix)
        if status.stale or (status.lifetime is shm.Lifetime.RUN and status.owner == owner)
    )


def _remove(statuses: Iterable[SegmentStatus]) -> list[str]:
    removed = []
    for status in statuses:
        try:
            os.unlink(status.path)
        except FileNotFoundError:
            continue
        removed.append(status.name)
    return removed
