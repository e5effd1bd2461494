"""Build test system configs and run `grandmodel run` on them as real processes."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kernel.health import HealthTable
from ringbuf import Lifetime, list_segments, unlink_segment
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parent.parent


def toml_value(value: Any) -> str:
    """A TOML value: JSON for strings and numbers, inline tables for dicts."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    """Write a config dict as TOML (tables and arrays of tables, values inline)."""
    lines: list[str] = []
    for key, value in sections.items():
        tables = isinstance(value, dict) or (
            isinstance(value, list) and value and isinstance(value[0], dict)
        )
        if not tables:
            lines.append(f"{key} = {toml_value(value)}")
    for key, value in sections.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


STARTED_RUNS: set[str] = set()
"""Names of the systems this test session configured (its cleanup removes only theirs:
another session may be running its own tests on the machine)."""


def base_config(tmp: Path, **overrides: Any) -> dict[str, Any]:
    name = f"t{uuid.uuid4().hex[:8]}"
    STARTED_RUNS.add(name)
    config: dict[str, Any] = {
        "name": name,
        "messages": "tests.kernel_actors:TestMessage",
        "heartbeat_interval_s": 0.02,
        "logging": {"level": "info", "file": str(tmp / "run.jsonl")},
        "zygote": {"preload": ["numpy", "msgspec", "uvloop"]},
    }
    config.update(overrides)
    return config


class RunningSystem:
    """`grandmodel run` in a subprocess, with helpers to inspect it."""

    def __init__(
        self,
        config_path: Path | None,
        name: str,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        """Run `config_path` (None: the shipped default) with extra environment `env`."""
        self.name = name
        self.log_path = log_path
        config_args = ["--config", str(config_path)] if config_path else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kernel.cli", "run", *config_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})),
            cwd=REPO,
            start_new_session=True,  # its own process group, as in a terminal
        )
        self._health: HealthTable | None = None

    @property
    def health(self) -> HealthTable:
        """This run's health table (not a stale one left by an earlier run)."""
        if self._health is None:
            wait_until(self._attach_own_table, 30, "this run's health table")
        assert self._health is not None
        return self._health

    def _attach_own_table(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"run exited early: {self.stderr_text()}")
        try:
            table = HealthTable.attach(self.name)
        except (FileNotFoundError, ValueError):
            return False
        if table.owner_pid != self.proc.pid:
            table.close()
            return False
        self._health = table
        return True

    def rows(self) -> dict[str, dict[str, Any]]:
        return {row["actor"]: row for row in self.health.snapshot()}

    def wait_running(self, timeout_s: float = 60) -> None:
        def running() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"run exited early: {self.stderr_text()}")
            rows = self.rows().values()
            return bool(rows) and all(r["state"] == "RUNNING" and r["ready"] for r in rows)

        wait_until(running, timeout_s, "every node running")

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def stderr_text(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode() if self.proc.stderr else ""

    def terminate(self, timeout_s: float = 15, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Send `signum`; returns (exit code, seconds it took to exit)."""
        if self._health is not None:
            self._health.close()
            self._health = None
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout_s)
        return code, time.monotonic() - started

    def close_health(self) -> None:
        """Unmap the health table (a run's shutdown unlinks it; we must not keep it)."""
        if self._health is not None:
            self._health.close()
            self._health = None

    def kill9(self) -> None:
        """SIGKILL the supervisor, leaving whatever it had in /dev/shm behind."""
        if self._health is not None:
            self._health.close()
            self._health = None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        """Kill the run if it still runs and remove whatever segments it left."""
        if self._health is not None:
            self._health.close()
            self._health = None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for status in list_segments(f"{self.name}."):
            unlink_segment(status.name)


def run_leftovers(name: str) -> list[str]:
    """Segments of run `name` still in /dev/shm, except the durable ones (the actors'
    records and a latched kill switch outlive runs by design)."""
    return [
        status.name
        for status in list_segments(f"{name}.")
        if status.lifetime is not Lifetime.DURABLE
    ]
