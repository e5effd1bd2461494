"""The latched risk controls, in a small shared-memory file that outlives every process.

`/dev/shm/gm-<system>.killswitch` holds the kill switch and the trading state. They live
outside the risk actor so that a crash and restart of the actor (crash-only) cannot undo
an operator's decision: a switch engaged before the crash is still engaged after it, and
any process of the run (API, operator CLI) can engage it or read it.

Layout (little-endian, one 4 KiB page): eight u64 words, then NUL-padded UTF-8 text.

    word 0 magic "GMKILLSW"     word 4 engaged_at_ns (wall clock)
    word 1 layout version       word 5 reset_at_ns (wall clock)
    word 2 engaged (0 / 1)      word 6 trading state (TradingState)
    word 3 engage count         word 7 state_changed_at_ns (wall clock)
    text: reason, engaged_by, reset_by, state_reason, state_by

Readers take no lock: the hot path reads one aligned word through a memoryview. Writers
serialise on `flock` and write the audit fields before the word they describe, so a
reader that sees the word set finds its audit fields already written (x86 stores are
not reordered with other stores).

We map the file with os.open/mmap rather than multiprocessing.shared_memory, whose
resource tracker unlinks a segment when a process that attached it exits.
"""

import contextlib
import fcntl
import mmap
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from actors.messages import TradingState
from ringbuf.segment import PERSIST, PREFIX, SHM_DIR

MAGIC = 0x5753_4C4C_494B_4D47  # b"GMKILLSW" read as a little-endian u64
VERSION = 1
SIZE = 4096

_MAGIC, _VERSION, _ENGAGED, _COUNT, _ENGAGED_AT, _RESET_AT, _STATE, _STATE_AT = range(8)
_TEXT = {  # name: (byte offset, bytes)
    "reason": (64, 256),
    "engaged_by": (320, 64),
    "reset_by": (384, 64),
    "state_reason": (448, 256),
    "state_by": (704, 64),
}

_TRADING_STATES = tuple(sorted(TradingState))  # indexed by value: 0, 1, 2


class KillSwitchError(Exception):
    """The kill-switch file exists but is not one (wrong size, magic or layout version)."""


