"""`grandmodel control`: the kill switch and the trading state from the command line,
on the system its config names (here a test run's), running or not."""

import json
import subprocess
import sys

from actors.messages import TradingState
from actors.risk.cli import main
from actors.risk.killswitch import KillSwitch


def _control(system: str, monkeypatch, capsys, *argv: str) -> dict:
    monkeypatch.setenv("GRANDMODEL__name", json.dumps(system))
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_each_command_changes_the_switch_as_the_api_does(system, monkeypatch, capsys):
    shown = _control(system, monkeypatch, capsys, "halt", "--operator", "alice", "--reason", "x")
    assert (shown["trading_state"], shown["state_by"]) == ("HALTED", "cli:alice")
    _control(system, monkeypatch, capsys, "resume", "--operator", "alice", "--reason", "seen")
    with KillSwitch.open(system) as switch:  # the test run's switch, not the default's
        assert switch.trading_state is TradingState.ACTIVE
        assert switch.state().state_by == "cli:alice" and switch.state().state_reason == "seen"
    shown = _control(
        system,
        monkeypatch,
        capsys,
        "kill",
        "--operator",
        "bob",
        "--reason",
        "outage",
        "--reducing-allowed",
    )
    assert shown["engaged"] and shown["reducing_allowed"] and shown["engaged_by"] == "cli:bob"
    shown = _control(system, monkeypatch, capsys, "reset", "--operator", "bob")
    assert not shown["engaged"] and shown["reset_by"] == "cli:bob"
    shown = _control(
        system, monkeypatch, capsys, "flatten", "--operator", "carol", "--reason", "eod"
    )
    assert shown["flatten_requests"] == 1 and shown["trading_state"] == "REDUCING"
    assert _control(system, monkeypatch, capsys, "show")["flatten_requests"] == 1


def test_the_command_is_registered_and_refuses_a_change_without_its_operator():
    done = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "control", "halt", "--reason", "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--operator" in done.stderr
