"""The API actor: /health, /risk and /metrics served from a real health table, real latency
histograms and snapshots fed through on_message, queried over HTTP on 127.0.0.1."""

import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from actors.api import ApiActor, ApiParams
from actors.execution import ExecutionActor, ExecutionParams
from actors.journal.actor import JournalState
from actors.messages import (
    AnyMessage,
    DenyReason,
    Direction,
    Fill,
    OrderAck,
    OrderReject,
    PositionSnapshot,
    RejectReason,
    RiskSnapshot,
    RiskVerdict,
    Tick,
    TradingState,
)
from kernel.codec import Codec
from kernel.durable import DurableRecord
from kernel.health import HealthTable, State
from kernel.latency import LatencyRecorder
from kernel.streams import UnwiredOutput
from ringbuf import list_segments, unlink_segment
from tests.helpers import actor_context

LATENCIES_NS = [500, 1_000, 1_500, 3_000, 20_000, 400_000, 2_000_000]
"""Recorded into venue.tick_to_order; 1_000 sits in the HDR bucket [992, 1024), which
straddles the 1 us edge and so counts above it."""

EXPECTED_CUMULATIVE = {
    1e-6: 1,
    2.5e-6: 3,
    5e-6: 4,
    1e-5: 4,
    2.5e-5: 5,
    5e-5: 5,
    1e-4: 5,
    2.5e-4: 5,
    5e-4: 6,
    1e-3: 6,
    2.5e-3: 7,
    5e-3: 7,
    1e-2: 7,
    2.5e-2: 7,
    5e-2: 7,
    0.1: 7,
    math.inf: 7,
}


def risk_snapshot(**changes: Any) -> RiskSnapshot:
    fields: dict[str, Any] = {
        "trading_state": TradingState.REDUCING,
        "kill_switch": True,
        "equity": 101_250.5,
        "daily_pnl": -1_250.0,
        "drawdown_pct": 2.5,
        "gross_notional": 250_000.0,
        "net_position": -3,
        "var_95": 1_800.0,
        "var_99": 2_600.0,
        "es_95": 2_300.0,
        "es_99": 3_100.0,
        "event_ns": 1_767_623_400_000_000_000,
        "consecutive_losses": 2,
        "limits": {"max_position": 10.0, "daily_loss_limit": 5_000.0},
        "utilisation": {"max_position": 0.3, "daily_loss_limit": 0.25},
        "seq": 41,
    }
    fields.update(changes)
    return RiskSnapshot(**fields)


POSITION = {
    "avg_price": 5_000.25,
    "mark_price": 5_001.0,
    "realized_pnl": 125.0,
    "unrealized_pnl": -37.5,
    "event_ns": 1_767_623_400_000_000_000,
    "open_orders": 1,
}
"""The fields of every PositionSnapshot `position` makes, unless changed."""


def position(symbol: str, quantity: int, **changes: Any) -> PositionSnapshot:
    return PositionSnapshot(symbol=symbol, quantity=quantity, **{**POSITION, **changes})


@pytest.fixture
def system() -> Iterator[str]:
    """A unique run name; its segments (the kill switch the API opens) go afterwards."""
    name = f"test-api-{uuid.uuid4().hex[:10]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


@pytest.fixture
def table(system: str) -> Iterator[HealthTable]:
    """The system's health table, every actor RUNNING (as the supervisor would set it)."""
    table = HealthTable.create(system, [("feed", "market"), ("api", "web")])
    table.rows["state"][:] = State.RUNNING
    yield table
    table.unlink()
    table.close()


@pytest.fixture
def recorder(system: str) -> Iterator[LatencyRecorder]:
    recorder = LatencyRecorder(system, "venue", ["tick_to_order"])
    yield recorder
    recorder.close()
    os.unlink(recorder.path)


async def start_api(system: str, port_file: Path) -> ApiActor:
    params = ApiActor.parse_params({"port": 0, "port_file": str(port_file)})
    actor = ApiActor(params, actor_context("api", {}, system=system))
    await actor.on_start()
    return actor


