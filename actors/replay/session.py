"""The trading session filter: replay only rows inside the exchange's session hours.

The hours are a `TradingSession` (config/instruments.py, the type the instrument registry
uses too), in the exchange's time zone. There is no holiday calendar: a weekday holiday
is a session without rows.
"""

__all__ = ["SessionFilter", "TradingSession"]

from zoneinfo import ZoneInfo

import numpy as np

from actors.replay.timestamps import utc_to_wall
from config.instruments import TradingSession, time_of_day_ns

NS_PER_DAY = 86_400_000_000_000
_EPOCH_WEEKDAY = 3
"""1970-01-01, day 0 of the epoch, was a Thursday (Monday = 0)."""


class SessionFilter:
    """Tells, per row, whether it is inside a session and which session that is."""

    def __init__(self, session: TradingSession) -> None:
        self.zone = ZoneInfo(session.timezone)
        self.start_ns = time_of_day_ns(session.start)
        self.end_ns = time_of_day_ns(session.end)
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
