"""The trading session filter: replay only rows inside the exchange's session hours.

A session opens at `start` and closes at `end`, wall-clock time in the exchange's
`timezone` (so it follows that zone's DST, e.g. 09:30-16:00 America/New_York is
14:30-21:00 UTC in winter and 13:30-20:00 in summer), on the weekdays in `days`. An
`end` earlier than `start` makes an overnight session, e.g. 18:00-17:00 for CME
index futures with `days` Sunday to Thursday: the hours after midnight belong to the
session opened the evening before. There is no holiday calendar: a weekday holiday is
a session without rows.
"""

from datetime import time
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from actors.replay.timestamps import utc_to_wall
from config.types import Weekday

NS_PER_DAY = 86_400_000_000_000
_EPOCH_WEEKDAY = 3
"""1970-01-01, day 0 of the epoch, was a Thursday (Monday = 0)."""


def _time_of_day_ns(text: str) -> int:
    t = time.fromisoformat(text)
    if t.tzinfo is not None:
        raise ValueError(f"session time {text!r} must not carry a zone: `timezone` gives it")
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000_000 + t.microsecond * 1000


class TradingSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Session hours in an exchange time zone (see the module docstring)."""

    timezone: str
    """IANA zone of the exchange, e.g. "America/New_York"."""
    start: str = "09:30"
    """Opening wall-clock time, "HH:MM" or "HH:MM:SS"; rows at the open are inside."""
    end: str = "16:00"
    """Closing wall-clock time; rows at the close are outside."""
    days: tuple[Weekday, ...] = (0, 1, 2, 3, 4)
    """Weekdays on which a session opens, Monday = 0 (default Monday to Friday)."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as e:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown session timezone {self.timezone!r}") from e
        if _time_of_day_ns(self.start) == _time_of_day_ns(self.end):
            raise ValueError("a session's start and end must differ")


class SessionFilter:
    """Tells, per row, whether it is inside a session and which session that is."""

    def __init__(self, session: TradingSession) -> None:
        self.zone = ZoneInfo(session.timezone)
        self.start_ns = _time_of_day_ns(session.start)
        self.end_ns = _time_of_day_ns(session.end)
        self.days = np.asarray(session.days, np.int64)

    def classify(self, utc_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each row is inside a session, and the local day number (days since
        1970-01-01) on which its session opened, which tells sessions apart."""
        wall = utc_to_wall(utc_ns, self.zone)
        day = wall // NS_PER_DAY
        time_of_day = wall - day * NS_PER_DAY
        after_open = time_of_day >= self.start_ns
        before_close = time_of_day < self.end_ns
        if self.start_ns < self.end_ns:
            in_hours = after_open & before_close
            opened = day
        else:
            in_hours = after_open | before_close
            opened = np.where(after_open, day, day - 1)
        inside = in_hours & np.isin((opened + _EPOCH_WEEKDAY) % 7, self.days)
        return inside, opened
