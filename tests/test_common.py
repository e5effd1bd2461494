"""The pieces in actors/common shared by several actors, and the shared constrained types
now used by the actors' parameter Structs."""

import asyncio
import math
import os
import time

import msgspec
import numpy as np
import pytest

from actors.common import pacing
from actors.common.pacing import DeadlineTimer, MarketClock, Pacer
from actors.common.recent import SAVE_CHUNK, RecentIds, SavedTail
from actors.common.ticks import make_ticks
from actors.feed import FeedActor, FeedParams, MarketParams, SyntheticMarket
from actors.messages import UNKNOWN_REGIME, AnyMessage, Tick
from actors.replay import ReplayActor, ReplayParams
from actors.replay.session import TradingSession
from actors.risk.limits import RiskLimits
from config.instruments import Instrument
from kernel.codec import Codec
from tests.helpers import actor_context

NS = 1_000_000_000

# --- RecentIds --------------------------------------------------------------------------


def test_recent_ids_forget_the_oldest_beyond_capacity():
    ids = RecentIds(2)
    assert ids.add("a") and ids.add("b") and not ids.add("a")
    assert ids.add("c")
    assert "a" not in ids and "b" in ids and "c" in ids and len(ids) == 2
    assert ids.add("a")  # forgotten, so admitted again
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(0)


class _State(msgspec.Struct):
    intent_ids: list[msgspec.Raw] = []
    orders: list[msgspec.Raw] = []


class _Legacy(msgspec.Struct):
    intent_ids: list[str]


def test_recent_ids_round_trip_through_a_msgpack_struct():
    ids = RecentIds(3, persisted=10)
    for item in ["i1", "i2", "i1", "i3", "i4"]:
        ids.add(item)
    blob = msgspec.msgpack.encode(_State(intent_ids=ids.saved()))
    back = RecentIds(3, 10, msgspec.msgpack.decode(blob, type=_State).intent_ids)
    assert back.to_list() == ids.to_list() == ["i2", "i3", "i4"]
    assert not back.add("i3")  # still a duplicate after the restart
    assert back.add("i5") and "i2" not in back  # and the oldest still goes first


def test_recent_ids_read_the_plain_list_of_records_saved_before_chunks():
    blob = msgspec.msgpack.encode(_Legacy(intent_ids=["a", "b", "b", "c"]))
    back = RecentIds(2, 10, msgspec.msgpack.decode(blob, type=_State).intent_ids)
    assert back.to_list() == ["b", "c"] and back.capacity == 2


def test_recent_ids_save_at_least_the_newest_persisted_in_whole_chunks():
    ids = RecentIds(100_000, persisted=SAVE_CHUNK + 1)
    names = [f"intent-{n}" for n in range(5 * SAVE_CHUNK + 7)]
    for name in names:
        ids.add(name)
    blob = msgspec.msgpack.encode(_State(intent_ids=ids.saved()))
    kept = RecentIds(100_000, 1, msgspec.msgpack.decode(blob, type=_State).intent_ids)
    # Two closed chunks (enough for SAVE_CHUNK + 1) and the open one: the newest 2 x 256 + 7.
    assert kept.to_list() == names[-(2 * SAVE_CHUNK + 7) :]


def test_a_saved_tail_encodes_each_closed_chunk_once():
    tail: SavedTail[str] = SavedTail(keep=3 * SAVE_CHUNK)
    for n in range(2 * SAVE_CHUNK + 1):
        tail.append(str(n))
    first, second = tail.saved(), tail.saved()
    assert first[0] is second[0] and first[1] is second[1]  # the same bytes, not re-encoded
    assert first[2] is not second[2]  # the open chunk is encoded at each save
    assert list(SavedTail.load(first, str)) == [str(n) for n in range(2 * SAVE_CHUNK + 1)]
    with pytest.raises(ValueError, match="at least 1"):
        SavedTail(0)


class _Order(msgspec.Struct):
    order_id: str
    quantity: int


def test_a_saved_tail_of_structs_round_trips_through_msgpack():
    tail: SavedTail[_Order] = SavedTail(keep=2)
    orders = [_Order(f"o{n}", n) for n in range(3)]
    for order in orders:
        tail.append(order)
    blob = msgspec.msgpack.encode(_State(orders=tail.saved()))
    assert list(SavedTail.load(msgspec.msgpack.decode(blob, type=_State).orders, _Order)) == orders


# --- shared constrained types -------------------------------------------------------------


