"""The command line: status of a running system, run on the shipped default."""

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import EntryPoint

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernel import cli as cli_module
from tests.helpers import wait_until
from tests.systems import REPO, RunningSystem, base_config, run_leftovers, write_config


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
        code, _ = system.terminate(signum=signal.SIGINT)
    finally:
        system.close()
    assert code == 0
    assert not run_leftovers("clitest")


def test_the_cli_imports_neither_bench_nor_trading_code():
    """The kernel knows nothing of trading nor of benchmarks, even to list the suites."""
    probe = (
        "import json, sys, kernel.cli; kernel.cli.build_parser(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('bench', 'actors'))))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_bench_help_lists_the_suites_registered_as_entry_points():
    result = cli("bench", "--help")
    assert result.returncode == 0, result.stderr
    for suite in ("ring", "restart", "e2e", "data", "instructions"):
        assert repr(suite) in result.stdout


def test_an_unknown_bench_suite_is_refused_naming_the_registered_ones():
    result = cli("bench", "nosuch")
    assert result.returncode == 2
    assert "unknown bench suite(s) ['nosuch']" in result.stderr and "'ring'" in result.stderr


runs: list[tuple[str, list[str]]] = []


def passing_suite(options: list[str]) -> int:
    runs.append(("passing", options))
    return 0


def failing_suite(options: list[str]) -> int:
    runs.append(("failing", options))
    return 1


@pytest.fixture
def two_suites(monkeypatch):
    """A failing and a passing suite registered instead of the real ones."""
    group = cli_module.BENCH_GROUP
    suites = {
        "failing": EntryPoint("failing", "tests.test_cli:failing_suite", group),
        "passing": EntryPoint("passing", "tests.test_cli:passing_suite", group),
    }
    monkeypatch.setattr(cli_module, "bench_suites", lambda: suites)
    runs.clear()


def test_bench_runs_every_registered_suite_and_the_worst_status_wins(two_suites):
    assert cli_module.main(["bench", "--quick", "--no-enforce"]) == 1
    assert runs == [
        ("failing", ["--quick", "--no-enforce"]),
        ("passing", ["--quick", "--no-enforce"]),
    ]
    runs.clear()
    assert cli_module.main(["bench", "passing"]) == 0
    assert runs == [("passing", [])]
    # A suite's own options pass through to it, after the common ones.
    runs.clear()
    assert cli_module.main(["bench", "passing", "--quick", "--load", "--rates", "1,2"]) == 0
    assert runs == [("passing", ["--quick", "--load", "--rates", "1,2"])]


def test_suite_options_need_one_suite_and_other_commands_refuse_unknown_options(two_suites):
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["bench", "--load"])
    assert exit_info.value.code == 2 and runs == []
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["segments", "--load"])
    assert exit_info.value.code == 2


def test_bench_without_registered_suites_says_how_to_get_them(monkeypatch, capsys):
    monkeypatch.setattr(cli_module, "bench_suites", dict)
    with pytest.raises(SystemExit):
        cli_module.main(["bench", "ring"])  # not registered: refused by name
    options = argparse.Namespace(suites=[], quick=False, no_enforce=False, suite_options=[])
    assert cli_module._bench(options) == 2
    assert "pip install -e ." in capsys.readouterr().err


def ledger_system(tmp_path) -> tuple[dict, object]:
    config = base_config(tmp_path, delivery={"quarantine_file": str(tmp_path / "q.jsonl")})
    config["streams"] = [{"name": "numbers", "capacity": 1 << 14}]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            "params": {"count": 100},
        },
        {"name": "ledger", "cls": "tests.kernel_actors:Ledger", "inputs": ["numbers"]},
    ]
    config["nodes"] = [{"name": "solo", "actors": ["source", "ledger"], "wait": "backoff"}]
    config["supervisors"] = [{"name": "root", "children": ["solo"]}]
    return config, write_config(tmp_path / "c.toml", config)


def test_state_show_and_reset(tmp_path):
    config, path = ledger_system(tmp_path)
    system = RunningSystem(path, config["name"], tmp_path / "run.jsonl")
    try:
        system.wait_running()

        def shown() -> dict:
            result = cli("state", "show", "--config", str(path))
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        wait_until(lambda: shown()["ledger"]["inputs"] == {"numbers<-source": 100}, 30, "100")
        refused = cli("state", "reset", "--config", str(path))
        assert refused.returncode == 1 and "is running" in refused.stderr
    finally:
        assert system.terminate()[0] == 0
    record = shown()["ledger"]
    assert record["state_bytes"] > 0 and shown()["source"]["outputs"] == {"numbers": 100}
    one = cli("state", "reset", "--config", str(path), "--actor", "ledger")
    assert one.returncode == 0 and "reset the state of ledger" in one.stdout
    assert shown()["ledger"] == {**record, "state_bytes": 0}  # positions kept
    everything = cli("state", "reset", "--config", str(path))
    assert everything.returncode == 0
    assert shown() == {"source": None, "ledger": None}
    unknown = cli("state", "reset", "--config", str(path), "--actor", "ghost")
    assert unknown.returncode == 2 and "no actor 'ghost'" in unknown.stderr


def test_quarantine_lists_what_was_taken_out_of_delivery(tmp_path):
    from kernel.durable import Quarantine

    config, path = ledger_system(tmp_path)
    empty = cli("quarantine", "--config", str(path))
    assert empty.returncode == 0 and "no quarantined messages" in empty.stdout
    Quarantine(str(tmp_path / "q.jsonl"), config["name"]).put(
        "ledger", "numbers", 7, "Number", {"value": 7}, b"\x93\x07", 3, "ValueError: bad"
    )
    table = cli("quarantine", "--config", str(path))
    assert table.returncode == 0
    assert "ledger" in table.stdout and "ValueError: bad" in table.stdout
    (entry,) = json.loads(cli("quarantine", "--config", str(path), "--json").stdout)
    assert (entry["seq"], entry["message"], entry["failures"]) == (7, {"value": 7}, 3)
    assert (
        json.loads(cli("quarantine", "--config", str(path), "--actor", "x", "--json").stdout) == []
    )
