"""The trading message union: every type through the kernel codec and back."""

import math
import typing

import msgspec
import numpy as np
import pytest

from actors import messages as m
from kernel.codec import Codec, CodecError
from kernel.messages import Message

TYPES = typing.get_args(m.AnyMessage)

SAMPLES: dict[type, msgspec.Struct] = {
    m.Tick: m.Tick(
        symbol="ES",
        price=4150.25,
        size=3,
        bid=4150.0,
        ask=4150.25,
        event_ns=1_767_623_400_000_000_000,
        regime=m.Regime.VOLATILE,
        bid_size=12,
        ask_size=9,
    ),
    m.Bar: m.Bar(
        symbol="ES",
        timeframe_s=300,
        start_ns=1_767_623_400_000_000_000,
        end_ns=1_767_623_700_000_000_000,
        open=4150.0,
        high=4152.5,
        low=4149.25,
        close=4151.0,
        volume=1234,
        atr=2.75,
        momentum_5=0.125,
        ticks=300,
    ),
    m.TacticalMatrix: m.TacticalMatrix.from_array(
        np.arange(60 * 7, dtype=np.float32).reshape(60, 7),
        symbol="ES",
        bar_end_ns=1_767_623_700_000_000_000,
        close=4151.0,
        atr=2.75,
    ),
    m.StrategicMatrix: m.StrategicMatrix.from_array(
        np.linspace(-1, 1, 48 * 13).reshape(48, 13),
        symbol="ES",
        bar_end_ns=1_767_625_200_000_000_000,
        close=4151.0,
        atr=6.5,
        volatility=0.18,
    ),
    m.Synergy: m.Synergy(
        symbol="ES",
        synergy_type=m.SynergyType.TYPE_2,
        direction=m.Direction.LONG,
        confidence=0.72,
        bar_end_ns=5,
        price=4151.0,
        mlmi_signal_ns=1,
        nwrqk_signal_ns=2,
        fvg_signal_ns=3,
    ),
    m.StrategicDecision: m.StrategicDecision(
        symbol="ES",
        bar_end_ns=5,
        direction=m.Direction.SHORT,
        p_bearish=0.7,
        p_neutral=0.2,
        p_bullish=0.1,
        confidence=0.7,
        uncertainty=0.73,
        should_proceed=True,
        synergy_type=m.SynergyType.TYPE_1,
        model_version="strategic-1.0.0",
        fallback=False,
    ),
    m.TradeIntent: m.TradeIntent(
        intent_id="ti-1",
        symbol="ES",
        direction=m.Direction.LONG,
        score=0.71,
        confidence=0.8,
        price=4151.0,
        atr=2.75,
        stop_price=4145.5,
        target_price=4159.25,
        bar_end_ns=5,
        synergy_type=m.SynergyType.TYPE_3,
        strategic_direction=m.Direction.LONG,
        model_version="tactical-1.0.0",
    ),
    m.RiskVerdict: m.RiskVerdict(
        intent_id="ti-1",
        symbol="ES",
        approved=False,
        reason=m.DenyReason.VAR_LIMIT,
        direction=m.Direction.LONG,
        quantity=0,
        price=4151.0,
        stop_price=4145.5,
        target_price=4159.25,
        kelly_fraction=0.05,
        risk_amount=0.0,
        detail="VaR 99% > limit",
    ),
    m.OrderRequest: m.OrderRequest(
        client_order_id="co-1",
        symbol="ES",
        side=m.Direction.SHORT,
        quantity=2,
        order_type=m.OrderType.LIMIT,
        limit_price=4150.75,
        stop_price=4155.0,
        time_in_force=m.TimeInForce.DAY,
        strategy=m.ExecStrategy.TWAP,
        intent_id="ti-1",
        parent_id="co-0",
        reduce_only=True,
    ),
    m.OrderAck: m.OrderAck(
        client_order_id="co-1",
        venue_order_id="v-9",
        symbol="ES",
        side=m.Direction.SHORT,
        quantity=2,
        event_ns=7,
    ),
    m.OrderReject: m.OrderReject(
        client_order_id="co-2",
        symbol="ES",
        reason=m.RejectReason.NO_LIQUIDITY,
        event_ns=8,
        detail="book empty",
    ),
    m.Fill: m.Fill(
        fill_id="f-1",
        client_order_id="co-1",
        venue_order_id="v-9",
        symbol="ES",
        side=m.Direction.SHORT,
        quantity=1,
        price=4150.75,
        leaves_quantity=1,
        fee=2.25,
        event_ns=9,
        liquidity=m.Liquidity.MAKER,
    ),
    m.CancelRequest: m.CancelRequest(client_order_id="co-1", symbol="ES", reason="stale"),
    m.PositionSnapshot: m.PositionSnapshot(
        symbol="ES",
        quantity=-1,
        avg_price=4150.75,
        mark_price=4150.0,
        realized_pnl=-12.5,
        unrealized_pnl=37.5,
        event_ns=10,
        open_orders=1,
        notional=-207_500.0,
    ),
    m.RiskSnapshot: m.RiskSnapshot(
        trading_state=m.TradingState.REDUCING,
        kill_switch=False,
        equity=1_000_000.0,
        daily_pnl=-2500.0,
        drawdown_pct=0.4,
        gross_notional=207_537.5,
        net_position=-1,
        var_95=4100.0,
        var_99=5800.0,
        es_95=5100.0,
        es_99=6700.0,
        event_ns=11,
        consecutive_losses=2,
        correlation_score=0.3,
        net_notional=-207_537.5,
        concentration=1.0,
        realized_pnl=-40.0,
        unrealized_pnl=37.5,
        var_method="filtered_historical",
        var_by_method={"historical.var_99": 5600.0, "historical.es_99": 6900.0},
        session_drawdown_pct=0.3,
        margin_use=0.05,
        volatility_ratio=1.2,
        correlation_change=0.1,
        var_backtests=[
            m.VarBacktestSummary(
                confidence=0.99,
                periods=250,
                hits=3,
                expected_hits=2.5,
                kupiec_statistic=0.1,
                kupiec_p_value=0.75,
                independence_statistic=0.07,
                independence_p_value=0.79,
                conditional_coverage_statistic=0.17,
                conditional_coverage_p_value=0.92,
                zone="green",
                plus_factor=0.0,
            )
        ],
        breakers=["volatility: volatility 3.10x normal >= 3x"],
    ),
    m.DecisionRecord: m.DecisionRecord(
        decision_id="d-1",
        kind=m.DecisionKind.TACTICAL,
        symbol="ES",
        action=m.Direction.LONG,
        confidence=0.8,
        event_ns=12,
        model_version="tactical-1.0.0",
        synergy_type=m.SynergyType.TYPE_4,
        price=4151.0,
        volatility=0.14,
        spread=0.25,
        volume_ratio=1.3,
        probabilities=[0.1, 0.2, 0.7],
        attributions=[0.5, -0.25, 0.0],
        parent_id="s-1",
        reason="FVG + momentum agree",
    ),
    m.Heartbeat: m.Heartbeat(
        actor="bars",
        pid=4242,
        status=m.ActorStatus.DEGRADED,
        messages_in=10,
        messages_out=2,
        detail="slow consumer",
    ),
    m.Control: m.Control(command=m.ControlCommand.FLATTEN, reason="drill", operator="ops"),
}