@pytest.mark.parametrize(
    ("struct", "field"),
    [
        (RiskLimits, "max_notional"),
        (Instrument, "tick_size"),
        (MarketParams, "start_price"),
    ],
)
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_parameters_fail_validation_with_their_path(struct, field, value):
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        msgspec.convert(
            {"symbol": "X", field: value} if struct is Instrument else {field: value}, struct
        )


def test_a_weekday_outside_monday_to_sunday_fails_validation():
    with pytest.raises(msgspec.ValidationError, match=r"\$\.days\[0\]"):
        msgspec.convert({"days": [7]}, TradingSession)


# --- pacing -------------------------------------------------------------------------------


def test_the_market_clock_runs_at_speed_skips_long_gaps_and_never_rewinds():
    clock = MarketClock(speed=2.0, max_gap_ns=10 * NS)
    first = clock.schedule(np.array([100, 101, 103]) * NS)
    # 5 s after 103 is a step; 3600 s is a gap taking no time; 3599 s is behind the
    # clock (another symbol's row a little late): due at once, not rewinding it.
    second = clock.schedule(np.array([108, 3708, 3599, 3709]) * NS)
    assert first.tolist() == [0.0, 0.5, 1.5]
    assert second.tolist() == [4.0, 4.0, 4.0, 4.5]


def test_without_a_gap_limit_every_step_takes_its_time():
    clock = MarketClock(speed=1.0)
    assert clock.schedule(np.array([0, 3600]) * NS).tolist() == [0.0, 3600.0]
    with pytest.raises(ValueError, match="speed"):
        MarketClock(speed=0.0)


async def test_a_fast_pacer_publishes_in_batches_yielding_between_them():
    published: list[int] = []
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(other_task())
    pacer = Pacer("fast", speed=1.0, batch=4)
    assert pacer.clock is None
    await pacer.run(np.arange(10) * NS, published.append)
    await pacer.run(np.arange(0), published.append)  # an empty chunk publishes nothing
    task.cancel()
    assert published == [4, 4, 2] and turns >= 2


def test_realtime_ignores_speed():
    realtime = Pacer("realtime", speed=50.0, batch=1).clock
    assert realtime is not None and realtime.speed == 1.0
    with pytest.raises(ValueError, match="batch"):
        Pacer("xN", speed=1.0, batch=0)


async def test_a_paced_pacer_publishes_each_row_when_due():
    published_at: list[tuple[int, float]] = []
    pacer = Pacer("xN", speed=10.0, batch=100)
    start = time.monotonic()
    event_ns = np.array([0, 0, 1, 2]) * NS  # 0, 0, 0.1, 0.2 s of wall time at x10
    await pacer.run(event_ns, lambda count: published_at.append((count, time.monotonic() - start)))
    assert sum(count for count, _ in published_at) == 4
    assert published_at[0][0] == 2  # the two rows due at once go out together
    times = [t for _, t in published_at]
    assert times[1] >= 0.1 and times[2] >= 0.2 and times[-1] < 0.4


async def test_rows_due_half_a_millisecond_apart_go_out_one_by_one():
    """Not in the millisecond bursts of asyncio's timers (20 to 40 rows per wake-up at
    20,000 rows/s), which queue at every consumer: each row is due 500 us after the last
    and is published on its own wake-up, never before it is due."""
    published: list[tuple[int, float]] = []
    pacer = Pacer("xN", speed=2000.0, batch=100)
    event_ns = np.arange(400) * NS  # one row per market second: 2,000 rows/s
    start = time.monotonic()
    await pacer.run(event_ns, lambda count: published.append((count, time.monotonic() - start)))
    assert sum(count for count, _ in published) == 400
    alone = sum(count == 1 for count, _ in published)
    assert alone >= 0.75 * 400, f"only {alone} of 400 rows went out alone"
    sent = np.cumsum([count for count, _ in published])
    first_row_due = (sent - np.array([count for count, _ in published])) / 2000.0
    assert all(at >= due for (_, at), due in zip(published, first_row_due, strict=True))


async def test_a_deadline_timer_wakes_at_its_deadline_and_survives_a_cancelled_sleep():
    timer = DeadlineTimer()
    try:
        deadline = time.monotonic() + 0.002
        await timer.sleep_until(deadline)
        assert time.monotonic() >= deadline
        await asyncio.wait_for(timer.sleep_until(time.monotonic() - 1.0), 1.0)  # passed
        sleeper = asyncio.ensure_future(timer.sleep_until(time.monotonic() + 60.0))
        await asyncio.sleep(0)
        sleeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeper
        deadline = time.monotonic() + 0.001
        await asyncio.wait_for(timer.sleep_until(deadline), 1.0)  # re-armed, not stuck
        assert time.monotonic() >= deadline
    finally:
        fd = timer._fd
        timer.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def _ticks_csv(path, ticks: list[Tick]) -> str:
    rows = (
        f"{np.datetime64(t.event_ns, 'ns')}Z,{t.symbol},{t.price},{t.size},{t.bid},{t.ask},"
        f"{t.bid_size},{t.ask_size}"
        for t in ticks
    )
    path.write_text("timestamp,symbol,price,size,bid,ask,bid_size,ask_size\n" + "\n".join(rows))
    return str(path)


