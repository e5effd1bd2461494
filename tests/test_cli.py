"""The command line: status of a running system, run on the shipped default."""

import json
import os
import signal
import subprocess
import sys

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


def test_default_config_runs_and_stops_on_sigint(tmp_path):
    log = tmp_path / "run.jsonl"
    system = RunningSystem(
        None,
        "clitest",
        log,
        env={
            "GRANDMODEL__logging__file": json.dumps(str(log)),
            "GRANDMODEL__name": '"clitest"',
        },
    )
    try:
        system.wait_running()
        code, took = system.terminate(signum=signal.SIGINT)
    finally:
        system.close()
    assert code == 0
    assert took < 5
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("gm-clitest.")]
