"""The pre-trade risk layer: every deny reason, sizing and Kelly by hand, the book, the
kill switch across real processes, and the actor over real rings."""

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.messages import (
    AnyMessage,
    Bar,
    Control,
    ControlCommand,
    DenyReason,
    Direction,
    Fill,
    RiskVerdict,
    TradeIntent,
    TradingState,
)
from actors.risk import (
    InvalidFill,
    KillSwitch,
    KillSwitchError,
    RiskActor,
    RiskBook,
    RiskGate,
    RiskLimits,
    RiskParams,
    kelly_fraction,
    killswitch_path,
    risk_contracts,
)
from actors.risk.actor import FLATTEN_TIMER, RiskState
from actors.risk.sizing import NormalVolatility, volatility_adjustment
from actors.risk.throttle import OrderThrottle
from kernel.codec import Codec
from tests.helpers import actor_context

REPO = Path(__file__).resolve().parent.parent
NS = 1_000_000_000
T0 = 1_767_623_400 * NS  # 2026-01-05 14:30 UTC
DAY_NS = 86_400 * NS
MINUTE_NS = 60 * NS
LONG, SHORT, FLAT = Direction.LONG, Direction.SHORT, Direction.FLAT
MONITOR_REASONS = {
    DenyReason.NONE,
    DenyReason.VAR_LIMIT,
    DenyReason.DRAWDOWN_LIMIT,
    DenyReason.CIRCUIT_BREAKER,
    DenyReason.EMERGENCY,
}
"""Reasons that belong to the background monitor, not to the pre-trade gate."""

_ids = count(1)


