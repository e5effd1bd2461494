"""Bars from ticks: OHLCV, ATR and momentum against whole-array references."""

import math
import subprocess
import sys

import msgspec
import numpy as np
import pytest

from actors.bars import ATR_PERIOD, MOMENTUM_BARS, BarBuilder, BarsActor, BarsParams
from actors.feed import MarketParams, SyntheticMarket, TickBatch
from actors.indicators.classic import Atr, Momentum
from actors.messages import AnyMessage, Bar, Control, ControlCommand, Tick
from kernel.codec import Codec
from tests.helpers import actor_context

NS = 1_000_000_000
T0 = 1_767_623_400 * NS  # 2026-01-05 14:30 UTC, a 30-minute boundary


def _ticks(batch: TickBatch) -> list[Tick]:
    """Ticks with origin_ns = 1000 + their index, so each bar's closing tick is traceable."""
    return [
        Tick(
            symbol="ES",
            price=price,
            size=size,
            bid=bid,
            ask=ask,
            event_ns=event_ns,
            origin_ns=1000 + i,
        )
        for i, (event_ns, price, size, bid, ask) in enumerate(
            zip(
                batch.event_ns.tolist(),
                batch.price.tolist(),
                batch.size.tolist(),
                batch.bid.tolist(),
                batch.ask.tolist(),
                strict=True,
            )
        )
    ]


def _tick(seconds: float, price: float, size: int = 1, origin_ns: int = 0) -> Tick:
    return Tick(
        symbol="ES",
        price=price,
        size=size,
        bid=price - 0.25,
        ask=price,
        event_ns=T0 + round(seconds * NS),
        origin_ns=origin_ns,
    )


def _reference(batch: TickBatch, timeframe_s: int) -> dict[str, np.ndarray]:
    """Closed bars of one timeframe over the whole tick array, by plain numpy."""
    bucket = batch.event_ns // (timeframe_s * NS)
    every_start = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    closers = every_start[1:]  # the first tick of the next bucket closes a bar
    starts = every_start[:-1]  # the last bucket is still open
    price = batch.price
    high = np.maximum.reduceat(price, every_start)[:-1]
    low = np.minimum.reduceat(price, every_start)[:-1]
    close = price[closers - 1]
    prev_close = np.r_[np.nan, close[:-1]]
    true_range = np.where(
        np.isnan(prev_close),
        high - low,
        np.maximum.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)]),
    )
    atr = np.full(len(starts), np.nan)
    if len(starts) >= ATR_PERIOD:
        atr[ATR_PERIOD - 1] = true_range[:ATR_PERIOD].mean()
        for k in range(ATR_PERIOD, len(starts)):
            atr[k] = (atr[k - 1] * (ATR_PERIOD - 1) + true_range[k]) / ATR_PERIOD
    momentum = np.full(len(starts), np.nan)
    momentum[5:] = (close[5:] - close[:-5]) / close[:-5] * 100
    return {
        "start_ns": bucket[starts] * timeframe_s * NS,
        "open": price[starts],
        "high": high,
        "low": low,
        "close": close,
        "volume": np.add.reduceat(batch.size, every_start)[:-1],
        "ticks": closers - starts,
        "atr": atr,
        "momentum_5": momentum,
        "origin_ns": 1000 + closers,
        "closer": closers,
    }


@pytest.fixture(scope="module")
def market() -> TickBatch:
    """Three sessions of 1-second ticks: two overnight gaps and a weekend-free calendar."""
    return SyntheticMarket(MarketParams(seed=13, symbols=("ES",))).next_batch(23_400 * 3)


def test_bars_equal_the_whole_array_reference(market):
    builder = BarBuilder("ES", (300, 1800))
    closed_at: dict[int, list[int]] = {300: [], 1800: []}
    bars: dict[int, list[Bar]] = {300: [], 1800: []}
    for i, tick in enumerate(_ticks(market)):
        for bar in builder.on_tick(tick):
            bars[bar.timeframe_s].append(bar)
            closed_at[bar.timeframe_s].append(i)
    for timeframe_s in (300, 1800):
        ref = _reference(market, timeframe_s)
        got = bars[timeframe_s]
        assert len(got) == len(ref["open"]) == 3 * 23_400 // timeframe_s - 1
        assert closed_at[timeframe_s] == ref["closer"].tolist()
        for name in ("start_ns", "open", "high", "low", "close", "volume", "ticks", "origin_ns"):
            assert [getattr(bar, name) for bar in got] == ref[name].tolist(), name
        assert [bar.end_ns - bar.start_ns for bar in got] == [timeframe_s * NS] * len(got)
        assert all(bar.symbol == "ES" and bar.timeframe_s == timeframe_s for bar in got)
        for name in ("atr", "momentum_5"):
            values = np.array([getattr(bar, name) for bar in got])
            np.testing.assert_allclose(values, ref[name], rtol=0, atol=1e-9, equal_nan=True)
        assert np.isnan([bar.atr for bar in got[: ATR_PERIOD - 1]]).all()
        assert not np.isnan([bar.atr for bar in got[ATR_PERIOD - 1 :]]).any()
        assert np.isnan([bar.momentum_5 for bar in got[:5]]).all()