@pytest.fixture
async def api(system: str, tmp_path: Path) -> AsyncIterator[ApiActor]:
    actor = await start_api(system, tmp_path / "api.port")
    yield actor
    await actor.on_stop()


async def get_json(http: aiohttp.ClientSession, path: str, method: str = "GET") -> tuple[int, Any]:
    async with http.request(method, path) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def scrape(http: aiohttp.ClientSession) -> dict[str, Metric]:
    async with http.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Metric, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    """A family's samples named `<family><suffix>`, by their sorted labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if s.name == family.name + suffix
    }


async def test_health_ok_while_all_running_then_degraded(
    table: HealthTable, http: aiohttp.ClientSession, system: str
) -> None:
    status, body = await get_json(http, "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["system"] == system
    assert [(row["actor"], row["state"]) for row in body["actors"]] == [
        ("feed", "RUNNING"),
        ("api", "RUNNING"),
    ]
    assert set(body["actors"][0]) == set(table.snapshot()[0])

    table.rows["state"][0] = State.FAILED
    status, body = await get_json(http, "/health")
    assert status == 503
    assert body["status"] == "degraded"
    assert body["system"] == system
    assert body["actors"][0]["state"] == "FAILED"


async def test_health_attaches_once_the_table_exists(
    http: aiohttp.ClientSession, system: str
) -> None:
    status, body = await get_json(http, "/health")
    assert status == 503
    assert body["status"] == "degraded"
    assert body["actors"] == []
    assert system in str(body["error"])

    table = HealthTable.create(system, [("api", "web")])
    try:
        table.rows["state"][0] = State.RUNNING
        status, body = await get_json(http, "/health")
        assert (status, body["status"]) == (200, "ok")
    finally:
        table.unlink()
        table.close()


async def test_risk_is_503_until_a_snapshot_then_the_latest_state(
    api: ApiActor, http: aiohttp.ClientSession
) -> None:
    assert await get_json(http, "/risk") == (503, {"error": "no risk snapshot yet"})

    api.on_message(position("ES", -2))
    api.on_message(Tick(symbol="ES", price=1.0, size=1, bid=1.0, ask=1.0, event_ns=1))
    api.on_message(risk_snapshot(equity=1.0))
    api.on_message(position("NQ", 1))
    api.on_message(position("ES", -3))
    api.on_message(risk_snapshot())

    status, body = await get_json(http, "/risk")
    assert status == 200
    assert body["trading_state"] == "REDUCING"
    assert body["kill_switch"] is True
    assert body["equity"] == 101_250.5
    assert body["daily_pnl"] == -1_250.0
    assert body["drawdown_pct"] == 2.5
    assert body["net_position"] == -3
    assert (body["var_95"], body["var_99"], body["es_95"], body["es_99"]) == (
        1_800.0,
        2_600.0,
        2_300.0,
        3_100.0,
    )
    assert body["correlation_score"] is None  # NaN: not known yet
    assert body["limits"] == {"max_position": 10.0, "daily_loss_limit": 5_000.0}
    assert body["utilisation"] == {"max_position": 0.3, "daily_loss_limit": 0.25}
    assert body["as_of_ns"] == 1_767_623_400_000_000_000
    assert "seq" not in body and "event_ns" not in body
    positions = body["positions"]
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("ES", -3), ("NQ", 1)]
    assert positions[0] == {
        "symbol": "ES",
        "quantity": -3,
        **POSITION,
        "notional": None,  # NaN: the snapshot did not say
    }


async def test_positions_list_each_symbol_and_the_portfolio(
    api: ApiActor, http: aiohttp.ClientSession
) -> None:
    assert await get_json(http, "/positions") == (503, {"error": "no risk snapshot yet"})
    api.on_message(position("NQ", 2, notional=2 * 14_500.0 * 20.0))
    api.on_message(position("ES", -3, notional=-3 * 5_001.0 * 50.0))
    api.on_message(
        risk_snapshot(
            gross_notional=1_330_150.0,
            net_notional=-170_150.0,
            concentration=750_150.0 / 1_330_150.0,
            realized_pnl=250.0,
            unrealized_pnl=-75.0,
        )
    )
    status, body = await get_json(http, "/positions")
    assert status == 200 and body["as_of_ns"] == 1_767_623_400_000_000_000
    assert [(p["symbol"], p["quantity"], p["notional"]) for p in body["positions"]] == [
        ("ES", -3, -750_150.0),
        ("NQ", 2, 580_000.0),
    ]
    assert body["portfolio"] == {
        "symbols": 2,
        "net_position": -3,
        "gross_notional": 1_330_150.0,
        "net_notional": -170_150.0,
        "concentration": 750_150.0 / 1_330_150.0,
        "realized_pnl": 250.0,
        "unrealized_pnl": -75.0,
        "daily_pnl": -1_250.0,
        "equity": 101_250.5,
    }


async def test_metrics_expose_health_latency_and_risk(
    table: HealthTable, recorder: LatencyRecorder, api: ApiActor, http: aiohttp.ClientSession
) -> None:
    series = recorder.series("tick_to_order")
    for value in LATENCIES_NS:
        series.record(value)
    feed, api_row = table.index["feed"], table.index["api"]
    table.rows["state"][api_row] = State.FAILED
    table.rows["restarts"][api_row] = 2
    table.rows["msgs_in"][feed], table.rows["msgs_out"][feed] = 7, 1_000
    table.rows["ring_depth"][feed] = 4_096
    table.rows["heartbeat_ns"][feed] = time.monotonic_ns()
    api.on_message(position("ES", -3, notional=-750_150.0))
    api.on_message(position("NQ", 2, notional=580_000.0, realized_pnl=-40.0))
    api.on_message(
        risk_snapshot(gross_notional=1_330_150.0, net_notional=-170_150.0, concentration=0.5)
    )

    families = await scrape(http)

    feed_key = (("actor", "feed"), ("node", "market"))
    api_key = (("actor", "api"), ("node", "web"))
    assert samples(families["grandmodel_actor_up"]) == {feed_key: 1.0, api_key: 0.0}
    restarts = families["grandmodel_actor_restarts"]
    assert restarts.type == "counter"
    assert samples(restarts, "_total") == {feed_key: 0.0, api_key: 2.0}
    assert samples(families["grandmodel_actor_messages_in"], "_total")[feed_key] == 7.0
    assert samples(families["grandmodel_actor_messages_out"], "_total")[feed_key] == 1_000.0
    assert samples(families["grandmodel_actor_ring_depth_bytes"])[feed_key] == 4_096.0
    age = samples(families["grandmodel_actor_heartbeat_age_seconds"])
    assert list(age) == [feed_key]  # the api row never beat: no sample
    assert 0.0 <= age[feed_key] < 60.0

    latency = families["grandmodel_latency_seconds"]
    assert latency.type == "histogram"
    label = ("series", "venue.tick_to_order")
    buckets = {
        float(s.labels["le"]): s.value
        for s in latency.samples
        if s.name.endswith("_bucket") and s.labels["series"] == label[1]
    }
    assert buckets == EXPECTED_CUMULATIVE
    assert samples(latency, "_count") == {(label,): len(LATENCIES_NS)}
    estimated_sum = samples(latency, "_sum")[(label,)]
    assert estimated_sum == pytest.approx(sum(LATENCIES_NS) / 1e9, rel=1 / 16)

    assert samples(families["grandmodel_risk_equity"]) == {(): 101_250.5}
    assert samples(families["grandmodel_risk_daily_pnl"]) == {(): -1_250.0}
    assert samples(families["grandmodel_risk_kill_switch"]) == {(): 1.0}
    assert samples(families["grandmodel_risk_gross_notional"]) == {(): 1_330_150.0}
    assert samples(families["grandmodel_risk_net_notional"]) == {(): -170_150.0}
    assert samples(families["grandmodel_risk_concentration"]) == {(): 0.5}
    es, nq = (("symbol", "ES"),), (("symbol", "NQ"),)
    assert samples(families["grandmodel_position_contracts"]) == {es: -3.0, nq: 2.0}
    assert samples(families["grandmodel_position_notional"]) == {es: -750_150.0, nq: 580_000.0}
    assert samples(families["grandmodel_position_pnl"]) == {
        (("kind", "realized"), *es): 125.0,
        (("kind", "unrealized"), *es): -37.5,
        (("kind", "realized"), *nq): -40.0,
        (("kind", "unrealized"), *nq): -37.5,
    }


async def test_metrics_before_any_data(http: aiohttp.ClientSession) -> None:
    families = await scrape(http)
    assert families["grandmodel_actor_up"].samples == []
    assert families["grandmodel_latency_seconds"].samples == []
    assert not any(name.startswith(("grandmodel_risk", "grandmodel_position")) for name in families)


async def test_unknown_path_and_wrong_method_answer_json(http: aiohttp.ClientSession) -> None:
    status, body = await get_json(http, "/nope")
    assert status == 404
    assert "/nope" in str(body["error"])

    async with http.post("/health") as response:
        assert response.status == 405
        assert response.content_type == "application/json"
        assert "POST" in (await response.json())["error"]
        assert "GET" in response.headers["Allow"]


async def test_a_failing_handler_answers_500_and_the_server_keeps_serving(
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(system: str) -> None:
        raise RuntimeError("histogram segment corrupt")

    monkeypatch.setattr("actors.api.server.read_histograms", broken)
    with caplog.at_level(logging.ERROR, logger="actor.api"):
        assert await get_json(http, "/metrics") == (500, {"error": "internal error"})
    assert "histogram segment corrupt" in caplog.text
    assert (await get_json(http, "/risk"))[0] == 503


async def test_port_zero_is_logged_and_written_to_the_port_file(
    system: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port_file = tmp_path / "api.port"
    with caplog.at_level(logging.INFO, logger="actor.api"):
        actor = await start_api(system, port_file)
    try:
        assert actor.port != 0
        assert port_file.read_text() == f"{actor.port}\n"
        assert f"127.0.0.1:{actor.port}" in caplog.text
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{actor.port}/risk") as response,
        ):
            assert response.status == 503
    finally:
        await actor.on_stop()
    assert not port_file.exists()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{actor.port}/health")


def test_params_accept_loopback_only() -> None:
    assert ApiActor.parse_params({}) == ApiParams(host="127.0.0.1", port=8080, port_file=None)
    assert ApiActor.parse_params({"host": "::1", "port": 0}).host == "::1"
    assert ApiActor.parse_params({"host": "127.0.0.2"}).host == "127.0.0.2"
    for host in ("0.0.0.0", "192.168.1.10", "::", "localhost"):
        with pytest.raises(msgspec.ValidationError, match="loopback"):
            ApiActor.parse_params({"host": host})
    with pytest.raises(msgspec.ValidationError, match="port"):
        ApiActor.parse_params({"port": 65_536})
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        ApiActor.parse_params({"bind": "127.0.0.1"})


async def test_metrics_count_orders_fills_and_rejects_as_execution_committed_them(
    system: str, http: aiohttp.ClientSession
) -> None:
    assert "grandmodel_orders" not in await scrape(http)  # nothing committed yet
    execution = ExecutionActor(
        ExecutionParams(),
        actor_context(
            "execution",
            {"orders": UnwiredOutput("orders", Codec.from_union(AnyMessage), "execution")},
            system=system,
        ),
    )
    await execution.on_start()
    reports = {
        "I-1": [OrderAck, Fill],  # filled in full
        "I-2": [OrderAck, Fill],  # 1 of 3 filled, the rest cancelled
        "I-3": [OrderReject],
    }
    for n, (intent_id, kinds) in enumerate(reports.items()):
        side = Direction.LONG if n < 2 else Direction.SHORT
        execution.on_message(
            RiskVerdict(
                intent_id=intent_id,
                symbol="ES",
                approved=True,
                reason=DenyReason.NONE,
                direction=side,
                quantity=3,
                price=100.0,
            )
        )
        order_id = f"{intent_id}-1"
        for kind in kinds:
            if kind is OrderAck:
                execution.on_message(
                    OrderAck(
                        client_order_id=order_id,
                        venue_order_id=f"V-{order_id}",
                        symbol="ES",
                        side=side,
                        quantity=3,
                        event_ns=1,
                    )
                )
            elif kind is Fill:
                execution.on_message(
                    Fill(
                        fill_id=f"F-{order_id}",
                        client_order_id=order_id,
                        venue_order_id=f"V-{order_id}",
                        symbol="ES",
                        side=side,
                        quantity=3 if intent_id == "I-1" else 1,
                        price=100.0,
                        leaves_quantity=0,
                        fee=1.0,
                        event_ns=1,
                    )
                )
            else:
                execution.on_message(
                    OrderReject(
                        client_order_id=order_id,
                        symbol="ES",
                        reason=RejectReason.NO_LIQUIDITY,
                        event_ns=1,
                    )
                )
    # What the kernel does at a commit: the counts are read from there, never before.
    record = DurableRecord(system, "execution", run_id=1)
    try:
        record.record.state = msgspec.msgpack.encode(execution.state_to_save())
        record.save()
        families = await scrape(http)
    finally:
        record.close()
        for status in list_segments(f"{system}."):
            unlink_segment(status.name)
    long_, short = (("side", "LONG"),), (("side", "SHORT"),)
    assert samples(families["grandmodel_orders"], "_total") == {long_: 2.0, short: 1.0}
    assert samples(families["grandmodel_order_acks"], "_total") == {long_: 2.0, short: 0.0}
    assert samples(families["grandmodel_fills"], "_total") == {long_: 2.0, short: 0.0}
    assert samples(families["grandmodel_filled_contracts"], "_total")[long_] == 4.0
    assert samples(families["grandmodel_cancelled_orders"], "_total")[long_] == 1.0
    rejects = samples(families["grandmodel_order_rejects"], "_total")
    assert rejects == {(("reason", "NO_LIQUIDITY"),): 1.0}


async def test_metrics_count_journal_rows_as_the_journal_committed_them(
    system: str, http: aiohttp.ClientSession
) -> None:
    table = HealthTable.create(system, [("journal", "audit"), ("api", "web")])
    table.rows["state"][:] = State.RUNNING
    table.rows["dropped"][table.index["journal"]] = 7  # lost by its full rings
    record = DurableRecord(system, "journal", run_id=1)
    try:
        assert "grandmodel_journal_rows_written" not in await scrape(http)
        record.record.state = msgspec.msgpack.encode(
            JournalState(written=120, repeated=4, lost=3, reconciliation_mismatches=2)
        )
        record.save()
        families = await scrape(http)
    finally:
        record.close()
        table.unlink()
        table.close()
        for status in list_segments(f"{system}."):
            unlink_segment(status.name)
    assert samples(families["grandmodel_journal_rows_written"], "_total") == {(): 120.0}
    assert samples(families["grandmodel_journal_rows_repeated"], "_total") == {(): 4.0}
    dropped = samples(families["grandmodel_journal_rows_dropped"], "_total")
    assert dropped == {(("cause", "ring_full"),): 7.0, (("cause", "unwritable"),): 3.0}
    mismatches = families["grandmodel_journal_reconciliation_mismatches"]
    assert samples(mismatches, "_total") == {(): 2.0}