class Clock:
    """An injected monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000 * NS

    def __call__(self) -> int:
        return self.now


def intent(**fields: object) -> TradeIntent:
    """A LONG ES intent at 5000 with a 3-point ATR (a 6-point stop at 2 ATR)."""
    values: dict[str, object] = {
        "intent_id": f"intent-{next(_ids)}",
        "symbol": "ES",
        "direction": LONG,
        "score": 0.8,
        "confidence": 0.7,
        "price": 5000.0,
        "atr": 3.0,
        "stop_price": 4994.0,
        "target_price": 5012.0,
        "bar_end_ns": T0,
        "origin_ns": 4242,
        "ts_ns": 4300,
    }
    values.update(fields)
    return TradeIntent(**values)  # type: ignore[arg-type]


def bar(close: float, symbol: str = "ES", end_ns: int = T0) -> Bar:
    return Bar(
        symbol=symbol,
        timeframe_s=300,
        start_ns=end_ns - 300 * NS,
        end_ns=end_ns,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=100,
        atr=3.0,
    )


def fill(
    side: Direction,
    quantity: int,
    price: float,
    fee: float = 0.0,
    symbol: str = "ES",
    event_ns: int = T0,
    fill_id: str | None = None,
) -> Fill:
    return Fill(
        fill_id=fill_id or f"fill-{next(_ids)}",
        client_order_id="order-1",
        venue_order_id="venue-1",
        symbol=symbol,
        side=side,
        quantity=quantity,
        price=price,
        leaves_quantity=0,
        fee=fee,
        event_ns=event_ns,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_gate(controls: KillSwitch, clock: Clock) -> Callable[..., RiskGate]:
    """A gate over a flat book with ES marked at 5000; keyword arguments set limits."""

    def make(**limits: object) -> RiskGate:
        params = msgspec.convert(limits, RiskLimits)
        book = RiskBook(params.initial_equity, params.point_values())
        book.on_bar(bar(5000.0))
        return RiskGate(params, book, controls, clock)

    return make


def fill_into(gate: RiskGate, *fills: Fill) -> None:
    """Apply fills as the actor does: to the book, then release pending quantity."""
    for item in fills:
        if gate.book.on_fill(item):
            gate.on_fill(item.symbol, int(item.side), item.quantity)


def approved(verdict: RiskVerdict, quantity: int, reason: DenyReason = DenyReason.NONE) -> bool:
    return (verdict.approved, verdict.quantity, verdict.reason) == (True, quantity, reason)


def denied(verdict: RiskVerdict, reason: DenyReason) -> bool:
    return (verdict.approved, verdict.quantity, verdict.reason) == (False, 0, reason)


# --- one scenario per deny reason the gate can give -----------------------------------


def _kill_switch(gate: RiskGate) -> RiskVerdict:
    gate.controls.engage("venue disconnect", "ops")
    return gate.check(intent(price=math.nan))  # the switch comes before everything


def _halted(gate: RiskGate) -> RiskVerdict:
    gate.controls.set_trading_state(TradingState.HALTED, "ops", "news")
    return gate.check(intent())


def _reducing_only(gate: RiskGate) -> RiskVerdict:
    gate.controls.set_trading_state(TradingState.REDUCING, "ops", "flatten")
    return gate.check(intent())  # flat: a LONG intent would add exposure


def _nan_input(gate: RiskGate) -> RiskVerdict:
    return gate.check(intent(atr=math.nan))


def _position_limit(gate: RiskGate) -> RiskVerdict:
    fill_into(gate, fill(LONG, 5, 5000.0))
    return gate.check(intent())


def _order_size_limit(gate: RiskGate) -> RiskVerdict:
    return gate.check(intent())  # with max_order_size = 0 (see LIMITS)


def _notional_limit(gate: RiskGate) -> RiskVerdict:
    fill_into(gate, fill(LONG, 2, 5000.0))  # $500k, the whole notional cap
    return gate.check(intent())


def _net_notional_limit(gate: RiskGate) -> RiskVerdict:
    fill_into(gate, fill(LONG, 2, 5000.0, symbol="NQ"))  # 2 x 5000 x $20 = $200k of $400k
    return gate.check(intent())  # one more ES long is $250k: the net cap has no room


def _unknown_symbol(gate: RiskGate) -> RiskVerdict:
    return gate.check(intent(symbol="RTY"))  # not in the registry


def _restricted_instrument(gate: RiskGate) -> RiskVerdict:
    fill_into(gate, fill(LONG, 2, 5000.0))
    closing = gate.check(intent(direction=SHORT, stop_price=5006.0))
    assert closing.approved and closing.quantity == 2, "a restricted position may close"
    return gate.check(intent())  # but not grow


def _daily_loss_limit(gate: RiskGate) -> RiskVerdict:
    fill_into(gate, fill(LONG, 2, 5000.0))
    gate.book.on_bar(bar(4940.0, end_ns=T0 + 300 * NS))  # 2 x 60 points x $50 = -$6,000
    return gate.check(intent(price=4940.0))


def _order_rate_limit(gate: RiskGate) -> RiskVerdict:
    for _ in range(3):
        assert gate.check(intent()).approved
    return gate.check(intent())


def _duplicate_id(gate: RiskGate) -> RiskVerdict:
    assert gate.check(intent(intent_id="same")).approved
    return gate.check(intent(intent_id="same"))


def _price_band(gate: RiskGate) -> RiskVerdict:
    return gate.check(intent(price=5100.5))  # 2% of 5000 is 100 points


def _zero_size(gate: RiskGate) -> RiskVerdict:
    return gate.check(intent(atr=20.0))  # 40-point stop: $2,000 a contract > $1,250 budget


SCENARIOS: dict[DenyReason, Callable[[RiskGate], RiskVerdict]] = {
    DenyReason.KILL_SWITCH: _kill_switch,
    DenyReason.HALTED: _halted,
    DenyReason.REDUCING_ONLY: _reducing_only,
    DenyReason.NAN_INPUT: _nan_input,
    DenyReason.POSITION_LIMIT: _position_limit,
    DenyReason.ORDER_SIZE_LIMIT: _order_size_limit,
    DenyReason.NOTIONAL_LIMIT: _notional_limit,
    DenyReason.NET_NOTIONAL_LIMIT: _net_notional_limit,
    DenyReason.UNKNOWN_SYMBOL: _unknown_symbol,
    DenyReason.RESTRICTED_INSTRUMENT: _restricted_instrument,
    DenyReason.DAILY_LOSS_LIMIT: _daily_loss_limit,
    DenyReason.ORDER_RATE_LIMIT: _order_rate_limit,
    DenyReason.DUPLICATE_ID: _duplicate_id,
    DenyReason.PRICE_BAND: _price_band,
    DenyReason.ZERO_SIZE: _zero_size,
}
LIMITS: dict[DenyReason, dict[str, object]] = {
    DenyReason.ORDER_SIZE_LIMIT: {"max_order_size": 0},
    DenyReason.NOTIONAL_LIMIT: {"max_notional": 500_000.0},
    DenyReason.NET_NOTIONAL_LIMIT: {"max_net_notional": 400_000.0},
    DenyReason.ORDER_RATE_LIMIT: {"max_orders_per_minute": 3, "max_position": 100},
    DenyReason.RESTRICTED_INSTRUMENT: {"restricted_symbols": ["ES"], "max_order_size": 5},
}


def test_every_gate_reason_has_a_scenario():
    assert set(SCENARIOS) == set(DenyReason) - MONITOR_REASONS


@pytest.mark.parametrize("reason", list(SCENARIOS), ids=lambda reason: reason.name)
def test_each_deny_reason(make_gate, reason):
    gate = make_gate(**LIMITS.get(reason, {}))
    verdict = SCENARIOS[reason](gate)
    assert denied(verdict, reason), verdict
    assert (verdict.origin_ns, verdict.intent_ns) == (4242, 4300)
    assert verdict.symbol == ("RTY" if reason is DenyReason.UNKNOWN_SYMBOL else "ES")
    assert verdict.detail


# --- the checks in detail -------------------------------------------------------------


def test_an_approval_carries_size_stop_and_trace(make_gate):
    verdict = make_gate().check(intent(intent_id="a-1", origin_ns=777))
    # $1,250 / (6 points x $50) = 4.17 -> 4 contracts, cut to the order size of 2.
    assert approved(verdict, 2, DenyReason.ORDER_SIZE_LIMIT)
    assert (verdict.intent_id, verdict.direction, verdict.price) == ("a-1", LONG, 5000.0)
    assert verdict.stop_price == 4994.0 and verdict.target_price == 5012.0
    assert verdict.risk_amount == 2 * 6.0 * 50.0
    assert verdict.origin_ns == 777
    assert math.isnan(verdict.kelly_fraction)  # fewer than 20 closed trades: fixed fraction


def test_a_short_gets_its_stop_above(make_gate):
    verdict = make_gate(max_order_size=10).check(intent(direction=SHORT))
    assert approved(verdict, 4) and verdict.direction == SHORT and verdict.stop_price == 5006.0


@pytest.mark.parametrize(
    ("limits", "atr", "symbol", "quantity"),
    [
        ({}, 2.5, "ES", 5),  # 1250 / (5 x 50) = 5 exactly
        ({"initial_equity": 100_000.0, "risk_per_trade_fraction": 0.01}, 3.5, "ES", 2),  # 1000/350
        ({"stop_atr_multiple": 1.0}, 2.5, "ES", 10),  # 1250 / 125
        ({}, 3.0, "NQ", 10),  # NQ's $20 a point: 1250 / (6 x 20) = 10.4
    ],
)
def test_risk_sizing_known_answers(make_gate, limits, atr, symbol, quantity):
    limits = {
        "max_order_size": 20,
        "max_position": 20,
        "max_notional": 1e9,
        "max_net_notional": 1e9,
        **limits,
    }
    gate = make_gate(**limits)
    gate.book.on_bar(bar(5000.0, symbol))
    verdict = gate.check(intent(atr=atr, symbol=symbol))
    assert approved(verdict, quantity), verdict


@pytest.mark.parametrize(
    ("equity", "fraction", "stop", "point_value", "contracts"),
    [
        (250_000.0, 0.005, 5.0, 50.0, 5),
        (250_000.0, 0.005, 2.5, 50.0, 10),
        (100_000.0, 0.01, 7.0, 50.0, 2),
        (250_000.0, 0.005, 30.0, 50.0, 0),
        (-1_000.0, 0.005, 5.0, 50.0, 0),
    ],
)
def test_risk_contracts(equity, fraction, stop, point_value, contracts):
    assert risk_contracts(equity, fraction, stop, point_value) == contracts


@pytest.mark.parametrize(
    ("p", "b", "f"),
    [
        (0.6, 2.0, 0.4),  # (1.2 - 0.4) / 2
        (0.55, 1.5, 0.25),  # (0.825 - 0.45) / 1.5
        (0.5, 1.0, 0.0),  # no edge
        (0.4, 1.0, 0.0),  # f = -0.2 -> 0
        (0.0, 3.0, 0.0),  # never won
        (0.7, 0.0, 0.0),  # wins of nothing
        (0.7, math.inf, 0.7),  # never lost: f -> p
    ],
)
def test_kelly_known_answers(p, b, f):
    assert kelly_fraction(p, b) == pytest.approx(f, abs=1e-12)


def _round_trips(gate: RiskGate, wins: int, losses: int, win_points: float) -> None:
    """Closed 1-lot trips at 5000: each win makes `win_points`, each loss loses 1 point."""
    for points in [win_points] * wins + [-1.0] * losses:
        fill_into(gate, fill(LONG, 1, 5000.0), fill(SHORT, 1, 5000.0 + points))


def test_kelly_shrinks_the_risk_once_enough_trades_closed(make_gate):
    gate = make_gate(max_order_size=20, max_position=20, max_notional=1e9, max_net_notional=1e9)
    _round_trips(gate, wins=10, losses=9, win_points=1.02)
    # 19 trips: fixed fraction only, 0.5% x $250,060 / (2 points x $50) = 12.5 -> 12.
    early = gate.check(intent(atr=1.0))
    assert approved(early, 12) and math.isnan(early.kelly_fraction)
    _round_trips(gate, wins=0, losses=1, win_points=1.02)
    # 20 trips: p = 0.5, b = $51 / $50; quarter Kelly 0.245% is under the 0.5% ceiling.
    quarter = 0.25 * (0.5 * 1.02 - 0.5) / 1.02
    later = gate.check(intent(atr=1.0))
    assert later.kelly_fraction == pytest.approx(quarter, rel=1e-9)
    assert later.approved and later.quantity == math.floor(quarter * gate.book.equity / 100.0)
    assert later.quantity == 6


def test_kelly_is_scaled_by_the_volatility_against_its_normal(make_gate):
    gate = make_gate(max_order_size=20, max_position=20, max_notional=1e9, max_net_notional=1e9)
    _round_trips(gate, wins=10, losses=10, win_points=1.02)
    unscaled = gate.check(intent(atr=1.0)).kelly_fraction  # no bars seen: adjustment 1
    for k in range(30):  # a normal ATR of 5 points at 5000: 0.1 %
        gate.on_bar(msgspec.structs.replace(bar(5000.0, end_ns=T0 + k * NS), atr=5.0))
    gate.on_bar(msgspec.structs.replace(bar(5000.0), timeframe_s=1800, atr=50.0))  # ignored
    assert gate.normal_volatility.by_symbol["ES"] == pytest.approx(0.001)
    twice = gate.check(intent(atr=10.0))  # twice the normal volatility: half the Kelly
    assert twice.kelly_fraction == pytest.approx(unscaled / 2, rel=1e-9)
    calm = gate.check(intent(atr=1.0))  # a fifth of it: capped at twice the Kelly
    assert calm.kelly_fraction == pytest.approx(unscaled * 2, rel=1e-9)


@pytest.mark.parametrize(
    ("normal", "current", "adjustment"),
    [
        (0.001, 0.002, 0.5),
        (0.001, 0.001, 1.0),
        (0.001, 0.0004, 2.0),
        (math.nan, 0.001, 1.0),
        (0.001, 0.0, 1.0),
        (0.0, 0.001, 1.0),
    ],
)
def test_the_volatility_adjustment_known_answers(normal, current, adjustment):
    assert volatility_adjustment(normal, current) == adjustment


def test_the_normal_volatility_is_pandas_ewm_of_atr_over_close():
    rng = np.random.default_rng(3)
    atrs, closes = rng.uniform(2, 8, 400), rng.uniform(4900, 5100, 400)
    normal = NormalVolatility(bars=50)
    for atr, close in zip(atrs, closes, strict=True):
        normal.on_bar("ES", atr, close)
    want = pd.Series(atrs / closes).ewm(span=50, adjust=False).mean().iloc[-1]
    assert normal.by_symbol["ES"] == pytest.approx(want, rel=1e-12)


def test_no_edge_means_zero_size(make_gate):
    gate = make_gate()
    _round_trips(gate, wins=10, losses=10, win_points=1.0)
    verdict = gate.check(intent())
    assert denied(verdict, DenyReason.ZERO_SIZE) and verdict.kelly_fraction == 0.0


@pytest.mark.parametrize("field", ["price", "atr", "score", "confidence", "stop_price"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_field_is_nan_input(make_gate, field, value):
    verdict = make_gate().check(intent(**{field: value}))
    assert denied(verdict, DenyReason.NAN_INPUT) and field in verdict.detail


@pytest.mark.parametrize("field", ["price", "atr"])
def test_a_non_positive_price_or_atr_is_nan_input(make_gate, field):
    assert denied(make_gate().check(intent(**{field: 0.0})), DenyReason.NAN_INPUT)


def test_a_duplicate_is_denied_whatever_the_first_verdict(make_gate):
    gate = make_gate()
    assert denied(gate.check(intent(intent_id="x", price=math.nan)), DenyReason.NAN_INPUT)
    assert denied(gate.check(intent(intent_id="x")), DenyReason.DUPLICATE_ID)


def test_the_price_band_edges_and_an_unmarked_symbol(make_gate):
    gate = make_gate()
    assert gate.check(intent(price=5100.0)).approved
    assert gate.check(intent(price=4900.0)).approved
    assert denied(gate.check(intent(price=4899.5)), DenyReason.PRICE_BAND)
    verdict = gate.check(intent(symbol="NQ"))
    assert denied(verdict, DenyReason.PRICE_BAND) and "nan" in verdict.detail


def test_the_position_limit_cuts_before_it_denies(make_gate):
    gate = make_gate()
    fill_into(gate, fill(LONG, 4, 5000.0))
    assert approved(gate.check(intent()), 1, DenyReason.POSITION_LIMIT)


def test_pending_approvals_count_until_filled_or_expired(make_gate, clock):
    gate = make_gate()
    assert approved(gate.check(intent()), 2, DenyReason.ORDER_SIZE_LIMIT)
    assert approved(gate.check(intent()), 2, DenyReason.ORDER_SIZE_LIMIT)
    assert approved(gate.check(intent()), 1, DenyReason.POSITION_LIMIT)
    assert denied(gate.check(intent()), DenyReason.POSITION_LIMIT)
    fill_into(gate, fill(LONG, 2, 5000.0))  # a fill moves quantity from pending to held
    assert denied(gate.check(intent()), DenyReason.POSITION_LIMIT)
    clock.now += round(gate.limits.pending_ttl_s * NS)  # the 3 unfilled contracts expire
    assert approved(gate.check(intent()), 2, DenyReason.ORDER_SIZE_LIMIT)


def test_the_notional_limit_cuts_then_denies(make_gate):
    gate = make_gate(max_notional=500_000.0, max_order_size=10)
    assert approved(gate.check(intent()), 2, DenyReason.NOTIONAL_LIMIT)  # $250k a contract
    assert denied(gate.check(intent()), DenyReason.NOTIONAL_LIMIT)  # pending counts


def test_closing_is_never_cut_by_notional(make_gate):
    gate = make_gate(max_notional=500_000.0, max_order_size=10)
    fill_into(gate, fill(LONG, 2, 5000.0))
    gate.book.on_bar(bar(5050.0))  # marks push gross notional over the cap
    verdict = gate.check(intent(direction=FLAT, price=5050.0))
    assert approved(verdict, 2) and verdict.direction == SHORT


def test_the_throttle_window_slides(make_gate, clock):
    gate = make_gate(max_orders_per_minute=2, max_position=100)
    assert gate.check(intent()).approved
    clock.now += 30 * NS
    assert gate.check(intent()).approved
    assert denied(gate.check(intent()), DenyReason.ORDER_RATE_LIMIT)
    clock.now += 30 * NS  # the first approval leaves the window
    assert gate.check(intent()).approved
    assert denied(gate.check(intent()), DenyReason.ORDER_RATE_LIMIT)


@given(
    st.integers(1, 50),
    # Whole seconds, so that approvals often sit exactly on the window's edge.
    st.lists(st.tuples(st.integers(0, 20).map(lambda s: s * NS), st.booleans()), max_size=400),
    st.integers(0, 399),
)
def test_the_throttle_counts_exactly_the_last_minute_across_saves(limit, steps, save_at):
    """Against the definition: approvals at times in (now - 1 min, now], counted by brute
    force; saving and restoring the window midway changes nothing."""
    throttle, approvals, now = OrderThrottle(limit), [], 0
    for step, (advance, wants) in enumerate(steps):
        now += advance
        if step == save_at:
            throttle = OrderThrottle(limit, throttle.to_bytes())
        in_window = sum(now - MINUTE_NS < t <= now for t in approvals)
        assert throttle.count(now) == in_window
        if wants and throttle.allows(now):
            assert in_window < limit
            throttle.record(now)
            approvals.append(now)


def test_a_throttle_window_saved_as_a_list_by_an_older_version_still_counts():
    old = msgspec.msgpack.encode({"gate": {"approvals_ns": [1 * NS, 2 * NS, 3 * NS]}})
    state = msgspec.msgpack.decode(old, type=RiskState)
    throttle = OrderThrottle(5, state.gate.approvals_ns)
    assert throttle.count(30 * NS) == 3 and throttle.count(61 * NS + 1) == 2
    assert OrderThrottle(5, throttle.to_bytes()).count(61 * NS + 1) == 2


def test_reducing_lets_only_closing_orders_through(make_gate, controls):
    gate = make_gate()
    fill_into(gate, fill(LONG, 3, 5000.0))
    controls.set_trading_state(TradingState.REDUCING, "ops", "flatten")
    assert denied(gate.check(intent()), DenyReason.REDUCING_ONLY)
    first = gate.check(intent(direction=SHORT))
    assert approved(first, 2, DenyReason.ORDER_SIZE_LIMIT)
    assert first.risk_amount == 0.0 and math.isnan(first.stop_price)
    assert approved(gate.check(intent(direction=SHORT)), 1)  # what is not being closed yet
    assert denied(gate.check(intent(direction=SHORT)), DenyReason.ZERO_SIZE)  # never flips


def test_a_flat_intent_closes_and_needs_a_position(make_gate):
    gate = make_gate()
    assert denied(gate.check(intent(direction=FLAT)), DenyReason.ZERO_SIZE)
    fill_into(gate, fill(SHORT, 1, 5000.0))
    verdict = gate.check(intent(direction=FLAT))
    assert approved(verdict, 1) and verdict.direction == LONG


def test_the_daily_loss_flips_to_reducing_and_lets_closing_through(make_gate, controls):
    gate = make_gate()
    assert denied(_daily_loss_limit(gate), DenyReason.DAILY_LOSS_LIMIT)
    state = controls.state()
    assert state.trading_state == TradingState.REDUCING and state.state_by == "risk-gate"
    assert "-6000.00" in state.state_reason
    assert denied(gate.check(intent(price=4940.0)), DenyReason.DAILY_LOSS_LIMIT)
    closing = gate.check(intent(direction=SHORT, price=4940.0))
    assert approved(closing, 2) and closing.direction == SHORT


def test_the_kill_switch_beats_everything_and_reset_reopens(make_gate, controls):
    gate = make_gate()
    controls.engage("fat finger", "alice")
    verdict = gate.check(intent(intent_id="k"))
    assert denied(verdict, DenyReason.KILL_SWITCH) and verdict.detail == "fat finger"
    controls.reset("bob")
    assert gate.check(intent(intent_id="k")).approved  # a switch deny remembers no id


def test_the_gate_lets_only_reducing_intents_through_when_the_switch_allows_them(make_gate):
    gate = make_gate(max_order_size=5)
    fill_into(gate, fill(LONG, 3, 5000.0))
    gate.controls.engage("venue disconnect", "ops", reducing_allowed=True)
    opening = gate.check(intent())
    assert denied(opening, DenyReason.KILL_SWITCH) and opening.detail == "venue disconnect"
    closing = gate.check(intent(direction=SHORT, stop_price=5006.0))
    assert closing.approved and closing.quantity == 3, closing  # closes, never flips
    gate.controls.reset("ops")
    gate.controls.engage("runaway strategy", "ops")  # reducing not allowed: nothing passes
    assert denied(gate.check(intent(direction=SHORT, stop_price=5006.0)), DenyReason.KILL_SWITCH)
    assert gate.controls.state().reducing_allowed is False


def test_utilisation_counts_pending_and_the_day_loss(make_gate, clock):
    gate = make_gate(max_orders_per_minute=4)
    fill_into(gate, fill(SHORT, 1, 5000.0, fee=250.0))
    assert approved(gate.check(intent(direction=SHORT)), 2, DenyReason.ORDER_SIZE_LIMIT)
    used = gate.utilisation()
    assert used["max_position"] == 3 / 5  # 1 held short + 2 pending sells
    assert used["max_notional"] == 3 * 5000.0 * 50.0 / 2_000_000.0
    assert used["max_net_notional"] == 3 * 5000.0 * 50.0 / 1_500_000.0  # all of it short
    assert used["daily_loss_limit"] == 250.0 / 5_000.0
    assert used["max_orders_per_minute"] == 1 / 4
    clock.now += MINUTE_NS
    assert gate.utilisation()["max_orders_per_minute"] == 0.0
    assert make_gate(max_position=0).utilisation()["max_position"] == 1.0


def test_limits_reject_unknown_and_non_finite_values():
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"max_positions": 3}, RiskLimits)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.max_notional"):
        msgspec.convert({"max_notional": math.inf}, RiskLimits)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"risk_per_trade_fraction": 0.05}, RiskLimits)


# --- the book -------------------------------------------------------------------------


def _book() -> RiskBook:
    return RiskBook(initial_equity=100_000.0, point_values={"ES": 50.0})


def test_average_price_and_unrealized():
    book = _book()
    book.on_fill(fill(LONG, 1, 100.0))
    book.on_fill(fill(LONG, 3, 104.0))
    held = book.positions["ES"]
    assert (held.quantity, held.avg_price) == (4, 103.0)
    book.on_bar(bar(105.0))
    assert held.unrealized(50.0) == (105.0 - 103.0) * 4 * 50.0
    assert book.equity == 100_000.0 + 400.0


def test_a_short_average_and_its_unrealized():
    book = _book()
    book.on_fill(fill(SHORT, 2, 100.0))
    book.on_fill(fill(SHORT, 2, 98.0))
    book.on_bar(bar(97.0))
    held = book.positions["ES"]
    assert (held.quantity, held.avg_price) == (-4, 99.0)
    assert book.unrealized_pnl == (97.0 - 99.0) * -4 * 50.0


def test_realized_pnl_is_net_of_fees_and_a_scratch_trip_is_a_loss():
    book = _book()
    book.on_fill(fill(LONG, 2, 100.0, fee=2.5))
    book.on_fill(fill(SHORT, 1, 110.0, fee=1.25))
    held = book.positions["ES"]
    assert held.realized == 10 * 50.0 - 2.5 - 1.25
    assert (held.quantity, held.avg_price) == (1, 100.0)
    assert book.stats.trades == 0  # the trip is still open
    book.on_fill(fill(SHORT, 1, 90.0, fee=1.25))
    assert held.realized == pytest.approx(-5.0)
    assert held.quantity == 0 and math.isnan(held.avg_price)
    assert (book.stats.wins, book.stats.losses, book.stats.gross_loss) == (0, 1, 5.0)


def test_a_flip_through_zero_closes_one_trip_and_opens_the_next():
    book = _book()
    book.on_fill(fill(LONG, 2, 100.0))
    book.on_fill(fill(SHORT, 3, 110.0, fee=3.0))
    held = book.positions["ES"]
    assert (held.quantity, held.avg_price) == (-1, 110.0)
    assert held.realized == 2 * 10 * 50.0 - 3.0
    assert book.stats.gross_win == 1000.0 - 2.0  # two thirds of the fee closed the trip
    book.on_fill(fill(LONG, 1, 105.0, fee=1.0))
    assert held.quantity == 0
    assert held.realized == pytest.approx(997.0 + 250.0 - 1.0)
    assert book.stats.wins == 2 and book.stats.gross_win == pytest.approx(998.0 + 248.0)
    assert book.realized_pnl == pytest.approx(book.stats.gross_win)


def test_fills_are_idempotent_by_fill_id():
    book = _book()
    first = fill(LONG, 2, 100.0, fee=1.0, fill_id="f-1")
    assert book.on_fill(first) is True
    assert book.on_fill(fill(LONG, 2, 100.0, fee=1.0, fill_id="f-1")) is False
    assert book.position("ES") == 2 and book.realized_pnl == -1.0


@pytest.mark.parametrize(
    "bad",
    [
        {"side": FLAT},
        {"quantity": 0},
        {"price": math.nan},
        {"price": -1.0},
        {"fee": math.inf},
    ],
)
def test_an_invalid_fill_is_refused(bad):
    book = _book()
    item = fill(LONG, 1, 100.0)
    for name, value in bad.items():
        setattr(item, name, value)
    with pytest.raises(InvalidFill):
        book.on_fill(item)
    assert book.position("ES") == 0


def test_daily_pnl_restarts_at_the_utc_day_of_the_events():
    book = _book()
    day = T0 - T0 % DAY_NS
    book.on_fill(fill(LONG, 1, 100.0, fee=1.0, event_ns=day + 14 * 3600 * NS))
    book.on_bar(bar(110.0, end_ns=day + 20 * 3600 * NS))
    assert book.daily_pnl == 500.0 - 1.0
    book.on_bar(bar(108.0, end_ns=day + DAY_NS + 3600 * NS))  # the next UTC day
    assert book.daily_pnl == -100.0  # from the equity before its first event, at 110
    book.on_bar(bar(104.0, end_ns=day + DAY_NS + 2 * 3600 * NS))
    assert book.daily_pnl == -300.0
    assert book.equity == 100_000.0 - 1.0 + 200.0
    assert book.drawdown_pct == pytest.approx(300.0 / 100_499.0 * 100.0)
    assert book.gross_notional == 104.0 * 50.0 and book.net_position == 1


# --- the kill switch ------------------------------------------------------------------


def test_a_new_switch_is_off_and_active(controls):
    state = controls.state()
    assert not controls.engaged and not state.engaged
    assert (state.engage_count, state.trading_state) == (0, TradingState.ACTIVE)
    assert os.stat(controls.path).st_size == 4096


def test_engage_latches_records_and_reset_clears(controls):
    before = time.time_ns()
    assert controls.engage("loss limit breached", "monitor") is True
    assert controls.engage("second alarm", "api") is False  # latched: the first cause stays
    state = controls.state()
    assert controls.engaged and state.engaged
    assert (state.reason, state.engaged_by, state.engage_count) == (
        "loss limit breached",
        "monitor",
        1,
    )
    assert before <= state.engaged_at_ns <= time.time_ns()
    assert controls.reset("risk-officer") is True
    assert controls.reset("risk-officer") is False
    state = controls.state()
    assert not controls.engaged and state.reset_by == "risk-officer"
    assert state.reset_at_ns >= state.engaged_at_ns
    assert state.reason == "loss limit breached"  # the audit of the last engage stays
    controls.engage("again", "ops")
    assert controls.state().engage_count == 2


def test_the_switch_survives_closing_and_reopening(system):
    first = KillSwitch.open(system)
    first.engage("restart test", "pytest")
    first.set_trading_state(TradingState.HALTED, "ops", "maintenance")
    first.close()
    reopened = KillSwitch.open(system)
    try:
        state = reopened.state()
        assert reopened.engaged and state.reason == "restart test"
        assert reopened.trading_state == TradingState.HALTED and state.state_by == "ops"
    finally:
        reopened.close()


def _in_child(system: str, code: str) -> dict:
    """Run `code` in a new interpreter with `switch` attached; it prints a JSON line."""
    script = (
        "import json\nfrom actors.risk import KillSwitch\n"
        f"switch = KillSwitch.open({system!r})\n{code}\nswitch.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_another_process_sees_the_switch_and_can_reset_it(system, controls):
    controls.engage("seen elsewhere", "parent")
    seen = _in_child(
        system,
        "state = switch.state()\n"
        "print(json.dumps({'engaged': switch.engaged, 'reason': state.reason,"
        " 'by': state.engaged_by}))",
    )
    assert seen == {"engaged": True, "reason": "seen elsewhere", "by": "parent"}
    _in_child(system, "print(json.dumps({'reset': switch.reset('child-officer')}))")
    assert not controls.engaged  # the parent's own mapping sees the child's write
    assert controls.state().reset_by == "child-officer"
    _in_child(system, "print(json.dumps({'engaged': switch.engage('from child', 'child')}))")
    assert controls.engaged and controls.state().engaged_by == "child"


def test_a_long_reason_is_cut_on_a_character_boundary(controls):
    controls.engage("é" * 200, "pytest")  # 400 bytes into a 256-byte field
    assert controls.state().reason == "é" * 128


def test_losing_the_creation_race_attaches_the_winner(system, controls, monkeypatch):
    """A second opener that found no file (the first was creating it) must attach the
    winner's file, not replace it, and leave no temporary file behind."""
    controls.engage("winner", "first")
    real_open = os.open
    raced: list[str] = []

    def open_after_the_race(path: str, flags: int, *args: int) -> int:
        if path == controls.path and not raced:
            raced.append(path)
            raise FileNotFoundError(path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_after_the_race)
    second = KillSwitch.open(system)
    monkeypatch.undo()
    try:
        assert raced and second.engaged and second.reason == "winner"
    finally:
        second.close()
    leftovers = [name for name in os.listdir("/dev/shm") if name.startswith(f"gm-{system}")]
    assert leftovers == [os.path.basename(controls.path)]


