"""The latched risk controls, in a small shared-memory segment that outlives every process.

The segment `<system>.killswitch` (a Kind.KILLSWITCH segment of ringbuf.shm, lifetime
DURABLE) holds the kill switch and the trading state. They live outside the risk
actor so that a crash and restart of the actor (crash-only) cannot undo an operator's
decision: a switch engaged before the crash is still engaged after it, and any process
of the run (API, operator CLI) can engage it or read it. DURABLE means neither a run's
clean stop nor the stale cleanup removes it, so a latched switch survives crashes and
clean restarts alike; the risk actor removes it on a clean stop only when it is off
and trading ACTIVE.

Layout (little-endian, one 4 KiB page): the common segment header (64 bytes), then
eight u64 words, then NUL-padded UTF-8 text; offsets below are from the payload.

    word 0 engaged (0 / 1)      word 4 trading state (TradingState)
    word 1 engage count         word 5 state_changed_at_ns (wall clock)
    word 2 engaged_at_ns
    word 3 reset_at_ns          word 6 risk-reducing orders allowed while engaged (0 / 1)
                                word 7 FLATTEN requests so far (wall clock times)
    text: reason, engaged_by, reset_by, state_reason, state_by

Readers take no lock: the hot path reads one aligned word through a memoryview. Writers
serialise on `flock` and write the audit fields before the word they describe, so a
reader that sees the word set finds its audit fields already written (x86 stores are
not reordered with other stores).
"""

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import msgspec

from actors.messages import TradingState
from ringbuf import shm

if TYPE_CHECKING:
    from config.schema import SystemConfig

VERSION = 2  # 2: the common segment header replaces the file's own magic and version
SIZE = 4096
_PAYLOAD = SIZE - shm.HEADER_BYTES

(_ENGAGED, _COUNT, _ENGAGED_AT, _RESET_AT, _STATE, _STATE_AT, _REDUCING_ALLOWED, _FLATTEN) = range(
    8
)
_TEXT = {  # name: (byte offset in the payload, bytes)
    "reason": (64, 256),
    "engaged_by": (320, 64),
    "reset_by": (384, 64),
    "state_reason": (448, 256),
    "state_by": (704, 64),
}

_TRADING_STATES = tuple(sorted(TradingState))  # indexed by value: 0, 1, 2

HOLD_BY = "reconciliation at start"
"""`state_by` of a HALTED state that holds trading while parties reconcile at start."""
_HOLD_PREFIX = "waiting for "


class KillSwitchError(Exception):
    """The kill-switch segment exists but is not one (wrong size, magic, kind or layout
    version) or may not be opened (a symlink, another user's file)."""


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
    reducing_allowed: bool = False
    """Whether orders that only reduce a position pass while the switch is engaged."""
    flatten_requests: int = 0
    """FLATTEN requests so far (the risk actor closes every position once per request)."""


def reduces_exposure(position: int, side: int, quantity: int) -> bool:
    """Whether an order of `quantity` on `side` (+1 buy, -1 sell) only reduces `position`
    (never flips it): what an engaged switch lets through when `reducing_allowed`."""
    return position * side < 0 and quantity <= abs(position)


def killswitch_name(system: str) -> str:
    return f"{system}.killswitch"


def killswitch_path(system: str) -> str:
    return shm.segment_path(killswitch_name(system))