def _stamped(msg: msgspec.Struct, i: int) -> msgspec.Struct:
    msg = msgspec.structs.replace(msg)
    msg.seq = i + 1
    msg.ts_ns = 1_000 + i
    msg.origin_ns = 500 + i
    return msg


def test_samples_cover_the_union_exactly():
    assert set(SAMPLES) == set(TYPES)


def test_union_has_no_duplicate_and_tags_are_the_record_type_ids():
    assert len(set(TYPES)) == len(TYPES) == 18
    names = [cls.__name__ for cls in TYPES]
    assert len(set(names)) == len(names)
    codec = Codec.from_union(m.AnyMessage)
    tags = [cls.__struct_config__.tag for cls in TYPES]
    assert tags == [codec.type_id(cls) for cls in TYPES] == list(range(1, len(TYPES) + 1))


@pytest.mark.parametrize("cls", TYPES, ids=lambda cls: cls.__name__)
def test_every_type_round_trips_through_the_codec(cls):
    codec = Codec.from_union(m.AnyMessage)
    msg = _stamped(SAMPLES[cls], TYPES.index(cls))
    type_id, payload = codec.encode(msg)
    assert type_id == TYPES.index(cls) + 1
    decoded = codec.decode(type_id, memoryview(payload))
    assert type(decoded) is cls
    assert decoded == msg
    assert (decoded.seq, decoded.ts_ns, decoded.origin_ns) == (msg.seq, msg.ts_ns, msg.origin_ns)
    # The int tag makes a payload decodable without the record type id, e.g. by the journal.
    assert msgspec.msgpack.decode(payload, type=m.AnyMessage) == msg


