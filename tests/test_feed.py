"""The synthetic market generator and the feed actor's pacing."""

import asyncio
import itertools
import time
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

from actors.common.pacing import MIN_WAKE_INTERVAL_S, DeadlineTimer
from actors.feed import FeedActor, FeedParams, MarketParams, SyntheticMarket, TickBatch
from actors.messages import AnyMessage, Regime, Tick
from kernel.codec import Codec
from tests.helpers import StreamCapture, actor_context

NS = 1_000_000_000
IDENTITY = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def _generate(params: MarketParams, n: int) -> TickBatch:
    return SyntheticMarket(params).next_batch(n)


def _log_mid(batch: TickBatch) -> np.ndarray:
    return np.log((batch.bid + batch.ask) / 2)


# --- the generator -----------------------------------------------------------------


def test_same_seed_same_ticks_whatever_the_batch_sizes():
    params = MarketParams(seed=11)
    whole = _generate(params, 20_000)
    market = SyntheticMarket(params)
    sizes = [1, 2, 1021, 1, 4096, 5000, 3, 9876]
    parts = [market.next_batch(n) for n in sizes]
    assert market.index == sum(sizes) == 20_000
    for name, column in zip(TickBatch._fields, whole, strict=True):
        joined = np.concatenate([getattr(part, name) for part in parts])
        np.testing.assert_array_equal(joined, column, err_msg=name)
    skipped = SyntheticMarket(params)
    skipped.advance(12_345)
    np.testing.assert_array_equal(skipped.next_batch(100).price, whole.price[12_345:12_445])
    other = _generate(MarketParams(seed=12), 20_000)
    assert not np.array_equal(other.price, whole.price)


def test_a_checkpoint_restores_the_same_market_after_any_number_of_ticks():
    """A restarted feed regenerates at most two blocks, however long the run: the ticks
    after a checkpoint (taken before a block) are the ones an uninterrupted run makes."""
    params = MarketParams(seed=5, jumps_per_day=200.0)  # jumps and regime steps inside
    whole = _generate(params, 30_000)
    for published in (0, 1, 1023, 1024, 1500, 25_000):
        market = SyntheticMarket(params)
        taken = 0
        while taken < published + 700:  # as a feed takes them, and more than it published
            taken += len(market.next_batch(256).price)
        checkpoint = market.checkpoint_for(published)
        assert checkpoint is not None and published - 2048 < checkpoint.generated <= published
        saved = msgspec.msgpack.decode(msgspec.msgpack.encode(checkpoint), type=type(checkpoint))
        restarted = SyntheticMarket(params)
        assert restarted.restore(saved)
        restarted.advance(published - saved.generated)
        after = restarted.next_batch(3000)
        for name, column in zip(TickBatch._fields, after, strict=True):
            expected = getattr(whole, name)[published : published + 3000]
            np.testing.assert_array_equal(column, expected, err_msg=f"{name} after {published}")
    other = SyntheticMarket(MarketParams(seed=6))
    assert not other.restore(saved)  # another market's checkpoint is refused
    assert other.index == 0
    # The same market published faster, in other batches, to another limit: the same one.
    feed = FeedParams(**msgspec.structs.asdict(params), pace="xN", speed=50.0, max_ticks=9)
    assert SyntheticMarket(feed).restore(saved)


def test_prices_are_positive_on_the_tick_grid_inside_the_quote():
    for params in (MarketParams(), MarketParams(seed=3, tick_size=0.1, start_price=101.3)):
        batch = _generate(params, 200_000)
        tick = params.tick_size
        for column in (batch.price, batch.bid, batch.ask):
            assert (column > 0).all()
            steps = column / tick
            np.testing.assert_allclose(steps, np.round(steps), rtol=0, atol=1e-6)
        assert (batch.bid < batch.ask).all()
        assert ((batch.price == batch.bid) | (batch.price == batch.ask)).all()
        assert (np.round((batch.ask - batch.bid) / tick) >= params.min_spread_ticks).all()
        assert (batch.size >= 1).all() and (batch.bid_size >= 1).all()
        assert (batch.ask_size >= 1).all()
        assert np.isin(batch.regime, [r.value for r in Regime]).all()


def test_market_time_runs_in_sessions_on_business_days():
    params = MarketParams(tick_interval_s=5.0)  # 4680 ticks per 6.5 h session
    batch = _generate(params, 4680 * 6)
    assert batch.event_ns[0] == int(datetime(2026, 1, 5, 14, 30, tzinfo=UTC).timestamp()) * NS
    assert (np.diff(batch.event_ns) > 0).all()
    opens = batch.event_ns[::4680]
    days = [datetime.fromtimestamp(ns / NS, UTC) for ns in opens]
    # Mon 5 .. Fri 9, then Mon 12 January 2026: the weekend has no session.
    assert [d.day for d in days] == [5, 6, 7, 8, 9, 12]
    assert all((d.hour, d.minute) == (14, 30) for d in days)
    last = datetime.fromtimestamp(batch.event_ns[4679] / NS, UTC)
    assert (last.hour, last.minute, last.second) == (20, 59, 55)