class KillSwitch:
    """A mapped kill switch. `open` creates it (disengaged, ACTIVE) or attaches it."""

    def __init__(self, segment: shm.ShmSegment) -> None:
        self._segment = segment
        self.path = segment.path
        self._payload = memoryview(segment.mapping)[shm.HEADER_BYTES :]
        self._words = self._payload.cast("Q")

    @classmethod
    def open(cls, system: str) -> "KillSwitch":
        """Attach the system's switch, creating it if absent (zeroed: off, ACTIVE). Of
        processes racing to create it, one wins and the others attach its segment."""
        try:
            segment, _ = shm.create_or_attach(
                killswitch_name(system),
                shm.Kind.KILLSWITCH,
                VERSION,
                _PAYLOAD,
                shm.Lifetime.DURABLE,
            )
        except shm.ShmError as error:
            raise KillSwitchError(str(error)) from error
        return cls(segment)

    @property
    def engaged(self) -> bool:
        """Read on every intent: one word, no lock, no syscall."""
        return self._words[_ENGAGED] != 0

    @property
    def trading_state(self) -> TradingState:
        """Read on every intent too: a tuple index, not an enum lookup by value."""
        return _TRADING_STATES[self._words[_STATE]]

    @property
    def reducing_allowed(self) -> bool:
        """Whether the engaged switch lets orders that only reduce a position through."""
        return self._words[_REDUCING_ALLOWED] != 0

    @property
    def reason(self) -> str:
        """Why the switch was last engaged (kept after a reset, for the audit)."""
        return self._read_text("reason")

    def engage(self, reason: str, by: str, reducing_allowed: bool = False) -> bool:
        """Latch the switch; True if this call engaged it, False if it already was.
        With `reducing_allowed`, orders that only reduce a position still pass (risk,
        execution and the venue adapter each check it against their own book).

        A second engage keeps the first one's reason, time and policy: the audit trail
        needs what tripped it, not the last of the alarms that followed.
        """
        with self._locked():
            if self._words[_ENGAGED]:
                return False
            self._write_text("reason", reason)
            self._write_text("engaged_by", by)
            self._words[_REDUCING_ALLOWED] = int(reducing_allowed)
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
        """Record a new trading state; True if it changed. It ends a hold for
        reconciliation, HALTED included (an operator's halt outlasts the hold)."""
        with self._locked():
            if self._words[_STATE] == state and self._holders() is None:
                return False
            self._set_state(state, by, reason)
            return True

    @property
    def flatten_requests(self) -> int:
        return self._words[_FLATTEN]

    def request_flatten(self, by: str, reason: str) -> int:
        """Ask for every position to be closed: trading REDUCING (from any state: a HALT
        would stop the closing orders too), then the request counted; its number."""
        with self._locked():
            self._set_state(TradingState.REDUCING, by, f"FLATTEN: {reason}")
            self._words[_FLATTEN] += 1
            return self._words[_FLATTEN]

    def restrict_to_reducing(self, by: str, reason: str) -> bool:
        """REDUCING from ACTIVE, or from a hold for reconciliation (trading is ACTIVE
        underneath: the fault must outlast the hold); True if this call changed the state.
        A HALTED (or already REDUCING) state stays as it is."""
        with self._locked():
            if self._words[_STATE] != TradingState.ACTIVE and self._holders() is None:
                return False
            self._set_state(TradingState.REDUCING, by, reason)
            return True

    def _set_state(self, state: TradingState, by: str, reason: str) -> None:
        """Audit fields first, then the word (the caller holds the lock)."""
        self._write_text("state_reason", reason)
        self._write_text("state_by", by)
        self._words[_STATE_AT] = time.time_ns()
        self._words[_STATE] = state

    def hold(self, party: str) -> bool:
        """Halt trading while `party` reconciles at start (nothing may move the books it
        compares): from ACTIVE, or joining a hold already in place (another party's, or
        one a previous run left). False when trading is restricted otherwise: that state
        stays, and its holder decides when it ends."""
        with self._locked():
            holders = self._holders()
            if holders is None:
                if self._words[_STATE] != TradingState.ACTIVE:
                    return False
                holders = []
            if party not in holders:
                self._set_hold([*holders, party])
            return True

    def holds_for(self, party: str) -> bool:
        """Whether trading is held for `party`'s reconciliation (a party restarted in
        the middle of it must finish it)."""
        with self._locked():
            return party in (self._holders() or ())

    def release(self, party: str) -> bool:
        """`party`'s reconciliation agreed: it no longer holds trading, which is ACTIVE
        again once no party holds it. True if trading was held for `party`; a state set
        by anyone else meanwhile (an operator, a fault) ended the hold and stays."""
        with self._locked():
            holders = self._holders()
            if holders is None or party not in holders:
                return False
            holders.remove(party)
            if holders:
                self._set_hold(holders)
            else:
                self._set_state(TradingState.ACTIVE, HOLD_BY, f"reconciled at start ({party} last)")
            return True

    def _holders(self) -> list[str] | None:
        """The parties holding trading for their reconciliation at start; None when
        trading is not held that way (the caller holds the lock)."""
        if self._words[_STATE] != TradingState.HALTED or self._read_text("state_by") != HOLD_BY:
            return None
        reason = self._read_text("state_reason")
        if not reason.startswith(_HOLD_PREFIX):
            return None
        return [party for party in reason[len(_HOLD_PREFIX) :].split(", ") if party]

    def _set_hold(self, holders: list[str]) -> None:
        self._set_state(TradingState.HALTED, HOLD_BY, _HOLD_PREFIX + ", ".join(holders))

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
            reducing_allowed=words[_REDUCING_ALLOWED] != 0,
            flatten_requests=words[_FLATTEN],
        )

    @property
    def at_rest(self) -> bool:
        """Off and ACTIVE, or only held for a reconciliation at start (which the next
        run does again): nothing latched that a restart would need to find."""
        if self.engaged:
            return False
        with self._locked():
            return self._words[_STATE] == TradingState.ACTIVE or self._holders() is not None

    def unlink(self) -> None:
        """Remove the segment (others keep their mapping until they close)."""
        self._segment.unlink()

    def close(self) -> None:
        """Unmap (the segment stays: the switch must outlive this process)."""
        self._words.release()
        self._payload.release()
        self._segment.close()

    def __enter__(self) -> "KillSwitch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._segment.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._segment.fd, fcntl.LOCK_UN)

    def _write_text(self, field: str, text: str) -> None:
        offset, size = _TEXT[field]
        self._payload[offset : offset + size] = text.encode()[:size].ljust(size, b"\0")

    def _read_text(self, field: str) -> str:
        offset, size = _TEXT[field]
        # A text cut at the field size may end inside a UTF-8 sequence: drop the fragment.
        return bytes(self._payload[offset : offset + size]).rstrip(b"\0").decode(errors="ignore")


def restrict_to_reducing(system: str, by: str, reason: str) -> bool:
    """A fault that leaves positions or the audit trail in doubt: only exposure-reducing
    orders pass (REDUCING) until an operator has looked (`KillSwitch.restrict_to_reducing`)."""
    with KillSwitch.open(system) as switch:
        return switch.restrict_to_reducing(by, reason)


def restriction_by(switch: KillSwitch, party: str) -> str | None:
    """Why trading is REDUCING, if `party` set it and it still is (None otherwise): a
    restarted actor shows its restriction in health again, until an operator resumes."""
    state = switch.state()
    if state.trading_state is TradingState.REDUCING and state.state_by == party:
        return state.state_reason
    return None


def engage_on_failure(config: "SystemConfig", reason: str) -> None:
    """A `failure_hooks` entry: the supervisor tree failing engages the switch, so the
    next run starts with trading blocked until an operator has looked and reset it."""
    with KillSwitch.open(config.name) as switch:
        switch.engage(f"the supervisor tree failed: {reason}", "supervisor")
