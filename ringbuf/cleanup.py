"""Find and remove ring segments left behind by crashed processes."""

import os
from dataclasses import dataclass

from ringbuf.errors import RingError
from ringbuf.procs import is_alive
from ringbuf.segment import PERSIST, PREFIX, SHM_DIR, Segment


@dataclass(frozen=True)
class SegmentStatus:
    name: str
    path: str
    size: int
    creator_pid: int | None
    creator_alive: bool
    mapped: bool
    problem: str | None

    @property
    def persistent(self) -> bool:
        return f".{PERSIST}." in self.name

    @property
    def stale(self) -> bool:
        """Nobody can still use it: its creator is gone and no process maps it (and it is
        not state meant to outlive runs)."""
        return not self.creator_alive and not self.mapped and not self.persistent


def _mapped_paths() -> set[str]:
    """Every /dev/shm path some process on this machine currently maps."""
    paths: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as maps:
                for line in maps:
                    if SHM_DIR in line:
                        paths.add(line.split(maxsplit=5)[-1].strip().removesuffix(" (deleted)"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return paths


def list_segments(prefix: str = "") -> list[SegmentStatus]:
    """Every GrandModel ring segment whose ring name starts with `prefix`."""
    mapped = _mapped_paths()
    found = []
    for filename in sorted(os.listdir(SHM_DIR)):
        if not filename.startswith(PREFIX + prefix):
            continue
        path = os.path.join(SHM_DIR, filename)
        name = filename[len(PREFIX) :]
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            continue
        creator_pid: int | None = None
        creator_alive = False
        problem = None
        try:
            segment = Segment.attach(name)
        except (RingError, ValueError, OSError) as error:
            problem = str(error)
        else:
            info = segment.info
            segment.close()
            creator_pid = info.creator_pid
            creator_alive = is_alive(info.creator_pid, info.creator_start_ticks)
        found.append(
            SegmentStatus(name, path, size, creator_pid, creator_alive, path in mapped, problem)
        )
    return found


def remove_stale(prefix: str = "") -> list[str]:
    """Unlink stale segments under `prefix`; returns the ring names removed."""
    removed = []
    for status in list_segments(prefix):
        if status.stale:
            try:
                os.unlink(status.path)
            except FileNotFoundError:
                continue
            removed.append(status.name)
    return removed