async def test_the_feed_and_the_replay_of_its_ticks_are_paced_alike(tmp_path, capture, monkeypatch):
    """The same ticks, generated by the feed or read back from a file, are due at the same
    wall offsets: both go through one `Pacer`. Three short sessions (two nights between
    them that take no wall time), cut into chunks of different sizes."""
    schedules: dict[str, list[np.ndarray]] = {"feed": [], "replay": []}
    recording = "feed"
    schedule = MarketClock.schedule

    def recorded(clock: MarketClock, event_ns: np.ndarray) -> np.ndarray:
        due = schedule(clock, event_ns)
        schedules[recording].append(due)
        return due

    monkeypatch.setattr(pacing.MarketClock, "schedule", recorded)
    short = Instrument(symbol="ES", session=TradingSession(start="09:30:00", end="09:30:40"))
    market = {"registry": {"ES": short}, "tick_interval_s": 1.0, "seed": 3}
    codec = Codec.from_union(AnyMessage)
    n = 120
    feed_out = capture("ticks", codec)
    feed = FeedActor(
        msgspec.convert(
            {**market, "pace": "xN", "speed": 800.0, "batch": 32, "max_ticks": n}, FeedParams
        ),
        actor_context("feed", {"ticks": feed_out.stream}),
    )
    await feed.on_start()
    await asyncio.wait_for(feed._task, 10)
    await feed.on_stop()
    generated = feed_out.messages
    assert len(generated) == n

    recording = "replay"
    path = _ticks_csv(tmp_path / "ticks.csv", generated)
    replay_params = {"path": path, "pace": "xN", "speed": 800.0, "max_gap_s": 1.0}
    replay_out = capture("replayed", codec)
    replay = ReplayActor(
        msgspec.convert({**replay_params, "chunk_rows": 50}, ReplayParams),
        actor_context("replay", {"ticks": replay_out.stream}),
    )
    await replay.on_start()
    await asyncio.wait_for(replay._task, 10)
    await replay.on_stop()
    replayed = replay_out.messages
    assert [t.event_ns for t in replayed] == [t.event_ns for t in generated]

    feed_due, replay_due = (np.concatenate(schedules[name]) for name in ("feed", "replay"))
    np.testing.assert_array_equal(feed_due, replay_due)
    # One tick a second within a session, at x800; the first tick of a session is due
    # with the last one of the session before.
    index = np.arange(n)
    assert feed_due == pytest.approx((index - index // 40) / 800.0, abs=1e-12)
    for ticks in (generated, replayed):  # and each went out no earlier than due
        wall = np.array([(t.ts_ns - ticks[0].ts_ns) / NS for t in ticks])
        assert (wall - feed_due >= -0.005).all()


# --- tick construction ----------------------------------------------------------------------


def test_ticks_of_a_synthetic_batch_carry_its_regimes_and_one_symbol():
    batch = SyntheticMarket(MarketParams(seed=4, symbols=("ES",))).next_batch(5)
    assert [t.symbol for t in make_ticks(**batch._asdict())] == ["ES"] * 5
    ticks = list(make_ticks(**{**batch._asdict(), "symbol": "NQ"}))  # one symbol for all
    assert [t.symbol for t in ticks] == ["NQ"] * 5
    assert [t.regime for t in ticks] == batch.regime.tolist()
    assert [(t.event_ns, t.price, t.size, t.bid, t.ask, t.bid_size, t.ask_size) for t in ticks] == [
        row for row in zip(*(c.tolist() for c in batch[1:8]), strict=True)
    ]
    assert all(type(t.price) is float and type(t.size) is int for t in ticks)


def test_ticks_of_file_rows_have_a_symbol_each_and_no_regime():
    ints, floats = np.array([1, 2]), np.array([1.5, 2.5])
    symbols = np.array(["ES", "NQ"], dtype=object)
    ticks = list(make_ticks(symbols, ints, floats, ints, floats, floats, ints, ints))
    assert [(t.symbol, t.regime) for t in ticks] == [("ES", UNKNOWN_REGIME), ("NQ", UNKNOWN_REGIME)]
