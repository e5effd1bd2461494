"""The risk monitor actor over real rings: its snapshots (book, limits, VaR by every
method, the VaR backtest), its circuit breakers on scripted scenarios, its durable state,
and its params taken from the gate's."""

import math
from collections.abc import Iterable

import msgspec
import numpy as np
import pytest
from scipy import stats

from actors.messages import (
    AnyMessage,
    DenyReason,
    Direction,
    PositionSnapshot,
    RiskSnapshot,
    RiskVerdict,
    TradingState,
)
from actors.risk.actor import RiskActor
from actors.risk.killswitch import KillSwitch
from actors.risk_monitor import MONITOR, RiskMonitorActor
from actors.risk_monitor.actor import SNAPSHOT_TIMER, MonitorState
from actors.risk_monitor.var import filtered_historical
from config.loader import load_config
from kernel.codec import Codec
from tests.helpers import actor_context
from tests.test_risk import LONG, NS, SHORT, T0, bar, fill

STEP = 300 * NS


async def _monitor(
    capture,
    system: str,
    state: MonitorState | None = None,
    limits: dict[str, object] | None = None,
    **params: object,
):
    """The monitor over a real ring, with the gate's `limits` (what a config gives it)."""
    codec = Codec.from_union(AnyMessage)
    out = capture("snapshots", codec)
    context = actor_context("monitor", {"snapshots": out.stream}, system=system)
    parsed = RiskMonitorActor.parse_params(params)
    parsed = msgspec.structs.replace(parsed, limits=RiskActor.parse_params(limits or {}))
    actor = RiskMonitorActor(parsed, context)
    actor.state = state or MonitorState()
    await actor.on_start()
    return actor, out


def _risk(out) -> list[RiskSnapshot]:
    return [s for s in out.messages if type(s) is RiskSnapshot]


def _walk(actor, closes: Iterable[tuple[float, float]], start: int = 0) -> int:
    """One bar of ES and NQ per period, from period `start`; the next period's index."""
    period = start
    for es, nq in closes:
        end = T0 + period * STEP
        actor.on_message(bar(es, "ES", end))
        actor.on_message(bar(nq, "NQ", end))
        period += 1
    return period


def _random_walk(periods: int, seed: int, scale: float = 0.001) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    shocks = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], periods) * scale
    paths = np.exp(np.cumsum(shocks, axis=0)) * [5000.0, 15000.0]
    return [(float(es), float(nq)) for es, nq in paths]


async def test_a_snapshot_at_start_then_on_every_fill_and_on_the_timer(capture, system):
    actor, out = await _monitor(capture, system, limits={"initial_equity": 100_000.0})
    (first,) = _risk(out)
    assert first.equity == 100_000.0 and first.var_99 == 0.0  # flat: nothing at risk
    actor.on_message(bar(5000.0))
    actor.on_message(fill(LONG, 2, 5000.0, fee=2.0, fill_id="f-1"))
    assert len(_risk(out)) == 2
    actor.on_message(fill(LONG, 2, 5000.0, fee=2.0, fill_id="f-1"))  # redelivered
    assert len(_risk(out)) == 2
    actor.on_message(bar(5010.0, end_ns=T0 + STEP))
    actor.on_timer(SNAPSHOT_TIMER)
    risk = _risk(out)[-1]
    position = [s for s in out.messages if type(s) is PositionSnapshot][-1]
    assert risk.equity == 100_000.0 - 2.0 + 2 * 10 * 50.0 and risk.net_position == 2
    assert risk.trading_state == TradingState.ACTIVE and not risk.kill_switch
    assert risk.limits["max_position"] == 5.0 and risk.limits["daily_loss_limit"] == 5_000.0
    assert risk.utilisation["max_position"] == 2 / 5
    assert risk.utilisation["max_notional"] == 2 * 5010.0 * 50.0 / 2_000_000.0
    assert risk.margin_use == pytest.approx(2 * 13_000.0 / risk.equity)
    assert (position.symbol, position.quantity, position.avg_price) == ("ES", 2, 5000.0)
    assert (position.mark_price, position.unrealized_pnl) == (5010.0, 1000.0)
    assert math.isnan(risk.var_99), "two periods: too few to estimate"
    await actor.on_stop()