def test_a_weekend_session_start_rolls_forward_to_monday():
    batch = _generate(MarketParams(session_start="2026-01-03T09:30:00-05:00"), 1)
    first = datetime.fromtimestamp(batch.event_ns[0] / NS, UTC)
    assert (first.day, first.hour, first.minute) == (5, 14, 30)


def test_regime_volatility_and_drift_are_as_configured():
    """Per-tick log returns of the mid, grouped by the tick's regime, against the model."""
    params = MarketParams(
        seed=5,
        tick_size=1e-6,  # so rounding to the grid does not add noise
        tick_interval_s=60.0,  # one regime step per tick: ~40 years of minutes
        drift=(0.5, -0.5, 0.0, 0.0),
        volatility=(0.10, 0.15, 0.05, 0.30),
        jumps_per_day=0.0,
    )
    batch = _generate(params, 1_000_000)
    returns = np.diff(_log_mid(batch))
    regime = batch.regime[1:]
    dt = params.tick_interval_s / (params.trading_days_per_year * params.session_length_s)
    vols, drifts = {}, {}
    for r in Regime:
        sample = returns[regime == r]
        assert sample.size > 50_000, f"{r.name} visited too rarely"
        vols[r] = sample.std() / np.sqrt(dt)
        drifts[r] = sample.mean() / dt
        sigma, mu = params.volatility[r], params.drift[r]
        assert vols[r] == pytest.approx(sigma, rel=0.05), r.name
        standard_error = sigma / np.sqrt(sample.size * dt)
        assert abs(drifts[r] - (mu - sigma**2 / 2)) < 4.5 * standard_error, r.name
    assert drifts[Regime.BULL] > 0 > drifts[Regime.BEAR]
    assert vols[Regime.VOLATILE] > 2 * vols[Regime.SIDEWAYS]
    assert vols[Regime.VOLATILE] > vols[Regime.BEAR] > vols[Regime.BULL] > vols[Regime.SIDEWAYS]


def test_default_regimes_are_distinct_at_the_five_minute_scale():
    params = MarketParams(seed=9)
    batch = _generate(params, 2_000_000)
    log_mid = _log_mid(batch)[::300]
    regime = batch.regime[::300]
    returns = np.diff(log_mid)
    same = regime[1:] == regime[:-1]  # the regime held over the whole 5 minutes
    vol = {r: returns[same & (regime[1:] == r)].std() for r in Regime}
    assert vol[Regime.VOLATILE] > 2 * vol[Regime.SIDEWAYS]
    assert vol[Regime.BEAR] > vol[Regime.BULL] > vol[Regime.SIDEWAYS]
    spread = batch.ask - batch.bid
    assert (
        spread[batch.regime == Regime.VOLATILE].mean()
        > spread[batch.regime == Regime.SIDEWAYS].mean()
    )


def test_regime_chain_follows_the_transition_matrix():
    params = MarketParams(seed=2, tick_interval_s=60.0)  # a regime step every tick
    regime = _generate(params, 1_000_000).regime
    counts = np.zeros((4, 4))
    np.add.at(counts, (regime[:-1], regime[1:]), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(empirical, np.asarray(params.transition), atol=0.003)


def test_jumps_arrive_at_the_configured_rate():
    params = MarketParams(
        seed=4,
        tick_size=1e-6,
        volatility=(1e-6,) * 4,
        jumps_per_day=5.0,
        jump_std=0.01,
        spread_vol_coef=0.0,
    )
    days = 40
    batch = _generate(params, 23_400 * days)
    jumps = np.count_nonzero(np.abs(np.diff(_log_mid(batch))) > 1e-4)
    expected = params.jumps_per_day * days
    assert abs(jumps - expected) < 4 * np.sqrt(expected)


def test_garch_clusters_volatility():
    def lag1_autocorrelation_of_squares(alpha: float, beta: float) -> float:
        params = MarketParams(
            seed=8,
            tick_size=1e-6,
            transition=IDENTITY,
            jumps_per_day=0.0,
            garch_alpha=alpha,
            garch_beta=beta,
        )
        squares = np.diff(_log_mid(_generate(params, 400_000))) ** 2
        return float(np.corrcoef(squares[:-1], squares[1:])[0, 1])

    assert lag1_autocorrelation_of_squares(0.1, 0.85) > 0.08
    assert abs(lag1_autocorrelation_of_squares(0.0, 0.0)) < 0.01


def test_intraday_volume_is_u_shaped():
    params = MarketParams(seed=6)
    sessions = 20
    batch = _generate(params, 23_400 * sessions)
    per_bucket = batch.size.reshape(sessions, 13, 1800).sum(axis=2).mean(axis=0)  # 30 min
    middle = per_bucket[6]
    assert per_bucket[0] > 2 * middle and per_bucket[-1] > 2 * middle
    assert per_bucket.argmin() in (5, 6, 7)
    half = per_bucket[:7]
    assert (np.diff(half) < 0).all()  # falls from the open to midday


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"transition": ((0.5, 0.5, 0.0, 0.0), *IDENTITY[1:])}, None),
        ({"transition": ((0.9, 0.0, 0.0, 0.0), *IDENTITY[1:])}, "BULL sums to"),
        ({"garch_alpha": 0.5, "garch_beta": 0.5}, "stationary"),
        ({"session_start": "2026-01-05T14:30:00"}, "timezone"),
        ({"tick_size": -0.25}, "tick_size"),
        ({"volume_curve_k": 3.0}, "volume_curve_k"),
        ({"tick_interval_s": 50_000.0}, "at least one tick"),
    ],
)
def test_parameters_are_validated(change, match):
    params = msgspec.structs.replace(MarketParams(), **change)
    if match is None:
        SyntheticMarket(params)
    else:
        with pytest.raises(ValueError, match=match):
            SyntheticMarket(params)


