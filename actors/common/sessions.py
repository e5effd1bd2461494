"""Whether an instrument's trading session is open at a given market time."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from config.instruments import TradingSession


class SessionClock:
    """`is_open(utc_ns)` for one `TradingSession`, in its time zone (DST included).

    The window of the last open session found is kept, so asking again inside it (every
    order of a trading day) is two comparisons; a time outside it looks the session up
    from its local date: the session opening that day, or an overnight one opened the day
    before."""

    def __init__(self, session: TradingSession) -> None:
        self.session = session
        self._zone = ZoneInfo(session.timezone)
        self._window = (0, 0)

    def is_open(self, utc_ns: int) -> bool:
        low, high = self._window
        if low <= utc_ns < high:
            return True
        day = datetime.fromtimestamp(utc_ns / 1e9, self._zone).date()
        for opened in (day, day - timedelta(days=1)):
            if self.session.opens_on(opened):
                low, high = self.session.window_ns(opened)
                if low <= utc_ns < high:
                    self._window = (low, high)
                    return True
        return False
