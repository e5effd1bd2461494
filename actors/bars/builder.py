"""Incremental OHLCV bars with ATR(14) and 5-bar momentum, from ticks in market time.

Buckets: a tick at market time t (ns since the epoch) belongs to the bar of timeframe T
starting at floor(t / T) * T, so boundaries are aligned to the epoch (and so to UTC
midnight for every T dividing a day). A bar closes, and is returned, when the first tick
of a later bucket arrives; a bucket without ticks (a night, a halt) yields no bar.
When one tick closes several timeframes, the bars come in the order of `timeframes`.

Each closed bar goes through `actors.indicators.classic.Atr(14)` and `Momentum(5)`, the
one implementation of both (validated there against an independent reference), so a bar's
`atr` and `momentum_5` are the values the features see for the same bars:
- ATR(14), Wilder smoothing of the true range, TR_1 = H_1 - L_1; NaN for the first 13 bars;
- momentum_5 = (C_t - C_{t-5}) / C_{t-5} * 100; NaN for the first 5 bars.
A bar those indicators skip (a non-finite price; for momentum also a close <= 0) gets NaN
for that value and leaves their state as it was.

Ticks must come in non-decreasing market time; an older tick (a replay overlap) is
dropped and counted in `late_ticks`. A tick whose price is not a finite number or whose
size is negative is dropped and counted in `bad_ticks`: it never reaches a bar.

`state()` / `restore()` turn a builder into data and back (the bars actor's durable
state, per symbol): the bars in progress and the indicators continue across a restart.
"""

import math
from collections.abc import Sequence

import msgspec
import numpy as np

from actors.indicators.classic import Atr, Momentum
from actors.messages import Bar, Tick

ATR_PERIOD = 14
MOMENTUM_BARS = 5
NS_PER_S = 1_000_000_000
_NO_BARS: tuple[Bar, ...] = ()


class FrameState(msgspec.Struct, array_like=True):
    """One timeframe's bar in progress and indicator states (`BarBuilder.state`)."""

    timeframe_s: int
    bucket: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    tick_count: int
    atr: list[float]
    momentum: list[float]


class BuilderState(msgspec.Struct, array_like=True):
    """A `BarBuilder` as data."""

    last_ns: int
    late_ticks: int
    frames: list[FrameState]
    bad_ticks: int = 0


class _Frame:
    """The bar in progress and the indicator state of one timeframe."""

    __slots__ = (
        "atr",
        "bucket",
        "close",
        "high",
        "low",
        "momentum",
        "open",
        "tick_count",
        "timeframe_ns",
        "timeframe_s",
        "volume",
    )

    def __init__(self, timeframe_s: int) -> None:
        self.timeframe_s = timeframe_s
        self.timeframe_ns = timeframe_s * NS_PER_S
        self.bucket = -1  # start of the bar in progress / timeframe_ns; -1 before any tick
        self.open = self.high = self.low = self.close = math.nan
        self.volume = 0
        self.tick_count = 0
        self.atr = Atr(ATR_PERIOD)
        self.momentum = Momentum(MOMENTUM_BARS)

    def state(self) -> FrameState:
        return FrameState(
            self.timeframe_s,
            self.bucket,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.tick_count,
            self.atr.state.tolist(),
            self.momentum.state.tolist(),
        )

    def restore(self, state: FrameState) -> None:
        self.bucket = state.bucket
        self.open, self.high, self.low, self.close = state.open, state.high, state.low, state.close
        self.volume, self.tick_count = state.volume, state.tick_count
        self.atr.restore(np.asarray(state.atr, dtype=np.float64))
        self.momentum.restore(np.asarray(state.momentum, dtype=np.float64))

    def start(self, bucket: int, price: float, size: int) -> None:
        self.bucket = bucket
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.tick_count = 1

    def close_bar(self, symbol: str, origin_ns: int) -> Bar:
        """Finish the bar in progress: update ATR and momentum, return the Bar."""
        high, low, close = self.high, self.low, self.close
        start_ns = self.bucket * self.timeframe_ns
        return Bar(
            symbol=symbol,
            timeframe_s=self.timeframe_s,
            start_ns=start_ns,
            end_ns=start_ns + self.timeframe_ns,
            open=self.open,
            high=high,
            low=low,
            close=close,
            volume=self.volume,
            atr=self.atr.update(high, low, close),
            momentum_5=self.momentum.update(close),
            ticks=self.tick_count,
            origin_ns=origin_ns,
        )


class BarBuilder:
    """Bars of several timeframes for one symbol, updated tick by tick."""

    def __init__(self, symbol: str, timeframes: Sequence[int] = (300, 1800)) -> None:
        if not timeframes or any(tf <= 0 for tf in timeframes):
            raise ValueError(f"timeframes must be positive seconds, got {list(timeframes)}")
        if len(set(timeframes)) != len(timeframes):
            raise ValueError(f"a timeframe appears twice in {list(timeframes)}")
        self.symbol = symbol
        self._frames = tuple(_Frame(tf) for tf in timeframes)
        self._last_ns = -1
        self.late_ticks = 0
        self.bad_ticks = 0

    def state(self) -> BuilderState:
        """The builder as data, for the durable state."""
        frames = [frame.state() for frame in self._frames]
        return BuilderState(self._last_ns, self.late_ticks, frames, self.bad_ticks)

    def restore(self, state: BuilderState) -> bool:
        """Continue from a builder's `state`; False (nothing changed) when it was saved
        with other timeframes (a config change: the bars start afresh)."""
        if [f.timeframe_s for f in state.frames] != [f.timeframe_s for f in self._frames]:
            return False
        for frame, saved in zip(self._frames, state.frames, strict=True):
            frame.restore(saved)
        self._last_ns, self.late_ticks = state.last_ns, state.late_ticks
        self.bad_ticks = state.bad_ticks
        return True

    def on_tick(self, tick: Tick) -> Sequence[Bar]:
        """Add a tick; return the bars it closed (usually none).

        Each closed bar's `origin_ns` is the tick's, so the path that the bar starts can
        be traced back to the tick; a history tick closes history bars.
        """
        price = tick.price
        size = tick.size
        if not -math.inf < price < math.inf or size < 0:  # NaN fails both comparisons
            self.bad_ticks += 1
            return _NO_BARS
        event_ns = tick.event_ns
        if event_ns < self._last_ns:
            self.late_ticks += 1
            return _NO_BARS
        self._last_ns = event_ns
        closed: list[Bar] | None = None
        for frame in self._frames:
            bucket = event_ns // frame.timeframe_ns
            if bucket == frame.bucket:
                if price > frame.high:
                    frame.high = price
                elif price < frame.low:
                    frame.low = price
                frame.close = price
                frame.volume += size
                frame.tick_count += 1
                continue
            if frame.bucket >= 0:
                bar = frame.close_bar(self.symbol, tick.origin_ns)
                bar.history = tick.history
                if closed is None:
                    closed = [bar]
                else:
                    closed.append(bar)
            frame.start(bucket, price, size)
        return _NO_BARS if closed is None else closed