def test_feed_params_parse_strictly_from_config():
    params = FeedActor.parse_params({"pace": "xN", "speed": 60, "symbol": "NQ", "seed": 1})
    assert (params.pace, params.speed, params.symbol) == ("xN", 60.0, "NQ")
    with pytest.raises(msgspec.ValidationError, match="unknown field `sped`"):
        FeedActor.parse_params({"sped": 60})
    with pytest.raises(msgspec.ValidationError):
        FeedActor.parse_params({"pace": "x10"})


# --- the actor -----------------------------------------------------------------------


def _feed(capture, published: int = 0, **params: object) -> tuple[FeedActor, StreamCapture]:
    """A FeedActor over a real ring; `published` ticks as if from a predecessor."""
    out = capture("ticks", Codec.from_union(AnyMessage), already_published=published)
    context = actor_context("feed", {"ticks": out.stream})
    return FeedActor(msgspec.convert(params, FeedParams), context), out


def _assert_ticks_match(ticks: list[Tick], batch: TickBatch) -> None:
    assert [t.price for t in ticks] == batch.price.tolist()
    assert [t.event_ns for t in ticks] == batch.event_ns.tolist()
    assert [t.regime for t in ticks] == batch.regime.tolist()
    assert [t.bid_size for t in ticks] == batch.bid_size.tolist()


async def test_fast_pace_publishes_the_generator_ticks_and_yields_to_the_loop(capture):
    actor, writer = _feed(capture, pace="fast", max_ticks=5000, seed=21, batch=200)
    beats = 0

    async def timer() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    beating = asyncio.get_running_loop().create_task(timer())
    await actor.on_start()
    await asyncio.wait_for(actor._task, 10)
    beating.cancel()
    ticks = writer.messages
    assert len(ticks) == actor.published == 5000
    assert beats >= 5000 // 200 - 1
    assert [t.seq for t in ticks] == list(range(1, 5001))
    assert all(t.symbol == "ES" and t.origin_ns == t.ts_ns > 0 for t in ticks)
    _assert_ticks_match(ticks, _generate(MarketParams(seed=21), 5000))
    await actor.on_stop()


@pytest.mark.parametrize(
    ("params", "ticks_per_s"),
    [
        ({"pace": "realtime", "tick_interval_s": 0.01}, 100),
        ({"pace": "xN", "speed": 300.0}, 300),
        ({"pace": "xN", "speed": 5000.0}, 5000),  # a tick every 200 us
    ],
)
async def test_paced_feeds_keep_the_rate_with_bounded_wake_ups(
    monkeypatch, params, ticks_per_s, capture
):
    waits: list[tuple[float, float]] = []  # (deadline, when it returned)
    real_sleep_until = DeadlineTimer.sleep_until

    async def recording_sleep_until(timer: DeadlineTimer, deadline_s: float) -> None:
        await real_sleep_until(timer, deadline_s)
        waits.append((deadline_s, time.monotonic()))

    actor, writer = _feed(capture, **params)
    monkeypatch.setattr(DeadlineTimer, "sleep_until", recording_sleep_until)
    await actor.on_start()
    await asyncio.sleep(0.5)
    await actor.on_stop()
    count = len(writer.messages)
    assert 0.7 * 0.5 * ticks_per_s <= count <= 1.1 * 0.5 * ticks_per_s + 2
    # No busy polling: a wake-up per due tick at most (it may come a little early), and
    # never sooner than MIN_WAKE_INTERVAL_S after the last.
    assert all(
        deadline >= woke + MIN_WAKE_INTERVAL_S
        for (_, woke), (deadline, _) in itertools.pairwise(waits)
    )
    assert len(waits) <= min(2 * count + 5, 0.5 / MIN_WAKE_INTERVAL_S)
    _assert_ticks_match(writer.messages, _generate(actor.params, count))


async def test_a_feed_whose_stream_holds_ticks_continues_the_same_market(capture):
    actor, writer = _feed(capture, published=1000, pace="fast", max_ticks=1500, seed=5)
    await actor.on_start()
    await asyncio.wait_for(actor._task, 10)
    ticks = writer.messages
    assert len(ticks) == 500 and actor.published == 1500
    assert [t.seq for t in ticks] == list(range(1001, 1501))
    expected = _generate(MarketParams(seed=5), 1500)
    _assert_ticks_match(ticks, TickBatch(*(column[1000:] for column in expected)))
    await actor.on_stop()