async def test_approvals_count_in_the_utilisation_until_filled(capture, system):
    actor, out = await _monitor(capture, system)
    actor.on_message(bar(5000.0))
    approved = RiskVerdict(
        intent_id="i-1",
        symbol="ES",
        approved=True,
        reason=DenyReason.NONE,
        direction=Direction.LONG,
        quantity=2,
        price=5000.0,
    )
    actor.on_message(approved)
    actor.on_timer(SNAPSHOT_TIMER)
    assert _risk(out)[-1].utilisation["max_position"] == 2 / 5
    assert _risk(out)[-1].utilisation["max_orders_per_minute"] == 1 / 10
    actor.on_message(fill(LONG, 2, 5000.0))
    assert _risk(out)[-1].utilisation["max_position"] == 2 / 5  # held now, no longer pending
    await actor.on_stop()


async def test_var_of_the_held_portfolio_by_every_method(capture, system):
    actor, out = await _monitor(capture, system)
    closes = _random_walk(120, seed=1)
    _walk(actor, closes)
    actor.on_message(fill(LONG, 2, closes[-1][0], fill_id="es"))
    actor.on_message(fill(SHORT, 1, closes[-1][1], symbol="NQ", fill_id="nq"))
    risk = _risk(out)[-1]
    prices = np.array(closes)
    returns = np.diff(np.log(prices), axis=0)
    exposures = np.array([2 * prices[-1, 0] * 50.0, -1 * prices[-1, 1] * 20.0])
    want = filtered_historical(exposures, returns, 0.99)
    assert risk.var_method == "filtered_historical"
    assert risk.var_99 == pytest.approx(want.var, rel=1e-9)
    assert risk.es_99 == pytest.approx(want.es, rel=1e-9)
    for method in ("parametric", "historical", "filtered_historical", "monte_carlo"):
        for level in (95, 99):
            var, es = (risk.var_by_method[f"{method}.{k}_{level}"] for k in ("var", "es"))
            assert es >= var > 0, (method, level)
        # Every method sees the same calm, correlated market: within a factor of two.
        assert 0.5 < risk.var_by_method[f"{method}.var_99"] / risk.var_99 < 2.0
    assert risk.var_95 < risk.var_99
    assert risk.volatility_ratio == pytest.approx(1.0, abs=0.5)
    assert 0.6 < risk.correlation_score <= 1.0
    await actor.on_stop()


async def test_each_period_held_is_backtested_against_the_var_forecast_at_its_start(
    capture, system
):
    actor, out = await _monitor(capture, system)
    closes = _random_walk(80, seed=2)
    period = _walk(actor, closes)
    actor.on_timer(SNAPSHOT_TIMER)
    assert all(b.periods == 0 for b in _risk(out)[-1].var_backtests), "flat periods test nothing"
    es, nq = closes[-1]
    actor.on_message(fill(LONG, 2, es))
    period = _walk(actor, [(es * 1.0005, nq * 1.0005)], period)  # a calm period
    period = _walk(actor, [(es * 0.97, nq * 0.97)], period)  # a 3 % fall: far past the VaR
    actor.on_timer(SNAPSHOT_TIMER)
    by_confidence = {b.confidence: b for b in _risk(out)[-1].var_backtests}
    assert (by_confidence[0.99].periods, by_confidence[0.99].hits) == (2, 1)
    assert (by_confidence[0.95].periods, by_confidence[0.95].hits) == (2, 1)
    assert by_confidence[0.99].zone == "none" and math.isnan(by_confidence[0.99].kupiec_p_value)
    await actor.on_stop()