@pytest.mark.parametrize("damage", ["size", "magic"])
def test_a_file_that_is_not_a_switch_is_refused(system, damage):
    path = killswitch_path(system)
    with open(path, "wb") as file:
        file.write(b"\0" * (100 if damage == "size" else 4096))
    with pytest.raises(KillSwitchError):
        KillSwitch.open(system)


# --- the actor over real rings --------------------------------------------------------


async def _risk_actor(capture, system: str, **params: object) -> tuple[RiskActor, dict]:
    return await _risk_actor_with_state(capture, system, RiskState(), **params)


async def _risk_actor_with_state(
    capture, system: str, state: RiskState, **params: object
) -> tuple[RiskActor, dict]:
    """The actor over real rings, started from `state` (what the kernel restores)."""
    codec = Codec.from_union(AnyMessage)
    captures = {"verdicts": capture("verdicts", codec)}
    context = actor_context("risk", {n: c.stream for n, c in captures.items()}, system=system)
    actor = RiskActor(RiskActor.parse_params(params), context)
    actor.state = state
    await actor.on_start()
    return actor, captures


async def test_the_actor_answers_every_intent_with_its_origin(capture, system):
    actor, out = await _risk_actor(capture, system)
    actor.on_message(bar(5000.0))
    actor.on_message(intent(intent_id="ok", origin_ns=111, ts_ns=150))
    actor.on_message(intent(intent_id="bad", confidence=math.nan, origin_ns=222, ts_ns=250))
    ok, bad = out["verdicts"].messages
    assert type(ok) is RiskVerdict and ok.approved and ok.quantity == 2 and ok.intent_id == "ok"
    assert (ok.origin_ns, ok.intent_ns, ok.seq) == (111, 150, 1) and ok.ts_ns > ok.intent_ns
    assert not bad.approved and bad.reason == DenyReason.NAN_INPUT
    assert (bad.origin_ns, bad.intent_ns, bad.seq) == (222, 250, 2)
    await actor.on_stop()


