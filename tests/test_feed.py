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
from actors.feed.actor import FeedState
from actors.messages import AnyMessage, Regime, Tick
from config.instruments import Instrument, TradingSession
from kernel.codec import Codec
from tests.helpers import StreamCapture, actor_context

NS = 1_000_000_000
IDENTITY = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def one(
    tick_size: float = 0.25, session: TradingSession | None = None, **fields: object
) -> MarketParams:
    """A market of one instrument, "X", with this tick size and session (09:30-16:00 New
    York by default)."""
    instrument = Instrument(symbol="X", tick_size=tick_size, session=session or TradingSession())
    return MarketParams(registry={"X": instrument}, **fields)  # type: ignore[arg-type]


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
    for params in (one(), one(seed=3, tick_size=0.1, start_price=101.3)):
        batch = _generate(params, 200_000)
        tick = params.registry["X"].tick_size
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
    params = one(tick_interval_s=5.0)  # 4680 ticks per 6.5 h session
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


def test_a_weekend_first_day_rolls_forward_to_monday():
    batch = _generate(one(first_day="2026-01-03"), 1)
    first = datetime.fromtimestamp(batch.event_ns[0] / NS, UTC)
    assert (first.day, first.hour, first.minute) == (5, 14, 30)


def test_sessions_follow_the_registry_in_their_time_zone_through_dst():
    """09:30-16:00 New York is 14:30-21:00 UTC in winter and 13:30-20:00 after the switch
    to summer time (8 March 2026); a Tokyo session is 00:00-06:00 UTC all year; an
    overnight Sunday-to-Thursday session opens the evening before its trading day."""
    params = one(tick_interval_s=60.0, first_day="2026-03-05")  # Thu 5 .. Mon 9 March
    opens = _generate(params, 390 * 3).event_ns[::390]
    when = [datetime.fromtimestamp(ns / NS, UTC) for ns in opens]
    assert [(w.day, w.hour, w.minute) for w in when] == [(5, 14, 30), (6, 14, 30), (9, 13, 30)]
    tokyo = TradingSession(timezone="Asia/Tokyo", start="09:00", end="15:00")
    first = _generate(one(session=tokyo, tick_interval_s=60.0), 1).event_ns[0]
    assert datetime.fromtimestamp(first / NS, UTC).hour == 0
    globex = TradingSession(start="18:00", end="17:00", days=(6, 0, 1, 2, 3))
    batch = _generate(one(session=globex, tick_interval_s=60.0, first_day="2026-01-04"), 2 * 1380)
    sunday, monday = (datetime.fromtimestamp(ns / NS, UTC) for ns in batch.event_ns[::1380])
    assert (sunday.day, sunday.hour, monday.day, monday.hour) == (4, 23, 5, 23)


def test_instruments_of_one_market_share_their_session():
    registry = {
        "ES": Instrument(symbol="ES"),
        "NK": Instrument(symbol="NK", session=TradingSession(timezone="Asia/Tokyo")),
    }
    with pytest.raises(msgspec.ValidationError, match=r"sessions .* must be the same"):
        msgspec.convert({"registry": registry}, MarketParams)