def _controls(system: str) -> KillSwitch:
    return KillSwitch.open(system)


async def test_a_drawdown_breaker_halts_and_engages_the_kill_switch(capture, system):
    actor, out = await _monitor(
        capture, system, limits={"initial_equity": 100_000.0}, max_drawdown_pct=2.0
    )
    actor.on_message(bar(5000.0))
    actor.on_message(fill(LONG, 2, 5000.0))
    actor.on_message(bar(4970.0, end_ns=T0 + STEP))  # -$3,000: 3 % of equity
    actor.on_timer(SNAPSHOT_TIMER)
    state = _controls(system).state()
    assert state.engaged and state.engaged_by == MONITOR and "drawdown" in state.reason
    assert (state.trading_state, state.state_by) == (TradingState.HALTED, MONITOR)
    assert _risk(out)[-1].breakers == [_risk(out)[-1].breakers[0]]
    assert "drawdown 3.00% >= 2%" in _risk(out)[-1].breakers[0]
    await actor.on_stop()


async def test_the_daily_loss_breaker_halts_and_engages_the_kill_switch(capture, system):
    actor, _ = await _monitor(capture, system, limits={"daily_loss_limit": 1_000.0})
    actor.on_message(bar(5000.0))
    actor.on_message(fill(LONG, 2, 5000.0))
    actor.on_message(bar(4989.0, end_ns=T0 + STEP))  # -$1,100
    actor.on_timer(SNAPSHOT_TIMER)
    state = _controls(system).state()
    assert state.engaged and "daily_loss" in state.reason
    assert state.trading_state == TradingState.HALTED
    await actor.on_stop()


async def test_consecutive_losses_halt_without_the_kill_switch(capture, system):
    actor, _ = await _monitor(capture, system, max_consecutive_losses=3)
    actor.on_message(bar(5000.0))
    for trip in range(3):
        actor.on_message(fill(LONG, 1, 5000.0, fill_id=f"in-{trip}"))
        actor.on_message(fill(SHORT, 1, 4999.0, fill_id=f"out-{trip}"))
    actor.on_timer(SNAPSHOT_TIMER)
    state = _controls(system).state()
    assert not state.engaged
    assert state.trading_state == TradingState.HALTED and "3 losing trades" in state.state_reason
    await actor.on_stop()


async def test_a_volatility_spike_reduces_once_per_episode_and_never_loosens(capture, system):
    actor, out = await _monitor(capture, system)
    period = _walk(actor, _random_walk(250, seed=3, scale=0.0005))
    es, nq = 5000.0, 15000.0
    actor.on_timer(SNAPSHOT_TIMER)
    assert _controls(system).trading_state == TradingState.ACTIVE
    for sign in (1, -1, 1, -1, 1, -1):  # 1.5 % swings: 30 times the usual move
        es, nq = es * (1 + sign * 0.015), nq * (1 + sign * 0.015)
        period = _walk(actor, [(es, nq)], period)
    actor.on_timer(SNAPSHOT_TIMER)
    switch = _controls(system)
    assert _risk(out)[-1].volatility_ratio >= 3.0
    assert (switch.trading_state, switch.state().state_by) == (TradingState.REDUCING, MONITOR)
    # An operator resumes while the spike lasts: the breaker does not trip again.
    switch.set_trading_state(TradingState.ACTIVE, "alice", "seen it")
    actor.on_timer(SNAPSHOT_TIMER)
    assert switch.trading_state == TradingState.ACTIVE
    # A halt stays a halt whatever the monitor sees.
    switch.set_trading_state(TradingState.HALTED, "alice", "lunch")
    actor.breakers.holding.clear()  # as if the spike had cleared and come back
    actor.on_timer(SNAPSHOT_TIMER)
    assert switch.trading_state == TradingState.HALTED
    await actor.on_stop()