def test_portfolio_limits_deny_what_each_symbol_limit_allows(make_gate):
    """Each symbol is far inside its position limit, yet the portfolio's gross or net
    notional cap denies (or cuts) the next order; a hedge passes the net cap."""
    gate = make_gate(max_order_size=5, max_notional=600_000.0, max_net_notional=400_000.0)
    fill_into(gate, fill(LONG, 1, 5000.0), fill(LONG, 1, 5000.0, symbol="NQ"))
    assert gate.book.net_notional == 250_000.0 + 100_000.0  # 1 of 5 ES, 1 of 5 NQ
    verdict = gate.check(intent())
    assert denied(verdict, DenyReason.NET_NOTIONAL_LIMIT), verdict  # $350k + $250k > $400k
    hedge = gate.check(intent(direction=SHORT, symbol="NQ", price=5000.0, stop_price=5006.0))
    assert hedge.approved and hedge.reason != DenyReason.NET_NOTIONAL_LIMIT  # closes NQ first
    gate = make_gate(max_order_size=5, max_notional=400_000.0, max_net_notional=1e9)
    fill_into(gate, fill(LONG, 1, 5000.0), fill(SHORT, 1, 5000.0, symbol="NQ"))
    assert gate.book.gross_notional == 350_000.0 and gate.book.net_notional == 150_000.0
    assert denied(gate.check(intent()), DenyReason.NOTIONAL_LIMIT)  # $350k + $250k > $400k


