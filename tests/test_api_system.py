"""The API of a running system (real processes, the monitor and the journal beside the
order path): the blotter (/orders, /fills) agrees with the journal, /ws/risk streams the
monitor's snapshots, and every answer decodes as the OpenAPI document says."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from actors.api.openapi import FillsBody, OrdersBody, RiskBody
from tests.helpers import wait_until
from tests.pipeline import journal_path, journaled, pipeline_config, start_pipeline


def _with_monitor_and_api(tmp_path: Path) -> dict[str, Any]:
    config = pipeline_config(tmp_path, 0)
    config["streams"].append({"name": "risk_snapshots", "capacity": 1 << 18, "full_policy": "drop"})
    config["actors"] += [
        {
            "name": "monitor",
            "cls": "actors.risk_monitor:RiskMonitorActor",
            "inputs": ["venue", "bars", "verdicts"],
            "outputs": {"snapshots": "risk_snapshots"},
            "full_policy": "drop",
            "params": {"timeframe_s": 5},
        },
        {
            "name": "api",
            "cls": "actors.api:ApiActor",
            "inputs": ["risk_snapshots"],
            "params": {
                "port": 0,
                "port_file": str(tmp_path / "api.port"),
                "journal_path": str(journal_path(tmp_path)),
            },
        },
    ]
    config["nodes"].append(
        {"name": "web", "actors": ["monitor", "api"], "cores": [0], "wait": "backoff"}
    )
    config["supervisors"][0]["children"].append("web")
    return config


async def test_the_blotter_and_the_risk_stream_of_a_running_system(tmp_path, systems):
    system = start_pipeline(tmp_path, _with_monitor_and_api(tmp_path))
    systems.append(system)
    wait_until((tmp_path / "api.port").exists, 30, "the API to listen")
    port = int((tmp_path / "api.port").read_text())
    wait_until(lambda: len(journaled(tmp_path).fills) >= 5, 60, "fills journaled")
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        async with http.ws_connect("/ws/risk") as socket:
            # The stream follows the market (whose nights pass in seconds at this pace).
            times: set[int] = set()
            while len(times) < 2:
                message = await asyncio.wait_for(socket.receive(), 10)
                times.add(msgspec.json.decode(message.data, type=RiskBody).as_of_ns)

        async with http.get("/fills", params={"limit": "1000"}) as response:
            assert response.status == 200, await response.text()
            fills = msgspec.json.decode(await response.read(), type=FillsBody).fills
        journal_ids = [row["fill_id"] for row in journaled(tmp_path).fills]
        assert [f.fill_id for f in fills] == journal_ids[: len(fills)] and len(fills) >= 5
        assert fills[0].side in ("LONG", "SHORT")

        async with http.get("/orders", params={"limit": "1000"}) as response:
            orders = msgspec.json.decode(await response.read(), type=OrdersBody)
        journaled_orders = {row["client_order_id"] for row in journaled(tmp_path).orders}
        finished = {order.client_order_id for order in orders.finished}
        assert finished and finished <= journaled_orders | {
            o.client_order_id for o in orders.working
        }
        async with http.get("/orders", params={"limit": "0"}) as response:
            assert response.status == 400 and "limit" in json.loads(await response.text())["error"]
    assert system.terminate()[0] == 0


TOKEN = "schemathesis-token-0123456789"


def test_schemathesis_finds_no_server_error_and_no_answer_outside_its_schema(
    tmp_path, systems, monkeypatch
):
    """Schemathesis (its CLI, every check) generates requests from /openapi.json of a
    running system, the controls included (with the token): no 5xx, every answer as
    documented, every invalid request refused with a 4xx."""
    monkeypatch.setenv("GRANDMODEL_API_TOKEN", TOKEN)
    system = start_pipeline(tmp_path, _with_monitor_and_api(tmp_path))
    systems.append(system)
    wait_until((tmp_path / "api.port").exists, 30, "the API to listen")
    port = int((tmp_path / "api.port").read_text())
    wait_until(lambda: len(journaled(tmp_path).fills) >= 1, 60, "a fill journaled")
    cli = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [
            str(cli),
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            "30",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert system.terminate()[0] == 0