class KillSwitchState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the file records, for snapshots, the API and the audit trail."""

    engaged: bool
    engage_count: int
    engaged_at_ns: int
    reason: str
    engaged_by: str
    reset_at_ns: int
    reset_by: str
    trading_state: TradingState
    state_changed_at_ns: int
    state_reason: str
    state_by: str


def killswitch_path(system: str) -> str:
    """A `persist` segment of the run: neither the run's shutdown sweep nor the stale
    cleanup removes it, so a latched switch survives crashes and clean restarts alike.
    The risk actor removes it on a clean stop only when it is off and trading ACTIVE."""
    return os.path.join(SHM_DIR, f"{PREFIX}{system}.{PERSIST}.killswitch")


class KillSwitch:
    """A mapped kill-switch file. `open` creates it (disengaged, ACTIVE) or attaches it."""

    def __init__(self, path: str, fd: int, mapping: mmap.mmap) -> None:
        self.path = path
        self._fd = fd
        self._mapping = mapping
        self._words = memoryview(mapping).cast("Q")

    @classmethod
    def open(cls, system: str) -> "KillSwitch":
        path = killswitch_path(system)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            fd = _create(path)
        try:
            size = os.fstat(fd).st_size
            if size != SIZE:
                raise KillSwitchError(f"{path} is {size} bytes, a kill switch is {SIZE}")
            mapping = mmap.mmap(fd, SIZE)
        except BaseException:
            os.close(fd)
            raise
        switch = cls(path, fd, mapping)
        magic, version = switch._words[_MAGIC], switch._words[_VERSION]
        if magic != MAGIC or version != VERSION:
            switch.close()
            raise KillSwitchError(
                f"{path} is not a kill switch of layout {VERSION} "
                f"(magic {magic:#x}, version {version})"
            )
        return switch

    @property
    def engaged(self) -> bool:
        """Read on every intent: one word, no lock, no syscall."""
        return self._words[_ENGAGED] != 0

    @property
    def trading_state(self) -> TradingState:
        """Read on every intent too: a tuple index, not an enum lookup by value."""
        return _TRADING_STATES[self._words[_STATE]]

    @property
    def reason(self) -> str:
        """Why the switch was last engaged (kept after a reset, for the audit)."""
        return self._read_text("reason")

    def engage(self, reason: str, by: str) -> bool:
        """Latch the switch; True if this call engaged it, False if it already was.

        A second engage keeps the first one's reason and time: the audit trail needs
        what tripped it, not the last of the alarms that followed.
        """
        with self._locked():
            if self._words[_ENGAGED]:
                return False
            self._write_text("reason", reason)
            self._write_text("engaged_by", by)
            self._words[_ENGAGED_AT] = time.time_ns()
            self._words[_COUNT] += 1
            self._words[_ENGAGED] = 1
            return True

    def reset(self, by: str) -> bool:
        """Clear the switch; True if it was engaged. Authenticating `by` is the caller's job
        (the API's token): this file only records who it was."""
        with self._locked():
            if not self._words[_ENGAGED]:
                return False
            self._write_text("reset_by", by)
            self._words[_RESET_AT] = time.time_ns()
            self._words[_ENGAGED] = 0
            return True

    def set_trading_state(self, state: TradingState, by: str, reason: str) -> bool:
        """Record a new trading state; True if it changed."""
        with self._locked():
            if self._words[_STATE] == state:
                return False
            self._write_text("state_reason", reason)
            self._write_text("state_by", by)
            self._words[_STATE_AT] = time.time_ns()
            self._words[_STATE] = state
            return True

    def state(self) -> KillSwitchState:
        words = self._words
        return KillSwitchState(
            engaged=words[_ENGAGED] != 0,
            engage_count=words[_COUNT],
            engaged_at_ns=words[_ENGAGED_AT],
            reason=self.reason,
            engaged_by=self._read_text("engaged_by"),
            reset_at_ns=words[_RESET_AT],
            reset_by=self._read_text("reset_by"),
            trading_state=_TRADING_STATES[words[_STATE]],
            state_changed_at_ns=words[_STATE_AT],
            state_reason=self._read_text("state_reason"),
            state_by=self._read_text("state_by"),
        )

    @property
    def at_rest(self) -> bool:
        """Off and ACTIVE: nothing latched that a restart would need to find."""
        return not self.engaged and self.trading_state == TradingState.ACTIVE

    def unlink(self) -> None:
        """Remove the file (others keep their mapping until they close)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        """Unmap (the file stays: the switch must outlive this process)."""
        self._words.release()
        self._mapping.close()
        os.close(self._fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _write_text(self, field: str, text: str) -> None:
        offset, size = _TEXT[field]
        self._mapping[offset : offset + size] = text.encode()[:size].ljust(size, b"\0")

    def _read_text(self, field: str) -> str:
        offset, size = _TEXT[field]
        # A text cut at the field size may end inside a UTF-8 sequence: drop the fragment.
        return self._mapping[offset : offset + size].rstrip(b"\0").decode(errors="ignore")


def _create(path: str) -> int:
    """Create the file fully initialised under a private name, then link it into place,
    so that a process racing us never attaches a half-written header. Returns an fd on
    whichever file won the race."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        with mmap.mmap(fd, SIZE) as mapping:
            header = memoryview(mapping).cast("Q")
            header[_MAGIC] = MAGIC
            header[_VERSION] = VERSION
            header.release()
        os.link(tmp, path)
    except FileExistsError:
        os.close(fd)
        return os.open(path, os.O_RDWR)
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.unlink(tmp)
    return fd