async def test_a_fill_nobody_can_book_halts_trading_and_says_why(capture, system):
    actor, out = await _risk_actor(capture, system)
    actor.on_message(bar(5000.0))
    actor.on_message(fill(LONG, 1, math.nan, fill_id="f-bad"))
    actor.on_message(intent(intent_id="after-bad-fill"))
    (verdict,) = out["verdicts"].messages
    assert not verdict.approved and verdict.reason == DenyReason.HALTED
    assert actor.book.position("ES") == 0
    state = KillSwitch.open(system).state()
    assert state.trading_state == TradingState.HALTED
    assert "invalid fill: fill f-bad: price nan" in state.state_reason
    await actor.on_stop()


async def test_control_changes_the_state_in_the_switch_file(capture, system):
    actor, out = await _risk_actor(capture, system)
    actor.on_message(bar(5000.0))
    actor.on_message(Control(command=ControlCommand.HALT, reason="news", operator="alice"))
    actor.on_message(intent(intent_id="during-halt"))
    actor.on_message(Control(command=ControlCommand.RESUME, operator="alice"))
    actor.on_message(intent(intent_id="after-resume"))
    halted, resumed = out["verdicts"].messages
    assert not halted.approved and halted.reason == DenyReason.HALTED
    assert resumed.approved
    state = KillSwitch.open(system).state()
    assert (state.trading_state, state.state_by) == (TradingState.ACTIVE, "alice")
    await actor.on_stop()