def test_gaps_between_sessions_produce_no_empty_bars(market):
    builder = BarBuilder("ES", (300,))
    bars = [bar for tick in _ticks(market) for bar in builder.on_tick(tick)]
    starts = np.array([bar.start_ns for bar in bars])
    steps = np.diff(starts) // NS
    assert set(steps.tolist()) == {300, 300 + 63_000}  # two nights of 17.5 hours
    assert (steps > 300).sum() == 2
    assert all(bar.ticks > 0 and bar.volume > 0 for bar in bars)


def test_a_bar_closes_on_the_first_tick_of_the_next_bucket():
    builder = BarBuilder("ES", (300, 1800))
    assert builder.on_tick(_tick(0, 100.0, 2, origin_ns=1)) == ()
    assert builder.on_tick(_tick(120, 102.0, 3)) == ()
    assert builder.on_tick(_tick(299.999, 99.5, 1)) == ()
    closed = builder.on_tick(_tick(300, 101.0, 4, origin_ns=77))
    assert len(closed) == 1
    bar = closed[0]
    assert (bar.timeframe_s, bar.start_ns, bar.end_ns) == (300, T0, T0 + 300 * NS)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks) == (
        100.0,
        102.0,
        99.5,
        99.5,
        6,
        3,
    )
    assert bar.origin_ns == 77 and not bar.history
    assert math.isnan(bar.atr) and math.isnan(bar.momentum_5)
    # 14:30 + 40 min closes the 14:35 five-minute bar and the 14:30 thirty-minute bar, in
    # the order of the timeframes; the empty 14:40 .. 15:05 buckets yield nothing.
    closer = _tick(2400, 103.0, 1, origin_ns=78)
    closer.history = True  # a history tick closes history bars
    closed = builder.on_tick(closer)
    assert [(b.timeframe_s, b.start_ns - T0) for b in closed] == [(300, 300 * NS), (1800, 0)]
    assert [(b.origin_ns, b.history) for b in closed] == [(78, True), (78, True)]
    assert (closed[1].open, closed[1].high, closed[1].low, closed[1].close) == (
        100.0,
        102.0,
        99.5,
        101.0,
    )
    assert closed[1].volume == 10


def test_atr_and_momentum_by_hand():
    """One tick per 5-minute bar: H = L = C, so TR is |C_t - C_{t-1}| after the first bar."""
    closes = [100.0 + 2.0 * i for i in range(20)]
    builder = BarBuilder("ES", (300,))
    bars = [b for i, c in enumerate([*closes, 0.0]) for b in builder.on_tick(_tick(300 * i, c))]
    assert len(bars) == 20
    # TR: 0 for the first bar, then 2.0 each: ATR_14 = 13 * 2 / 14, then Wilder towards 2.
    assert bars[ATR_PERIOD - 1].atr == pytest.approx(26 / 14, abs=1e-12)
    assert bars[ATR_PERIOD].atr == pytest.approx((13 * 26 / 14 + 2) / 14, abs=1e-12)
    assert bars[5].momentum_5 == pytest.approx((110.0 - 100.0) / 100.0 * 100, abs=1e-12)
    assert bars[19].momentum_5 == pytest.approx((138.0 - 128.0) / 128.0 * 100, abs=1e-12)


def test_atr_and_momentum_are_the_classic_indicators_of_the_bars(market):
    """The builder holds no ATR or momentum code of its own: its values are bit for bit
    those of `Atr(14)` and `Momentum(5)` fed the same closed bars."""
    builder = BarBuilder("ES", (300, 1800))
    bars = [bar for tick in _ticks(market) for bar in builder.on_tick(tick)]
    for timeframe_s in (300, 1800):
        atr, momentum = Atr(ATR_PERIOD), Momentum(MOMENTUM_BARS)
        for bar in (b for b in bars if b.timeframe_s == timeframe_s):
            expected = (atr.update(bar.high, bar.low, bar.close), momentum.update(bar.close))
            assert (bar.atr, bar.momentum_5) == pytest.approx(expected, rel=0, abs=0, nan_ok=True)


