"""The health table: one row per actor in shared memory, readable by anyone.

The supervisor writes the lifecycle fields (state, pid, restarts, exit status);
the node writes the liveness fields (heartbeat, ready pid, cores, message counts,
delivery counters, ring depth, last error). Each field has one writer, so no locking
is needed; a reader may see a row mid-update, which for monitoring is fine.

The table is the segment `<system>.health` (a Kind.HEALTH segment of ringbuf.shm,
lifetime RUN). Its owner in the common header is the run's supervisor, pid and start
time: that identity is how "this system is already running" is decided, and the
owner other processes of the run record in their own RUN segments (`run_owner`).
"""

import contextlib
import enum
import mmap
import time

import numpy as np

from ringbuf import shm

VERSION = 3
"""2: the common segment header; duplicates, unhandled, quarantined, gaps. 3: problem, dropped."""
TABLE_HEADER = 64  # after the common header: u64 row count, then reserved
ROWS_AT = shm.HEADER_BYTES + TABLE_HEADER
NAME_BYTES = 32
ERROR_BYTES = 240

ROW = np.dtype(
    [
        # supervisor-owned
        ("state", "<u8"),
        ("pid", "<u8"),
        ("restarts", "<u8"),
        ("exit_status", "<i8"),
        # node-owned
        ("ready_pid", "<u8"),
        ("heartbeat_ns", "<u8"),
        ("core_mask", "<u8"),
        ("msgs_in", "<u8"),
        ("msgs_out", "<u8"),
        ("ring_depth", "<u8"),
        ("error_len", "<u8"),
        ("duplicates", "<u8"),  # messages dropped by seq dedupe
        ("unhandled", "<u8"),  # messages of a type the actor does not handle
        ("quarantined", "<u8"),  # poison messages taken out of delivery
        ("gaps", "<u8"),  # seq gaps seen on inputs
        ("problem", "<u8"),  # 1 while the actor reports a problem (its text in last_error)
        ("dropped", "<u8"),  # messages its `drop` rings lost because they were full
        # static
        ("name", f"S{NAME_BYTES}"),
        ("node", f"S{NAME_BYTES}"),
        ("last_error", f"S{ERROR_BYTES}"),
    ],
    align=True,
)
DEGRADING = ("unhandled", "quarantined", "gaps", "problem")
"""Counters that make a row `degraded` once non-zero (duplicates are routine after a
restart: at-least-once delivery redelivers, dedupe drops)."""


class State(enum.IntEnum):
    EMPTY = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4
    FAILED = 5
    RESTARTING = 6


def health_name(system: str) -> str:
    return f"{system}.health"


def health_path(system: str) -> str:
    return shm.segment_path(health_name(system))


def run_owner(system: str) -> shm.Owner:
    """The owner that RUN segments of `system` record: the run's supervisor (the health
    table's owner), so they go stale with the run and not with the process that made
    them. Without a table (a test, a benchmark) the calling process is the run."""
    try:
        header, _ = shm.read_header(health_name(system))
    except (shm.ShmError, OSError):
        return shm.Owner.current()
    return header.owner if header.kind == shm.Kind.HEALTH else shm.Owner.current()


