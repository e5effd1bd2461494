"""The health table: one row per actor in shared memory, readable by anyone.

The supervisor writes the lifecycle fields (state, pid, restarts, exit status);
the node writes the liveness fields (heartbeat, ready pid, cores, message counts,
ring depth, last error). Each field has one writer, so no locking is needed; a
reader may see a row mid-update, which for monitoring is fine.
"""

import contextlib
import enum
import mmap
import os
import time

import numpy as np

from ringbuf.procs import is_alive
from ringbuf.segment import PREFIX, SHM_DIR

MAGIC = 0x474D4845414C5448  # "GMHEALTH"
VERSION = 1
HEADER_BYTES = 64
NAME_BYTES = 32
ERROR_BYTES = 120

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
        # static
        ("name", f"S{NAME_BYTES}"),
        ("node", f"S{NAME_BYTES}"),
        ("last_error", f"S{ERROR_BYTES}"),
    ],
    align=True,
)
HEADER = np.dtype([("magic", "<u8"), ("version", "<u8"), ("rows", "<u8"), ("owner_pid", "<u8")])


class State(enum.IntEnum):
    EMPTY = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4
    FAILED = 5
    RESTARTING = 6


def health_path(system: str) -> str:
    return os.path.join(SHM_DIR, f"{PREFIX}{system}.health")


class HealthTable:
    """A mapped health table; `create` in the supervisor, `attach` everywhere else."""

    def __init__(self, path: str, mapping: mmap.mmap) -> None:
        self.path = path
        self._mapping = mapping
        self.header = np.frombuffer(mapping, dtype=HEADER, count=1)[0:1]
        rows = int(self.header["rows"][0])
        self.rows = np.frombuffer(mapping, dtype=ROW, count=rows, offset=HEADER_BYTES)
        self.index = {self.rows["name"][i].decode(): i for i in range(rows)}

    @classmethod
    def create(cls, system: str, actors: list[tuple[str, str]]) -> "HealthTable":
        """A table with a row per (actor, node); fails if the system already runs."""
        path = health_path(system)
        size = HEADER_BYTES + ROW.itemsize * len(actors)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        header = np.frombuffer(mapping, dtype=HEADER, count=1)
        header["magic"], header["version"] = MAGIC, VERSION
        header["rows"], header["owner_pid"] = len(actors), os.getpid()
        rows = np.frombuffer(mapping, dtype=ROW, count=len(actors), offset=HEADER_BYTES)
        for i, (actor, node) in enumerate(actors):
            rows["name"][i] = actor.encode()[:NAME_BYTES]
            rows["node"][i] = node.encode()[:NAME_BYTES]
        del header, rows
        return cls(path, mapping)

    @classmethod
    def attach(cls, system: str) -> "HealthTable":
        path = health_path(system)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise FileNotFoundError(f"no running system named {system!r} ({path})") from None
        try:
            mapping = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        header = np.frombuffer(mapping, dtype=HEADER, count=1)
        if int(header["magic"][0]) != MAGIC or int(header["version"][0]) != VERSION:
            raise ValueError(f"{path} is not a health table of this version")
        del header
        return cls(path, mapping)

    @property
    def owner_pid(self) -> int:
        return int(self.header["owner_pid"][0])

    @classmethod
    def remove_stale(cls, system: str) -> bool:
        """Unlink the table of a run whose supervisor is dead; True if one was removed.

        Readers (a status command, a test) may still map it, so its owner's life is
        what decides, not whether someone maps it.
        """
        try:
            table = cls.attach(system)
        except FileNotFoundError:
            return False
        except ValueError:
            table = None
        alive = table is not None and is_alive(table.owner_pid)
        if table is not None:
            table.close()
        if alive:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(health_path(system))
        return True

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
                    "last_error": row["last_error"].decode(errors="replace"),
                }
            )
        return out

    def close(self) -> None:
        """Unmap; views still held elsewhere keep the memory until they are collected."""
        del self.rows, self.header
        with contextlib.suppress(BufferError):
            self._mapping.close()

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
