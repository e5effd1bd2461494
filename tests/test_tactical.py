"""The baseline tactical strategy: a deterministic, documented rule."""

import math

import pytest

from actors.messages import AnyMessage, Bar, Direction, Tick
from actors.tactical import BaselineRule, BaselineStrategy, TacticalActor, TacticalParams
from kernel.codec import Codec
from tests.helpers import actor_context


def bar(end_s: int, close: float, momentum: float, atr: float = 2.0, tf: int = 300) -> Bar:
    return Bar(
        symbol="ES",
        timeframe_s=tf,
        start_ns=(end_s - tf) * 10**9,
        end_ns=end_s * 10**9,
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=10,
        atr=atr,
        momentum_5=momentum,
        origin_ns=end_s * 7,
    )


def test_signals_on_momentum_and_only_on_a_change_of_direction():
    strategy = BaselineStrategy(BaselineRule(threshold_pct=0.05))
    decisions = [
        strategy.on_bar(bar(i * 300, 4150.0, m))
        for i, m in enumerate([0.01, 0.06, 0.2, -0.02, -0.07, -0.3, 0.08], start=1)
    ]
    directions = [d.direction if d else None for d in decisions]
    assert directions == [None, Direction.LONG, None, None, Direction.SHORT, None, Direction.LONG]


def test_intent_fields_follow_the_rule():
    strategy = BaselineStrategy(BaselineRule(threshold_pct=0.05, stop_atr=2, target_atr=3))
    intent = strategy.on_bar(bar(600, 4150.0, -0.075, atr=4.0))
    assert intent is not None
    assert intent.direction == Direction.SHORT
    assert intent.stop_price == 4158.0 and intent.target_price == 4138.0
    assert intent.score == pytest.approx(0.75) and intent.price == 4150.0
    assert intent.intent_id == f"ES-300-{600 * 10**9}"
    assert intent.origin_ns == 600 * 7 and intent.bar_end_ns == 600 * 10**9


@pytest.mark.parametrize("field", ["momentum", "atr", "close"])
def test_unknown_or_nan_inputs_hold(field):
    strategy = BaselineStrategy(BaselineRule())
    values = {"close": 4150.0, "momentum": 0.5, "atr": 2.0, field: math.nan}
    assert strategy.on_bar(bar(300, values["close"], values["momentum"], values["atr"])) is None
    assert strategy.holds_unknown == 1


def test_volatility_filter_and_other_timeframes_hold():
    strategy = BaselineStrategy(BaselineRule(max_atr_fraction=0.001))
    assert strategy.on_bar(bar(300, 4150.0, 0.5, atr=10.0)) is None  # 0.24% of price: too wild
    assert strategy.holds_volatility == 1
    assert strategy.on_bar(bar(1800, 4150.0, 0.5, atr=1.0, tf=1800)) is None


async def test_the_actor_publishes_intents_on_a_real_ring(capture):
    out = capture("intents", Codec.from_union(AnyMessage))
    actor = TacticalActor(
        TacticalParams(threshold_pct=0.05), actor_context("tactical", {"intents": out.stream})
    )
    await actor.on_start()
    actor.on_message(Tick(symbol="ES", price=1.0, size=1, bid=1.0, ask=1.25, event_ns=1))
    for i, momentum in enumerate([0.1, 0.2, -0.1], start=1):
        actor.on_message(bar(i * 300, 4150.0, momentum))
    assert [(m.direction, m.seq) for m in out.messages] == [
        (Direction.LONG, 1),
        (Direction.SHORT, 2),
    ]
    history = bar(4 * 300, 4150.0, 0.1)
    history.history = True  # the feed's warm-up: the swing is taken, nothing traded
    actor.on_message(history)
    actor.on_message(bar(5 * 300, 4150.0, 0.1))
    assert len(out.messages) == 2 and actor.strategies["ES"].last_direction == Direction.LONG


def test_unknown_strategy_is_a_config_error():
    with pytest.raises(Exception, match="Unknown strategy 'marl'"):
        TacticalActor.parse_params({"strategy": "marl"})
