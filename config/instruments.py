"""The instrument registry: one definition of every tradable contract.

The top-level `[[instruments]]` table of a system config lists them; the feed, the venue,
risk, execution and the journal all read their contract terms (tick size, point value,
fees, price band, session) from it, never from their own params. An actor's params name
the instruments it serves by symbol, and a symbol that is not in the registry fails the
config load with the field's path (README "Instruments").

A config without an `[[instruments]]` table gets `DEFAULT_INSTRUMENTS`: the two equity
index futures the embedded default trades.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

from config.types import Fraction, NonNegative, Positive, Weekday

AssetClass = Literal["equity_index_future", "future", "equity", "fx", "crypto", "option"]
Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$")]
"""A ticker: letters, digits and . _ / - (ES, NQ, BRK.B, EUR/USD), at most 32 characters."""


NS_PER_DAY = 86_400_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def time_of_day_ns(text: str) -> int:
    """ "HH:MM" or "HH:MM:SS" (no zone) as nanoseconds after midnight."""
    t = time.fromisoformat(text)
    if t.tzinfo is not None:
        raise ValueError(f"session time {text!r} must not carry a zone: `timezone` gives it")
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000_000 + t.microsecond * 1000


class TradingSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Session hours in an exchange time zone.

    A session opens at `start` and closes at `end`, wall-clock time in the exchange's
    `timezone` (so it follows that zone's DST, e.g. 09:30-16:00 America/New_York is
    14:30-21:00 UTC in winter and 13:30-20:00 in summer), on the weekdays in `days`. An
    `end` earlier than `start` makes an overnight session, e.g. 18:00-17:00 for CME
    index futures with `days` Sunday to Thursday: the hours after midnight belong to the
    session opened the evening before. There is no holiday calendar.
    """

    timezone: str = "America/New_York"
    """IANA zone of the exchange."""
    start: str = "09:30"
    """Opening wall-clock time, "HH:MM" or "HH:MM:SS"; the open is inside the session."""
    end: str = "16:00"
    """Closing wall-clock time; the close is outside."""
    days: tuple[Weekday, ...] = (0, 1, 2, 3, 4)
    """Weekdays on which a session opens, Monday = 0 (default Monday to Friday)."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as e:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown session timezone {self.timezone!r}") from e
        if time_of_day_ns(self.start) == time_of_day_ns(self.end):
            raise ValueError("a session's start and end must differ")

    @property
    def length_ns(self) -> int:
        """Wall-clock length of a session (an overnight one wraps past midnight)."""
        return (time_of_day_ns(self.end) - time_of_day_ns(self.start)) % NS_PER_DAY

    def opens_on(self, day: date) -> bool:
        """Whether a session opens on the local date `day`."""
        return day.weekday() in self.days

    def window_ns(self, day: date) -> tuple[int, int]:
        """UTC ns of the open and the close of the session that opens on the local date
        `day` (as if one did: `opens_on` says whether it does), in the zone's time of
        that date (DST included)."""
        zone = ZoneInfo(self.timezone)
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        close_day = day + timedelta(days=1) if end <= start else day
        opened = datetime.combine(day, start, zone)
        closed = datetime.combine(close_day, end, zone)
        return _utc_ns(opened), _utc_ns(closed)


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The contract terms of one tradable instrument."""

    symbol: Symbol
    asset_class: AssetClass = "equity_index_future"
    tick_size: Positive = 0.25
    """Smallest price increment, in price units."""
    point_value: Positive = 50.0
    """Currency per price unit per contract (the multiplier: ES $50, NQ $20, an equity 1)."""
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "USD"
    """ISO 4217 code of the account currency P&L is booked in. One account currency per
    system: the loader refuses a registry that mixes them (there is no FX conversion)."""
    session: TradingSession = TradingSession()
    fee_per_contract: NonNegative = 2.25
    """Exchange + clearing fee per contract per side, in `currency`."""
    price_band_fraction: Fraction = 0.05
    """The venue rejects a limit price further than this from the last trade."""
    adv_contracts: Positive = 100_000.0
    """Average daily volume in contracts: the V of the venue's square-root impact law."""
    initial_margin: NonNegative = 0.0
    """Initial margin per contract, in `currency` (the clearing house publishes it and
    changes it with volatility); 0: unknown, and the risk monitor's margin use is NaN."""


DEFAULT_INSTRUMENTS = (
    Instrument(
        symbol="ES",
        tick_size=0.25,
        point_value=50.0,
        adv_contracts=100_000.0,
        initial_margin=13_000.0,
    ),
    Instrument(
        symbol="NQ",
        tick_size=0.25,
        point_value=20.0,
        adv_contracts=60_000.0,
        initial_margin=19_000.0,
    ),
)
"""E-mini S&P 500 and E-mini Nasdaq-100 futures (CME), regular trading hours."""


def check_registry(instruments: list[Instrument]) -> str | None:
    """What is wrong with a registry as a whole, as '<field path>: <reason>', or None."""
    seen: dict[str, int] = {}
    for i, instrument in enumerate(instruments):
        if instrument.symbol in seen:
            first = seen[instrument.symbol]
            return f"instruments[{i}].symbol: {instrument.symbol!r} is instruments[{first}] too"
        seen[instrument.symbol] = i
        if instrument.currency != instruments[0].currency:
            return (
                f"instruments[{i}].currency: {instrument.currency} differs from the account "
                f"currency {instruments[0].currency} of instruments[0] (no FX conversion)"
            )
    return None