def test_a_bar_closing_at_zero_has_no_momentum_and_does_not_shift_the_lag():
    """A close <= 0 has no percentage change: that bar's momentum is NaN and the lag counts
    the bars around it (the builder's former own code divided by it, ZeroDivisionError)."""
    closes = [100.0, 101.0, 0.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0]
    builder = BarBuilder("ES", (300,))
    bars = [b for i, c in enumerate([*closes, 1.0]) for b in builder.on_tick(_tick(300 * i, c))]
    momentum = [bar.momentum_5 for bar in bars]
    assert np.isnan(momentum[:6]).all()
    assert momentum[6] == pytest.approx((105.0 - 100.0) / 100.0 * 100, abs=1e-12)
    assert momentum[8] == pytest.approx((107.0 - 102.0) / 102.0 * 100, abs=1e-12)
    assert not np.isnan([bar.atr for bar in bars[ATR_PERIOD - 1 :]]).any()


def test_a_late_tick_is_dropped_and_counted():
    builder = BarBuilder("ES", (300,))
    builder.on_tick(_tick(10, 100.0))
    builder.on_tick(_tick(20, 101.0))
    assert builder.on_tick(_tick(5, 500.0)) == ()
    assert builder.late_ticks == 1
    (bar,) = builder.on_tick(_tick(300, 100.0))
    assert (bar.high, bar.close, bar.ticks) == (101.0, 101.0, 2)


@pytest.mark.parametrize("timeframes", [(), (300, 300), (0,)])
def test_bad_timeframes_are_refused(timeframes):
    with pytest.raises(ValueError, match="timeframe"):
        BarBuilder("ES", timeframes)


# --- the actor -----------------------------------------------------------------------


def _bars_actor(capture, outputs: tuple[str, ...], **params: object) -> tuple[BarsActor, dict]:
    codec = Codec.from_union(AnyMessage)
    captures = {name: capture(name, codec) for name in outputs}
    context = actor_context("bars", {name: c.stream for name, c in captures.items()})
    return BarsActor(msgspec.convert(params, BarsParams), context), captures


async def test_the_actor_publishes_bars_with_the_closing_ticks_origin(market, capture):
    actor, writers = _bars_actor(capture, ("bars",))
    await actor.on_start()
    ticks = _ticks(market)
    for tick in ticks:
        actor.on_message(tick)
    actor.on_message(Control(command=ControlCommand.HALT))  # not a tick: ignored
    published = writers["bars"].messages
    ref5, ref30 = _reference(market, 300), _reference(market, 1800)
    assert len(published) == len(ref5["open"]) + len(ref30["open"])
    assert [b.seq for b in published] == list(range(1, len(published) + 1))
    by_tf = {tf: [b for b in published if b.timeframe_s == tf] for tf in (300, 1800)}
    assert [b.origin_ns for b in by_tf[300]] == ref5["origin_ns"].tolist()
    assert [b.origin_ns for b in by_tf[1800]] == ref30["origin_ns"].tolist()
    assert [b.close for b in by_tf[1800]] == ref30["close"].tolist()
    assert all(b.ts_ns > 0 and b.ts_ns != b.origin_ns for b in published)


async def test_the_actor_keeps_symbols_apart_on_its_bars_port(capture):
    actor, writers = _bars_actor(capture, ("bars",), timeframes=[300, 1800])
    await actor.on_start()
    for seconds in (0, 300, 1800):
        actor.on_message(_tick(seconds, 100.0 + seconds / 300))
        nq = _tick(seconds, 15_000.0)
        nq.symbol = "NQ"
        actor.on_message(nq)
    published = writers["bars"].messages
    five = [b for b in published if b.timeframe_s == 300]
    thirty = [b for b in published if b.timeframe_s == 1800]
    assert [(b.symbol, b.start_ns - T0) for b in five] == [
        ("ES", 0),
        ("NQ", 0),
        ("ES", 300 * NS),
        ("NQ", 300 * NS),
    ]
    assert [(b.symbol, b.close) for b in thirty] == [("ES", 101.0), ("NQ", 15_000.0)]


FIRST_BAR_IMPORTS = """
import sys
from actors.bars import BarBuilder
from actors.messages import Tick
builder = BarBuilder("ES", (5,))
loaded = set(sys.modules)
for second in range(4):
    tick = Tick(symbol="ES", price=100.0, size=1, bid=99.75, ask=100.25,
                event_ns=(1_767_623_400 + 5 * second) * 1_000_000_000)
    builder.on_tick(tick)
print(sorted(set(sys.modules) - loaded))
"""


def test_the_first_bars_of_a_run_import_nothing():
    # An import on the order path is a stall of milliseconds (numba imported numpy.ma
    # lazily on the first bar's ATR): everything loads with the actor's module instead.
    done = subprocess.run(
        [sys.executable, "-c", FIRST_BAR_IMPORTS], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
