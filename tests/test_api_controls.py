"""The operator's controls over HTTP (bearer token, validated bodies, the kill-switch file
they change), the Host check, and the OpenAPI document held to the live answers: a real
ApiActor on 127.0.0.1, a real kill switch in shared memory."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.api import ApiActor
from actors.api.auth import TokenError, load_token
from actors.api.openapi import BacktestBody, HealthBody, LimitsBody, PositionsBody, RiskBody
from actors.messages import TradingState
from actors.risk.killswitch import KillSwitch
from tests.helpers import actor_context
from tests.test_api import position, risk_snapshot

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _start(system: str, tmp_path: Path) -> ApiActor:
    params = ApiActor.parse_params({"port": 0, "port_file": str(tmp_path / "api.port")})
    actor = ApiActor(params, actor_context("api", {}, system=system))
    await actor.on_start()
    return actor


@pytest.fixture
async def api(system: str, tmp_path: Path, monkeypatch) -> AsyncIterator[ApiActor]:
    monkeypatch.setenv("GRANDMODEL_API_TOKEN", TOKEN)
    actor = await _start(system, tmp_path)
    yield actor
    await actor.on_stop()


async def call(
    http: aiohttp.ClientSession,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with http.post(path, data=data, headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json(), response


async def test_the_kill_switch_engages_with_the_token_only(http, system):
    kill = {"reason": "runaway strategy", "operator": "alice"}
    status, body, response = await call(http, "/risk/kill", kill)
    assert status == 401 and "Bearer" in body["error"]
    assert response.headers["WWW-Authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer not-the-token-at-all-000000"}
    assert (await call(http, "/risk/kill", kill, bad))[0] == 401
    with KillSwitch.open(system) as switch:
        assert not switch.engaged
        status, body, _ = await call(http, "/risk/kill", kill, AUTH)
        assert status == 200 and body["changed"] and body["kill_switch"]["engaged"]
        assert switch.engaged
        state = switch.state()
        assert (state.reason, state.engaged_by) == ("runaway strategy", "api:alice")
        status, body, _ = await call(http, "/risk/kill", kill, AUTH)
        assert status == 200 and not body["changed"]  # already engaged: first reason kept
        # Only an authenticated reset clears it.
        assert (await call(http, "/risk/reset", {"operator": "mallory"}))[0] == 401
        assert switch.engaged
        status, body, _ = await call(http, "/risk/reset", {"operator": "bob"}, AUTH)
        assert status == 200 and body["changed"] and not body["kill_switch"]["engaged"]
        assert not switch.engaged and switch.state().reset_by == "api:bob"


async def test_halt_and_resume_set_the_trading_state(http, system):
    with KillSwitch.open(system) as switch:
        halt = {"command": "HALT", "reason": "news at 14:30", "operator": "alice"}
        status, body, _ = await call(http, "/control", halt, AUTH)
        assert status == 200 and body["kill_switch"]["trading_state"] == "HALTED"
        assert switch.trading_state is TradingState.HALTED
        assert switch.state().state_by == "api:alice"
        resume = {"command": "RESUME", "reason": "news digested", "operator": "alice"}
        assert (await call(http, "/control", resume, AUTH))[0] == 200
        assert switch.trading_state is TradingState.ACTIVE


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "Expected `object`"),
        (b'{"reason": "x", "operator": "alice", "extra": 1}', "extra"),
        (b'{"reason": 7, "operator": "alice"}', "$.reason"),
        (b'{"reason": "", "operator": "alice"}', "$.reason"),
        (b'{"reason": "x", "operator": "a b"}', "$.operator"),
        (b'{"reason": NaN, "operator": "alice"}', "not JSON"),
        (b'{"operator": "alice"}', "reason"),
    ],
)
async def test_a_bad_body_is_a_400_naming_what_is_wrong_and_changes_nothing(
    http, system, raw, names
):
    status, body, _ = await call(http, "/risk/kill", raw=raw, headers=AUTH)
    assert status == 400 and names in body["error"], body
    with KillSwitch.open(system) as switch:
        assert not switch.engaged


async def test_an_unknown_command_lists_the_known_ones(http):
    flatten = {"command": "LIQUIDATE", "reason": "x", "operator": "alice"}
    status, body, _ = await call(http, "/control", flatten, AUTH)
    assert status == 400 and "HALT" in body["error"] and "$.command" in body["error"]


async def test_a_huge_body_is_a_413_with_a_json_reason(http):
    status, body, _ = await call(http, "/risk/kill", raw=b"x" * 100_000, headers=AUTH)
    assert status == 413 and "larger than" in body["error"]


async def test_without_a_configured_token_the_controls_are_disabled_and_say_why(
    system, tmp_path, monkeypatch, caplog
):
    monkeypatch.delenv("GRANDMODEL_API_TOKEN", raising=False)
    actor = await _start(system, tmp_path)
    try:
        assert "mutating endpoints" in caplog.text
        async with aiohttp.ClientSession(f"http://127.0.0.1:{actor.port}") as http:
            kill = {"reason": "x", "operator": "alice"}
            status, body, _ = await call(http, "/risk/kill", kill, AUTH)
            assert status == 403 and "GRANDMODEL_API_TOKEN" in body["error"]
    finally:
        await actor.on_stop()


def test_the_token_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("GM_TEST_TOKEN", raising=False)
    assert load_token("GM_TEST_TOKEN", None) is None
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\nignored\n")
    assert load_token("GM_TEST_TOKEN", str(path)) == TOKEN
    monkeypatch.setenv("GM_TEST_TOKEN", "short")
    with pytest.raises(TokenError, match="shorter than 16"):
        load_token("GM_TEST_TOKEN", str(path))
    monkeypatch.delenv("GM_TEST_TOKEN")
    with pytest.raises(TokenError, match="token_file"):
        load_token("GM_TEST_TOKEN", str(tmp_path / "missing"))


async def test_a_foreign_host_header_is_refused(http, api):
    async with http.get("/risk", headers={"Host": "evil.example:8080"}) as response:
        assert response.status == 403 and "Host" in (await response.json())["error"]
    async with http.get("/openapi.json", headers={"Host": f"localhost:{api.port}"}) as response:
        assert response.status == 200


async def test_the_openapi_document_describes_what_the_endpoints_answer(http, api):
    async with http.get("/openapi.json") as response:
        document = await response.json()
    paths = document["paths"]
    assert {"/risk/kill", "/risk/reset", "/control", "/risk/var/backtest"} <= set(paths)
    assert paths["/risk/kill"]["post"]["security"] == [{"bearer": []}]
    schema = document["components"]["schemas"]["KillRequest"]
    assert schema["additionalProperties"] is False and set(schema["required"]) == {
        "reason",
        "operator",
    }
    api.on_message(risk_snapshot())
    api.on_message(position("ES", 2))
    for path, answer in (
        ("/risk", RiskBody),
        ("/positions", PositionsBody),
        ("/risk/limits", LimitsBody),
        ("/risk/var/backtest", BacktestBody),
    ):
        async with http.get(path) as response:
            assert response.status == 200, path
            msgspec.json.decode(await response.read(), type=answer, strict=True)
    async with http.get("/health") as response:
        msgspec.json.decode(await response.read(), type=HealthBody)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=30) | st.integers(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["reason", "operator", "command", "x"]), inner)
        ),
        max_leaves=8,
    ),
    path=st.sampled_from(["/risk/kill", "/risk/reset", "/control"]),
)
async def test_no_body_ever_gives_a_5xx(http, body, path):
    status, answer, _ = await call(
        http, path, raw=json.dumps(body, allow_nan=True).encode(), headers=AUTH
    )
    assert status < 500, answer


async def test_the_switch_can_be_engaged_letting_reducing_orders_through(http, system):
    kill = {"reason": "exchange outage", "operator": "alice", "reducing_allowed": True}
    status, body, _ = await call(http, "/risk/kill", kill, AUTH)
    assert status == 200 and body["kill_switch"]["reducing_allowed"] is True
    with KillSwitch.open(system) as switch:
        assert switch.engaged and switch.reducing_allowed


async def test_flatten_asks_the_risk_actor_to_close_every_position(http, system):
    flatten = {"command": "FLATTEN", "reason": "end of day", "operator": "alice"}
    status, body, _ = await call(http, "/control", flatten, AUTH)
    assert status == 200 and body["kill_switch"]["flatten_requests"] == 1
    assert body["kill_switch"]["trading_state"] == "REDUCING"
    with KillSwitch.open(system) as switch:
        assert switch.flatten_requests == 1