@pytest.mark.parametrize("cls", TYPES, ids=lambda cls: cls.__name__)
def test_every_type_is_a_mutable_compact_kernel_message(cls):
    config = cls.__struct_config__
    assert issubclass(cls, Message)
    assert config.array_like and not config.frozen and not config.gc


def test_enum_fields_decode_as_enums_and_nan_survives():
    codec = Codec.from_union(m.AnyMessage)
    verdict = codec.decode(*codec.encode(SAMPLES[m.RiskVerdict]))
    assert verdict.reason is m.DenyReason.VAR_LIMIT
    assert verdict.direction is m.Direction.LONG
    bar = m.Bar(
        symbol="ES",
        timeframe_s=1800,
        start_ns=0,
        end_ns=1_800_000_000_000,
        open=1.0,
        high=1.0,
        low=1.0,
        close=1.0,
        volume=1,
    )
    decoded = codec.decode(*codec.encode(bar))
    assert math.isnan(decoded.atr) and math.isnan(decoded.momentum_5)


def test_a_value_outside_an_enum_is_rejected():
    codec = Codec.from_union(m.AnyMessage)
    type_id, payload = codec.encode(SAMPLES[m.Control])
    raw = msgspec.msgpack.decode(payload)
    raw[4] = 99  # the command field
    with pytest.raises(CodecError, match="Invalid enum value 99"):
        codec.decode(type_id, msgspec.msgpack.encode(raw))


def test_direction_and_regime_values():
    assert [(d.name, d.value) for d in m.Direction] == [("SHORT", -1), ("FLAT", 0), ("LONG", 1)]
    assert [r.name for r in m.Regime] == ["BULL", "BEAR", "SIDEWAYS", "VOLATILE"]
    assert [c.name for c in m.ControlCommand] == ["HALT", "RESUME", "FLATTEN", "SHUTDOWN"]
    assert m.Tick(symbol="ES", price=1.0, size=1, bid=1.0, ask=1.25, event_ns=0).regime == -1


@pytest.mark.parametrize(
    ("cls", "shape"), [(m.TacticalMatrix, (60, 7)), (m.StrategicMatrix, (48, 13))]
)
def test_matrices_carry_float32_values_and_shape(cls, shape):
    values = np.random.default_rng(1).standard_normal(shape)
    msg = cls.from_array(values, symbol="ES", bar_end_ns=1, close=4150.0, atr=3.0)
    defaults = {field.name: field.default for field in msgspec.structs.fields(cls)}
    assert (msg.rows, msg.cols) == (defaults["rows"], defaults["cols"]) == shape
    codec = Codec.from_union(m.AnyMessage)
    array = codec.decode(*codec.encode(msg)).array()
    assert array.shape == shape and array.dtype == np.float32
    np.testing.assert_array_equal(array, values.astype(np.float32))
    with pytest.raises(ValueError, match="2-D"):
        cls.from_array(values.ravel(), symbol="ES", bar_end_ns=1, close=4150.0, atr=3.0)


def test_the_kernel_stamps_the_envelope_on_publish(capture):
    codec = Codec.from_union(m.AnyMessage)
    out = capture("ticks", codec)
    stream = out.stream
    tick = msgspec.structs.replace(SAMPLES[m.Tick])
    bar = msgspec.structs.replace(SAMPLES[m.Bar], origin_ns=123)
    stream.publish(tick)
    stream.publish(bar)
    got = out.messages
    assert [msg.seq for msg in got] == [1, 2]
    assert got[0].origin_ns == got[0].ts_ns > 0
    assert got[1].origin_ns == 123 and got[1].ts_ns >= got[0].ts_ns