async def test_a_var_over_its_limit_reduces(capture, system):
    actor, out = await _monitor(capture, system, var_limit=1_000.0)
    closes = _random_walk(60, seed=6, scale=0.002)
    _walk(actor, closes)
    actor.on_message(fill(LONG, 1, closes[-1][0], fill_id="one"))
    actor.on_timer(SNAPSHOT_TIMER)
    one = _risk(out)[-1].var_99
    assert one < 1_000.0 and KillSwitch.open(system).trading_state == TradingState.ACTIVE
    actor.on_message(fill(LONG, 4, closes[-1][0], fill_id="four more"))
    actor.on_timer(SNAPSHOT_TIMER)
    assert _risk(out)[-1].var_99 == pytest.approx(5 * one, rel=1e-9)  # linear in size
    state = KillSwitch.open(system).state()
    assert state.trading_state == TradingState.REDUCING and "99% VaR" in state.state_reason
    await actor.on_stop()


def test_one_contract_fits_the_default_var_limit():
    """The defaults hang together: one ES contract's 99 % VaR over a 5-minute period of
    0.1 % volatility is far inside `var_limit`, the notional cap's book is not."""
    params = RiskMonitorActor.parse_params({})
    one_contract = stats.norm.ppf(0.99) * 4150.0 * 50.0 * 0.001
    assert one_contract < params.var_limit / 4
    assert stats.norm.ppf(0.99) * params.limits.max_notional * 0.001 > params.var_limit


async def test_a_correlation_shock_reduces(capture, system):
    actor, out = await _monitor(capture, system, volatility_ratio_limit=100.0)
    period = _walk(actor, _random_walk(150, seed=4))
    es, nq = 5000.0, 15000.0
    for sign in (1, -1) * 8:  # the two indices now move against each other
        es, nq = es * (1 + sign * 0.002), nq * (1 - sign * 0.002)
        period = _walk(actor, [(es, nq)], period)
    actor.on_timer(SNAPSHOT_TIMER)
    assert _risk(out)[-1].correlation_change >= 0.3
    state = _controls(system).state()
    assert state.trading_state == TradingState.REDUCING and "correlation" in state.state_reason
    await actor.on_stop()


async def test_the_durable_state_gives_a_restarted_monitor_the_same_figures(capture, system):
    first, out = await _monitor(capture, system)
    closes = _random_walk(90, seed=5)
    period = _walk(first, closes)
    first.on_message(fill(LONG, 1, closes[-1][0], fill_id="held"))
    _walk(first, [(closes[-1][0] * 0.99, closes[-1][1] * 0.99)], period)
    first.on_timer(SNAPSHOT_TIMER)
    before = _risk(out)[-1]
    saved = msgspec.msgpack.encode(first.state_to_save())
    await first.on_stop()
    second, out = await _monitor(capture, system, msgspec.msgpack.decode(saved, type=MonitorState))
    after = _risk(out)[-1]
    assert (after.equity, after.net_position) == (before.equity, before.net_position)
    for key in ("var_95", "var_99", "es_99", "volatility_ratio", "correlation_change"):
        assert getattr(after, key) == pytest.approx(getattr(before, key), rel=1e-12), key
    assert msgspec.json.encode(after.var_backtests) == msgspec.json.encode(before.var_backtests)
    await second.on_stop()


def test_the_limits_come_from_the_gate_named_in_the_config():
    config = load_config(environ={"GRANDMODEL__actors__risk__params__max_position": "3"})
    (raw,) = [a.params for a in config.actors if a.name == "monitor"]
    params = RiskMonitorActor.parse_params(raw, config)
    assert params.limits is not None and params.limits.max_position == 3
    assert params.limits.point_values() == {"ES": 50.0, "NQ": 20.0}
    with pytest.raises(ValueError, match=r"no actor 'gatekeeper'.*\$\.gate"):
        RiskMonitorActor.parse_params({**raw, "gate": "gatekeeper"}, config)
