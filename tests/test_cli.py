"""The command line: status of a running system, run on the shipped default."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_until
from tests.systems import REPO, RunningSystem, base_config, write_config


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "kernel.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def test_status_prints_the_health_table_of_a_running_system(tmp_path):
    config = base_config(tmp_path)
    config["actors"] = [{"name": "idle", "cls": "tests.kernel_actors:Idle"}]
    config["nodes"] = [{"name": "solo", "actors": ["idle"], "cores": [0], "wait": "backoff"}]
    config["supervisors"] = [{"name": "root", "children": ["solo"]}]
    path = write_config(tmp_path / "c.toml", config)
    system = RunningSystem(path, config["name"], tmp_path / "run.jsonl")
    try:
        system.wait_running()
        table = cli("status", "--config", str(path))
        assert table.returncode == 0, table.stderr
        assert "idle" in table.stdout and "RUNNING" in table.stdout
        rows = json.loads(cli("status", "--name", config["name"], "--json").stdout)
        (row,) = rows
        assert row["actor"] == "idle" and row["node"] == "solo" and row["state"] == "RUNNING"
        assert row["cores"] == [0] and row["ready"] and row["heartbeat_age_s"] < 1.0
        assert row["pid"] == system.rows()["idle"]["pid"]
    finally:
        assert system.terminate()[0] == 0
    gone = cli("status", "--name", config["name"])
    assert gone.returncode == 1 and "no running system" in gone.stderr


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_default_config_serves_the_api_and_stops_on_sigint(tmp_path):
    log = tmp_path / "run.jsonl"
    port_file = tmp_path / "port"
    system = RunningSystem(
        None,
        "clitest",
        log,
        env={
            "GRANDMODEL__logging__file": json.dumps(str(log)),
            "GRANDMODEL__name": '"clitest"',
            "GRANDMODEL__actors__api__params__port": "0",
            "GRANDMODEL__actors__api__params__port_file": json.dumps(str(port_file)),
        },
    )
    try:
        system.wait_running()
        wait_until(port_file.exists, 30, "the API to listen")
        port = int(port_file.read_text())
        status, kind, body = get(port, "/health")
        assert status == 200 and kind.startswith("application/json")
        assert {row["actor"] for row in json.loads(body)["actors"]} >= {"feed", "risk", "api"}
        wait_until(lambda: get(port, "/risk")[0] == 200, 30, "a risk snapshot")
        risk = json.loads(get(port, "/risk")[2])
        assert risk["kill_switch"] is False and risk["limits"]["max_position"] == 5.0
        status, kind, body = get(port, "/metrics")
        assert status == 200 and kind.startswith("text/plain")
        families = {f.name for f in text_string_to_metric_families(body)}
        assert {"grandmodel_actor_up", "grandmodel_latency_seconds"} <= families
        assert get(port, "/nowhere")[0] == 404
        code, took = system.terminate(signum=signal.SIGINT)
    finally:
        system.close()
    assert code == 0
    assert took < 5
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("gm-clitest.")]