async def test_flatten_closes_every_position_once_per_request(capture, system):
    actor, out = await _risk_actor(capture, system)
    actor.on_message(bar(5000.0))
    actor.on_message(bar(15000.0, "NQ"))
    actor.on_message(fill(LONG, 2, 5000.0, fill_id="es"))
    actor.on_message(fill(SHORT, 1, 15000.0, symbol="NQ", fill_id="nq"))
    actor.on_timer(FLATTEN_TIMER)
    assert out["verdicts"].messages == [], "nothing asked yet"
    with KillSwitch.open(system) as switch:
        assert switch.request_flatten("api:alice", "risk officer") == 1
    actor.on_timer(FLATTEN_TIMER)
    actor.on_timer(FLATTEN_TIMER)  # answered once
    es, nq = sorted(out["verdicts"].messages, key=lambda v: v.symbol)
    assert (es.intent_id, es.direction, es.quantity) == ("flatten-1-ES", SHORT, 2)
    assert (nq.intent_id, nq.direction, nq.quantity) == ("flatten-1-NQ", LONG, 1)
    assert es.approved and es.detail == "FLATTEN #1" and es.price == 5000.0
    state = KillSwitch.open(system).state()
    assert state.trading_state == TradingState.REDUCING
    assert state.state_reason == "FLATTEN: risk officer" and state.flatten_requests == 1
    # A restarted actor knows the request was answered; a control message asks again.
    saved = msgspec.msgpack.decode(msgspec.msgpack.encode(actor.state_to_save()), type=RiskState)
    await actor.on_stop()
    again, out = await _risk_actor_with_state(capture, system, saved)
    again.on_timer(FLATTEN_TIMER)
    assert out["verdicts"].messages == []
    again.on_message(Control(command=ControlCommand.FLATTEN, reason="again", operator="bob"))
    assert out["verdicts"].messages == [], "what is being closed is not closed twice"
    again.on_message(fill(SHORT, 1, 5000.0, fill_id="es-out"))  # half the ES closed
    again.on_message(fill(SHORT, 1, 5000.0, fill_id="es-new"))  # an older order: short again
    again.on_message(Control(command=ControlCommand.FLATTEN, reason="again", operator="bob"))
    assert out["verdicts"].messages == []  # ES: 0 held, NQ: its close still pending
    assert KillSwitch.open(system).flatten_requests == 3
    await again.on_stop()