class HealthTable:
    """A mapped health table; `create` in the supervisor, `attach` everywhere else."""

    def __init__(self, segment: shm.ShmSegment) -> None:
        self._segment = segment
        self.path = segment.path
        (count,) = np.frombuffer(segment.mapping, dtype="<u8", count=1, offset=shm.HEADER_BYTES)
        if segment.header.payload_size != TABLE_HEADER + ROW.itemsize * int(count):
            raise shm.SegmentSizeMismatch(
                f"{segment.path}: {segment.header.payload_size} payload bytes cannot hold "
                f"the {int(count)} rows it claims"
            )
        self.rows = np.frombuffer(segment.mapping, dtype=ROW, count=int(count), offset=ROWS_AT)
        self.index = {self.rows["name"][i].decode(): i for i in range(int(count))}

    @classmethod
    def create(cls, system: str, actors: list[tuple[str, str]]) -> "HealthTable":
        """A table with a row per (actor, node), owned by this process (the supervisor).

        Raises FileExistsError (shm.SegmentExists) if the system already runs; a table
        left by a dead supervisor must be removed first (`remove_stale`).
        """

        def fill(mapping: mmap.mmap) -> None:
            np.frombuffer(mapping, dtype="<u8", count=1, offset=shm.HEADER_BYTES)[0] = len(actors)
            rows = np.frombuffer(mapping, dtype=ROW, count=len(actors), offset=ROWS_AT)
            for i, (actor, node) in enumerate(actors):
                rows["name"][i] = actor.encode()[:NAME_BYTES]
                rows["node"][i] = node.encode()[:NAME_BYTES]
            del rows  # a view left alive would keep the mapping from closing

        segment = shm.create(
            health_name(system),
            shm.Kind.HEALTH,
            VERSION,
            TABLE_HEADER + ROW.itemsize * len(actors),
            shm.Lifetime.RUN,
            init=fill,
        )
        return cls(segment)

    @classmethod
    def attach(cls, system: str) -> "HealthTable":
        """Attach a run's table. FileNotFoundError when no run of `system` has one;
        ValueError (an shm error) for a segment that is not a table of this version."""
        try:
            segment = shm.attach(health_name(system), shm.Kind.HEALTH, VERSION)
        except shm.SegmentNotFound:
            raise shm.SegmentNotFound(
                f"no running system named {system!r} ({health_path(system)})"
            ) from None
        try:
            return cls(segment)
        except BaseException:
            segment.close()
            raise

    @property
    def owner(self) -> shm.Owner:
        """The supervisor of the run: pid and start time."""
        return self._segment.header.owner

    @property
    def owner_pid(self) -> int:
        return self.owner.pid

    @classmethod
    def remove_stale(cls, system: str) -> bool:
        """Unlink the table of a run whose supervisor is dead; True if one was removed.

        Readers (a status command, a test) may still map it, so its owner's identity
        decides (pid and start time: a reused pid is not the supervisor), not whether
        someone maps it. A table whose header cannot be read has no owner to ask and
        goes too; a path we must not touch (a symlink, a foreign file) stays.
        """
        name = health_name(system)
        try:
            header, _ = shm.read_header(name)
        except (shm.SegmentNotFound, PermissionError):
            return False
        except shm.ShmError:
            return shm.unlink(name)
        return header.stale and shm.unlink(name)

    def rows_of(self, node: str) -> list[int]:
        return [i for i in range(len(self.rows)) if self.rows["node"][i].decode() == node]

    def set_error(self, row: int, text: str) -> None:
        raw = text.encode(errors="replace")[:ERROR_BYTES]
        self.rows["last_error"][row] = raw
        self.rows["error_len"][row] = len(raw)

    def snapshot(self) -> list[dict[str, object]]:
        """Every row as plain values, with the heartbeat age in seconds."""
        now = time.monotonic_ns()
        out = []
        for i in range(len(self.rows)):
            row = self.rows[i]
            heartbeat = int(row["heartbeat_ns"])
            mask = int(row["core_mask"])
            out.append(
                {
                    "actor": row["name"].decode(),
                    "node": row["node"].decode(),
                    "state": State(int(row["state"])).name,
                    "pid": int(row["pid"]),
                    "ready": int(row["ready_pid"]) == int(row["pid"]) != 0,
                    "cores": [c for c in range(64) if mask >> c & 1],
                    "restarts": int(row["restarts"]),
                    "exit_status": int(row["exit_status"]),
                    "heartbeat_age_s": round((now - heartbeat) / 1e9, 3) if heartbeat else None,
                    "msgs_in": int(row["msgs_in"]),
                    "msgs_out": int(row["msgs_out"]),
                    "ring_depth_bytes": int(row["ring_depth"]),
                    "duplicates": int(row["duplicates"]),
                    "unhandled": int(row["unhandled"]),
                    "quarantined": int(row["quarantined"]),
                    "gaps": int(row["gaps"]),
                    "problem": bool(row["problem"]),
                    "dropped": int(row["dropped"]),
                    "degraded": any(int(row[field]) for field in DEGRADING),
                    "last_error": row["last_error"].decode(errors="replace"),
                }
            )
        return out

    def close(self) -> None:
        """Unmap; views still held elsewhere keep the memory until they are collected."""
        del self.rows
        with contextlib.suppress(BufferError):
            self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()