def test_regime_volatility_and_drift_are_as_configured():
    """Per-tick log returns of the mid, grouped by the tick's regime, against the model."""
    params = one(
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
    params = one(seed=9)
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
    params = one(seed=2, tick_interval_s=60.0)  # a regime step every tick
    regime = _generate(params, 1_000_000).regime
    counts = np.zeros((4, 4))
    np.add.at(counts, (regime[:-1], regime[1:]), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(empirical, np.asarray(params.transition), atol=0.003)


def test_jumps_arrive_at_the_configured_rate():
    params = one(
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
        params = one(
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
    params = one(seed=6)
    sessions = 20
    batch = _generate(params, 23_400 * sessions)
    per_bucket = batch.size.reshape(sessions, 13, 1800).sum(axis=2).mean(axis=0)  # 30 min
    middle = per_bucket[6]
    assert per_bucket[0] > 2 * middle and per_bucket[-1] > 2 * middle
    assert per_bucket.argmin() in (5, 6, 7)
    half = per_bucket[:7]
    assert (np.diff(half) < 0).all()  # falls from the open to midday


def _returns(batch: TickBatch, symbol: str, every: int) -> np.ndarray:
    """Log returns of `symbol`'s mid over `every` steps."""
    return np.diff(_log_mid(TickBatch(*(c[batch.symbol == symbol] for c in batch)))[::every])


def test_instruments_tick_in_turn_at_each_step_with_their_own_terms():
    params = MarketParams(seed=1, symbols=("NQ", "ES"), models={"NQ": {"start_price": 14500.0}})
    batch = _generate(params, 1001)
    assert batch.symbol[:4].tolist() == ["NQ", "ES", "NQ", "ES"] and batch.symbol[-1] == "NQ"
    # ES prints half a step after NQ: never two prints at one time
    assert (batch.event_ns[1::2] - batch.event_ns[0::2][:500] == NS // 2).all()
    assert (batch.regime[0::2][:500] == batch.regime[1::2]).all()  # one market regime
    nq = batch.price[batch.symbol == "NQ"]
    assert abs(nq[0] - 14500.0) < 10 and abs(batch.price[1] - 4150.0) < 10


@pytest.mark.parametrize("rho", [0.85, -0.4, 0.0])
def test_realised_correlation_and_volatility_match_the_configuration(rho):
    """One regime, no jumps, no GARCH: the diffusion alone, over 60 sessions of seconds,
    sampled every 5 minutes (the tick grid's rounding is noise at shorter horizons)."""
    models = {"NQ": {"start_price": 14500.0, "volatility_scale": 1.5}}
    params = MarketParams(
        seed=3,
        correlation=[[1.0, rho], [rho, 1.0]],
        models=models,  # type: ignore[arg-type]
        transition=IDENTITY,
        jumps_per_day=0.0,
        garch_alpha=0.0,
        garch_beta=0.0,
    )
    batch = _generate(params, 2 * 23_400 * 60)
    es, nq = _returns(batch, "ES", 300), _returns(batch, "NQ", 300)
    annualise = np.sqrt(params.trading_days_per_year * params.session_length_s / 300)
    sideways = params.volatility[Regime.SIDEWAYS]
    assert es.std() * annualise == pytest.approx(sideways, rel=0.03)
    assert nq.std() * annualise == pytest.approx(1.5 * sideways, rel=0.03)
    assert np.corrcoef(es, nq)[0, 1] == pytest.approx(rho, abs=0.03)  # se ~ 0.01


def test_the_default_market_keeps_its_correlation_through_regimes_jumps_and_garch():
    params = MarketParams(seed=4, correlation=[[1.0, 0.85], [0.85, 1.0]])
    batch = _generate(params, 2 * 23_400 * 60)
    realised = np.corrcoef(_returns(batch, "ES", 300), _returns(batch, "NQ", 300))[0, 1]
    assert 0.75 < realised <= 0.86  # idiosyncratic jumps and GARCH paths lower it a little


def test_a_market_of_many_instruments_is_reproducible_and_restartable():
    correlation = [[1.0, 0.8, 0.6, 0.2], [0.8, 1.0, 0.5, 0.1], [0.6, 0.5, 1.0, 0.3]]
    correlation.append([0.2, 0.1, 0.3, 1.0])
    registry = {s: Instrument(symbol=s) for s in ("A", "B", "C", "D")}
    params = MarketParams(seed=9, registry=registry, correlation=correlation)
    whole = _generate(params, 50_000)
    assert set(whole.symbol.tolist()) == {"A", "B", "C", "D"}
    market = SyntheticMarket(params)
    for _ in range(30):
        market.next_batch(1001)  # steps split across batches
    checkpoint = market.checkpoint_for(30_030)
    assert checkpoint is not None and checkpoint.generated % 4 == 0
    restarted = SyntheticMarket(params)
    assert restarted.restore(checkpoint)
    restarted.advance(30_030 - checkpoint.generated)
    np.testing.assert_array_equal(restarted.next_batch(5000).price, whole.price[30_030:35_030])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"transition": ((0.5, 0.5, 0.0, 0.0), *IDENTITY[1:])}, None),
        ({"transition": ((0.9, 0.0, 0.0, 0.0), *IDENTITY[1:])}, "BULL sums to"),
        ({"garch_alpha": 0.5, "garch_beta": 0.5}, "stationary"),
        ({"first_day": "5 January 2026"}, "not an ISO 8601 date"),
        ({"correlation": [[1.0, 0.5], [0.5, 1.0], [0.0, 0.0]]}, "must be 2 x 2"),
        ({"correlation": [[1.0, 1.5], [1.5, 1.0]]}, r"not in \[-1, 1\]"),
        ({"correlation": [[1.0, 0.5], [0.4, 1.0]]}, "not symmetric"),
        ({"correlation": [[0.9, 0.5], [0.5, 1.0]]}, "diagonal must be 1"),
        ({"correlation": [[1.0, 1.0], [1.0, 1.0]]}, None),  # perfectly correlated: PSD
        ({"symbols": ["ES", "NQ", "ES"]}, "listed twice"),
        ({"models": {"RTY": {"start_price": 2000.0}}}, "unknown instrument 'RTY'"),
        ({"volume_curve_k": 3.0}, "volume_curve_k"),
        ({"tick_interval_s": 50_000.0}, "at least one step"),
    ],
)
def test_parameters_are_validated(change, match):
    """Every rule holds for params from a config (a ValidationError with the field's path)
    and for params built in code."""
    raw = {"symbols": ["ES", "NQ"], **change}
    if match is None:
        SyntheticMarket(msgspec.convert(raw, MarketParams)).next_batch(10)
        return
    with pytest.raises(msgspec.ValidationError, match=match):
        msgspec.convert(raw, MarketParams)
    with pytest.raises(ValueError, match=match):
        SyntheticMarket(MarketParams(**raw))  # type: ignore[arg-type]


def test_feed_params_parse_strictly_from_config():
    params = FeedActor.parse_params({"pace": "xN", "speed": 60, "symbols": ["NQ"], "seed": 1})
    assert (params.pace, params.speed, params.symbols) == ("xN", 60.0, ("NQ",))
    assert params.registry["NQ"].point_value == 20.0
    with pytest.raises(msgspec.ValidationError, match="unknown field `sped`"):
        FeedActor.parse_params({"sped": 60})
    with pytest.raises(msgspec.ValidationError):
        FeedActor.parse_params({"pace": "x10"})


# --- the actor -----------------------------------------------------------------------


def _feed(capture, published: int = 0, **params: object) -> tuple[FeedActor, StreamCapture]:
    """A FeedActor over a real ring; `published` ticks as if from a predecessor."""
    out = capture("ticks", Codec.from_union(AnyMessage), already_published=published)
    context = actor_context("feed", {"ticks": out.stream})
    params.setdefault("symbols", ["ES"])
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
    _assert_ticks_match(ticks, _generate(MarketParams(seed=21, symbols=("ES",)), 5000))
    await actor.on_stop()


async def test_history_sessions_go_out_unpaced_then_the_pace_applies(capture):
    """Two sessions of a tick a minute go out at once (780 ticks, flagged history), then
    real time: the next tick at once, the one after a minute later."""
    actor, writer = _feed(
        capture, pace="realtime", tick_interval_s=60.0, history_sessions=2, max_ticks=2000
    )
    await actor.on_start()
    deadline = time.monotonic() + 10
    while actor.published < 781:
        assert time.monotonic() < deadline, f"only {actor.published} ticks in 10 s"
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.2)  # unpaced, the feed would publish the other 1,219 meanwhile
    assert actor.published == 781 and not actor._task.done()
    await actor.on_stop()
    ticks = writer.messages
    _assert_ticks_match(ticks, _generate(actor.params, 781))
    assert [t.history for t in ticks] == [True] * 780 + [False]


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
    expected = _generate(MarketParams(seed=5, symbols=("ES",)), 1500)
    _assert_ticks_match(ticks, TickBatch(*(column[1000:] for column in expected)))
    await actor.on_stop()


async def test_a_checkpoint_of_another_version_is_skipped_not_fatal(capture):
    """A checkpoint an older version saved (a single log price and variance) cannot be
    read: the feed generates the market from its start instead, the same ticks."""
    actor, writer = _feed(capture, published=1000, pace="fast", max_ticks=1500, seed=5)
    old = msgspec.msgpack.encode({"checkpoint": ["fingerprint", 0, [[0] * 6] * 8, 8.3, 1.0, 2]})
    actor.state = msgspec.msgpack.decode(old, type=FeedState)  # as the kernel restores it
    await actor.on_start()
    await asyncio.wait_for(actor._task, 10)
    expected = _generate(MarketParams(seed=5, symbols=("ES",)), 1500)
    _assert_ticks_match(writer.messages, TickBatch(*(column[1000:] for column in expected)))
    await actor.on_stop()
