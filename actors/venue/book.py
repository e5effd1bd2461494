"""The top of book of one symbol and its daily volatility, both kept from the feed's ticks."""

import math

import msgspec

from actors.messages import Tick

NS_PER_S = 1_000_000_000


class BookState(msgspec.Struct, array_like=True, frozen=True):
    """A `SymbolBook` as data (the venue's durable state): a restarted venue fills its
    first orders at the last quote it knew and with its volatility estimate, not from an
    empty book."""

    bid: float
    ask: float
    bid_size: int
    ask_size: int
    last: float
    variance_rate: float
    ref_mid: float
    ref_ns: int


class SymbolBook:
    """The last usable quote and trade of one symbol, and an online volatility estimate.

    Volatility, in points per trading day: whenever market time advances, the change of the
    mid price since the previous sample gives one estimate (d mid)^2 / dt of the variance
    rate in points^2 per second. An EWMA smooths the estimates (weight `1 - decay` on the
    newest, the first one seeds it) and `session_s` scales the rate to a day:
    sigma = sqrt(rate * session_s). The mid, not the trade price, so that the bid-ask bounce
    of the prints does not pass for volatility; a gap longer than `max_gap_s` (a night, a
    weekend, a halt) is not sampled, because its jump is not the intraday noise the impact
    model scales with. A day, because the impact model divides by average daily volume.
    """

    __slots__ = (
        "_decay",
        "_max_gap_ns",
        "_ref_mid",
        "_ref_ns",
        "_session_s",
        "_variance_rate",
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "last",
    )

    def __init__(self, decay: float, session_s: float, max_gap_s: float) -> None:
        self._decay = decay
        self._session_s = session_s
        self._max_gap_ns = round(max_gap_s * NS_PER_S)
        self._variance_rate = math.nan
        self._ref_mid = math.nan
        self._ref_ns = 0
        self.bid = math.nan
        self.ask = math.nan
        self.bid_size = 0
        self.ask_size = 0
        self.last = math.nan

    def on_tick(self, tick: Tick) -> bool:
        """Take the tick's quote and print; False (book unchanged) when the quote is unusable:
        a price that is not finite and positive, a negative size or a crossed book. Filling at
        such a quote would put a nonsense price into every position downstream."""
        bid, ask = tick.bid, tick.ask
        if not (0.0 < bid <= ask < math.inf) or tick.bid_size < 0 or tick.ask_size < 0:
            return False
        self.bid, self.ask = bid, ask
        self.bid_size, self.ask_size = tick.bid_size, tick.ask_size
        self.last = tick.price
        self._sample((bid + ask) * 0.5, tick.event_ns)
        return True

    def _sample(self, mid: float, event_ns: int) -> None:
        dt_ns = event_ns - self._ref_ns
        if math.isnan(self._ref_mid) or dt_ns > self._max_gap_ns:
            self._ref_mid, self._ref_ns = mid, event_ns
            return
        if dt_ns <= 0:
            return  # the same instant: its change folds into the next sample
        rate = (mid - self._ref_mid) ** 2 / (dt_ns / NS_PER_S)
        previous = self._variance_rate
        self._variance_rate = (
            rate if math.isnan(previous) else self._decay * previous + (1.0 - self._decay) * rate
        )
        self._ref_mid, self._ref_ns = mid, event_ns

    def to_state(self) -> BookState:
        return BookState(
            self.bid,
            self.ask,
            self.bid_size,
            self.ask_size,
            self.last,
            self._variance_rate,
            self._ref_mid,
            self._ref_ns,
        )

    def restore(self, state: BookState) -> None:
        self.bid, self.ask = state.bid, state.ask
        self.bid_size, self.ask_size = state.bid_size, state.ask_size
        self.last = state.last
        self._variance_rate, self._ref_mid, self._ref_ns = (
            state.variance_rate,
            state.ref_mid,
            state.ref_ns,
        )

    @property
    def has_quote(self) -> bool:
        return not math.isnan(self.bid)

    @property
    def sigma_points(self) -> float:
        """Daily volatility in points; NaN until two quotes less than `max_gap_s` apart."""
        return math.sqrt(self._variance_rate * self._session_s)