async def test_a_new_instance_sees_the_engaged_switch_from_shared_memory(capture, system):
    actor, _ = await _risk_actor(capture, system)
    operator = KillSwitch.open(system)
    operator.engage("runaway strategy", "risk-officer")
    await actor.on_stop()
    restarted, out = await _risk_actor(capture, system)
    restarted.on_message(bar(5000.0))
    restarted.on_message(intent(origin_ns=333))
    (verdict,) = out["verdicts"].messages
    assert not verdict.approved and verdict.reason == DenyReason.KILL_SWITCH
    assert verdict.origin_ns == 333 and verdict.detail == "runaway strategy"
    operator.reset("risk-officer")
    restarted.on_message(intent())
    assert out["verdicts"].messages[-1].approved
    operator.close()
    await restarted.on_stop()


def test_the_params_are_the_limits():
    params = RiskActor.parse_params({"max_position": 3})
    assert isinstance(params, RiskParams) and isinstance(params, RiskLimits)
    assert params.max_position == 3
    assert params.point_values() == {"ES": 50.0, "NQ": 20.0}
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        RiskActor.parse_params({"verdicts": "v"})


async def test_the_durable_state_carries_the_book_and_the_gates_memory(capture, system):
    """What the kernel commits (`state_to_save`, msgpack) restores a new instance with the
    same book, unfilled approvals, order-rate window and intent ids. The restart of a
    real process from this state is tests/test_pipeline.py's (kill -9 mid-save)."""
    first, out = await _risk_actor(capture, system, max_orders_per_minute=2)
    first.on_message(bar(5000.0))
    first.on_message(fill(LONG, 3, 5000.0, fee=1.0, fill_id="f-1"))
    first.on_message(fill(SHORT, 1, 5002.0, fee=1.0, fill_id="f-2"))
    sent = intent()
    first.on_message(sent)
    assert out["verdicts"].messages[-1].approved
    saved = msgspec.msgpack.encode(first.state_to_save())
    await first.on_stop()

    second, out = await _risk_actor_with_state(
        capture, system, msgspec.msgpack.decode(saved, type=RiskState), max_orders_per_minute=2
    )
    assert second.book.position("ES") == 2
    assert second.book.realized_pnl == pytest.approx(first.book.realized_pnl)
    assert second.gate.pending.quantity("ES", 1) == first.gate.pending.quantity("ES", 1) > 0
    second.on_message(fill(SHORT, 1, 5002.0, fee=1.0, fill_id="f-2"))  # an old fill again
    assert second.book.position("ES") == 2
    second.on_message(msgspec.structs.replace(sent))  # the same intent id again
    assert out["verdicts"].messages[-1].reason == DenyReason.DUPLICATE_ID
    second.on_message(intent())  # the window still holds the first approval: one more fits
    assert out["verdicts"].messages[-1].approved
    second.on_message(intent())
    assert out["verdicts"].messages[-1].reason == DenyReason.ORDER_RATE_LIMIT
    await second.on_stop()


@pytest.mark.parametrize("reason", list(SCENARIOS), ids=lambda reason: reason.name)
async def test_a_denied_intent_never_becomes_an_order(make_gate, capture, reason):
    """Each deny, handed to the real execution actor: nothing goes out to the venue."""
    from actors.execution import ExecutionActor, ExecutionParams

    verdict = SCENARIOS[reason](make_gate(**LIMITS.get(reason, {})))
    orders = capture("orders", Codec.from_union(AnyMessage))
    execution = ExecutionActor(
        ExecutionParams(), actor_context("execution", {"orders": orders.stream})
    )
    await execution.on_start()
    execution.on_message(verdict)
    assert orders.messages == []
    assert execution.counts.denied == 1
