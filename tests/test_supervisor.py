"""The supervisor tree with real processes: strategies, kill -9, hangs, intensity, SIGTERM."""

import os
import signal
from pathlib import Path

import numpy as np
import psutil
import pytest

from actors.risk.killswitch import KillSwitch
from config.loader import ConfigError
from kernel.wiring import load_system
from ringbuf.procs import is_alive
from tests.helpers import wait_until
from tests.systems import RunningSystem, base_config, run_leftovers, write_config

IDLE = "tests.kernel_actors:Idle"


def start(tmp_path: Path, config: dict) -> RunningSystem:
    path = write_config(tmp_path / "system.toml", config)
    system = RunningSystem(path, config["name"], Path(config["logging"]["file"]))
    system.wait_running()
    return system


def idle_tree(tmp_path: Path, strategy: str, **root: object) -> dict:
    config = base_config(tmp_path)
    config["actors"] = [{"name": f"idle_{n}", "cls": IDLE} for n in "abc"]
    config["nodes"] = [
        {"name": n, "actors": [f"idle_{n}"], "wait": "backoff", "heartbeat_timeout_s": 5.0}
        for n in "abc"
    ]
    config["supervisors"] = [
        {"name": "root", "children": ["a", "b", "c"], "strategy": strategy, **root}
    ]
    return config


def pids(system: RunningSystem) -> dict[str, int]:
    return {row["node"]: row["pid"] for row in system.rows().values()}


def started_after(system: RunningSystem, marker: int) -> list[str]:
    """Nodes the supervisor started after the first `marker` log events, in order."""
    return [e["node"] for e in system.events()[marker:] if e["event"] == "node started"]


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [("one_for_one", ["b"]), ("one_for_all", ["a", "b", "c"]), ("rest_for_one", ["b", "c"])],
)
def test_strategy_restarts_exactly_the_otp_children_in_order(
    tmp_path, systems, strategy, restarted
):
    system = start(tmp_path, idle_tree(tmp_path, strategy))
    systems.append(system)
    before = pids(system)
    # The supervisor marks a node RUNNING, then logs its start: the marker goes after
    # every first start (a late "node started" of c would count as a restart), and the
    # restarts are read once logged.
    wait_until(lambda: sorted(started_after(system, 0)) == ["a", "b", "c"], 10, "starts logged")
    marker = len(system.events())
    os.kill(before["b"], signal.SIGKILL)
    wait_until(
        lambda: (
            all(pids(system)[n] != before[n] for n in restarted)
            and all(r["state"] == "RUNNING" and r["ready"] for r in system.rows().values())
        ),
        30,
        f"{restarted} restarted",
    )
    after = pids(system)
    assert [n for n in "abc" if after[n] != before[n]] == restarted
    wait_until(lambda: len(started_after(system, marker)) >= len(restarted), 10, "restarts logged")
    assert started_after(system, marker) == restarted
    stopped = [e["node"] for e in system.events()[marker:] if e["event"] == "node stopped"]
    assert stopped == [n for n in reversed(restarted) if n != "b"]
    for old in (before[n] for n in restarted):
        assert not is_alive(old)
    assert system.terminate()[0] == 0


def pipeline(tmp_path: Path, count: int, **sink_params: object) -> tuple[dict, np.memmap]:
    marks_path = tmp_path / "marks.bin"
    marks = np.memmap(marks_path, dtype=np.uint8, mode="w+", shape=(count + 1,))
    marks.flush()
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 1 << 14}]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            "params": {"count": count},
        },
        {
            "name": "sink",
            "cls": "tests.kernel_actors:Sink",
            "inputs": ["numbers"],
            "params": {"marks": str(marks_path), **sink_params},
        },
    ]
    config["nodes"] = [
        {"name": "src", "actors": ["source"], "wait": "backoff"},
        {"name": "snk", "actors": ["sink"], "wait": "park", "heartbeat_timeout_s": 0.5},
    ]
    config["supervisors"] = [{"name": "root", "children": ["src", "snk"]}]
    return config, marks


def assert_exactly_once(marks: np.memmap, count: int) -> None:
    handled = np.asarray(marks[1 : count + 1])
    assert int(np.count_nonzero(handled == 0)) == 0, "messages lost"
    assert int(handled.max()) == 1, "a message was handled twice"


def test_killed_consumer_is_restarted_and_loses_nothing(tmp_path, systems):
    count = 60_000
    config, marks = pipeline(tmp_path, count)
    system = start(tmp_path, config)
    systems.append(system)
    for round_ in range(3):
        target = (round_ + 1) * count // 4
        wait_until(lambda t=target: int(np.count_nonzero(marks)) >= t, 60, "sink progress")
        old = pids(system)["snk"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda o=old: pids(system)["snk"] != o, 30, "a new sink")
    wait_until(lambda: int(np.count_nonzero(marks)) == count, 60, "every message handled")
    assert_exactly_once(marks, count)
    assert system.rows()["sink"]["restarts"] == 3
    assert system.terminate()[0] == 0


def test_handler_exception_is_logged_with_its_message_and_restarted(tmp_path, systems):
    count = 5_000
    config, marks = pipeline(tmp_path, count, crash_at=1234, faults_file=str(tmp_path / "faults"))
    system = start(tmp_path, config)
    systems.append(system)
    wait_until(lambda: int(np.count_nonzero(marks)) == count, 60, "every message handled")
    (failure,) = [e for e in system.events() if e["event"] == "actor failed"]
    assert failure["actor"] == "sink" and failure["stage"] == "on_message"
    assert "value=1234" in failure["message"]
    assert "sink told to crash at 1234" in failure["error"]
    assert any("while handling ring record" in note for note in failure["notes"])
    assert system.rows()["sink"]["restarts"] == 1
    assert_exactly_once(marks, count)
    assert system.terminate()[0] == 0


def test_hung_handler_is_detected_killed_and_restarted(tmp_path, systems):
    count = 5_000
    config, marks = pipeline(tmp_path, count, hang_at=2000, faults_file=str(tmp_path / "faults"))
    system = start(tmp_path, config)
    systems.append(system)
    wait_until(lambda: int(np.count_nonzero(marks)) == count, 60, "every message handled")
    hung = [e for e in system.events() if e["event"] == "node hung: heartbeat stopped, killing"]
    assert [e["node"] for e in hung] == ["snk"]
    assert system.rows()["sink"]["restarts"] == 1
    assert_exactly_once(marks, count)
    assert system.terminate()[0] == 0


def test_intensity_exceeded_escalates_to_the_parent_strategy(tmp_path, systems):
    count = 3_000
    config, marks = pipeline(
        tmp_path, count, crash_at=100, faults=2, faults_file=str(tmp_path / "faults")
    )
    config["actors"].append({"name": "bystander", "cls": IDLE})
    config["nodes"].append({"name": "by", "actors": ["bystander"], "wait": "backoff"})
    config["supervisors"] = [
        {
            "name": "root",
            "children": ["by", "sub"],
            "strategy": "one_for_all",
            "max_restarts": 3,
            "period_s": 30,
        },
        {"name": "sub", "children": ["src", "snk"], "max_restarts": 1, "period_s": 30},
    ]
    system = start(tmp_path, config)
    systems.append(system)
    bystander = pids(system)["by"]
    wait_until(lambda: int(np.count_nonzero(marks)) == count, 60, "every message handled")
    events = [e["event"] for e in system.events()]
    assert "restart intensity exceeded" in events
    escalation = [e for e in system.events() if e["event"] == "supervisor failed, escalating"]
    assert [(e["supervisor"], e["parent"]) for e in escalation] == [("sub", "root")]
    wait_until(lambda: pids(system)["by"] != bystander, 30, "root's one_for_all restart")
    assert system.proc.poll() is None
    assert_exactly_once(marks, count)
    assert system.terminate()[0] == 0


def test_root_intensity_exceeded_stops_everything_and_exits_nonzero(tmp_path, systems):
    config, _ = pipeline(
        tmp_path, 1_000, crash_at=10, faults=100, faults_file=str(tmp_path / "faults")
    )
    config["supervisors"] = [
        {"name": "root", "children": ["src", "snk"], "max_restarts": 2, "period_s": 30}
    ]
    path = write_config(tmp_path / "system.toml", config)
    system = RunningSystem(path, config["name"], Path(config["logging"]["file"]))
    systems.append(system)
    assert system.proc.wait(timeout=60) == 1
    events = [e["event"] for e in system.events()]
    assert "root supervisor failed" in events
    assert not run_leftovers(config["name"])


def test_a_failing_tree_runs_its_failure_hooks_and_latches_the_kill_switch(tmp_path, systems):
    config, _ = pipeline(
        tmp_path, 1_000, crash_at=10, faults=100, faults_file=str(tmp_path / "faults")
    )
    config["supervisors"] = [
        {"name": "root", "children": ["src", "snk"], "max_restarts": 1, "period_s": 30}
    ]
    config["failure_hooks"] = [
        "tests.supervisor_actors:broken_hook",  # fails: the next one still runs
        "actors.risk.killswitch:engage_on_failure",
    ]
    path = write_config(tmp_path / "system.toml", config)
    system = RunningSystem(path, config["name"], Path(config["logging"]["file"]))
    systems.append(system)
    assert system.proc.wait(timeout=60) == 1
    hooks = [e for e in system.events() if e["event"].startswith("failure hook")]
    assert [(e["event"], e["hook"]) for e in hooks] == [
        ("failure hook failed", "tests.supervisor_actors:broken_hook"),
        ("failure hook ran", "actors.risk.killswitch:engage_on_failure"),
    ]
    switch = KillSwitch.open(config["name"])  # durable: it outlived the failed run
    try:
        state = switch.state()
        assert state.engaged and state.engaged_by == "supervisor"
        assert "root supervisor failed" in state.reason
    finally:
        switch.close()


def test_a_failure_hook_that_cannot_be_imported_is_a_config_error_naming_it(tmp_path):
    config, _ = pipeline(tmp_path, 10)
    config["failure_hooks"] = ["actors.risk.killswitch:no_such_hook"]
    path = write_config(tmp_path / "system.toml", config)
    with pytest.raises(ConfigError, match=r"failure_hooks\[0\]"):
        load_system(path, environ={})


@pytest.mark.parametrize(
    ("restart", "restarted"), [("permanent", True), ("transient", False), ("temporary", False)]
)
def test_restart_types_after_a_clean_exit(tmp_path, systems, restart, restarted):
    config = idle_tree(tmp_path, "one_for_one")
    config["nodes"][1]["restart"] = restart
    system = start(tmp_path, config)
    systems.append(system)
    before = pids(system)
    os.kill(before["b"], signal.SIGTERM)  # a clean, normal exit (status 0)
    if restarted:
        wait_until(lambda: pids(system)["b"] != before["b"], 30, "b restarted")
    else:
        wait_until(lambda: system.rows()["idle_b"]["state"] == "STOPPED", 30, "b stopped")
        assert pids(system)["b"] == before["b"]
    assert pids(system)["a"] == before["a"] and pids(system)["c"] == before["c"]
    assert system.terminate()[0] == 0


def test_temporary_child_is_not_restarted_after_a_crash(tmp_path, systems):
    config = idle_tree(tmp_path, "one_for_one")
    config["nodes"][1]["restart"] = "temporary"
    system = start(tmp_path, config)
    systems.append(system)
    before = pids(system)
    os.kill(before["b"], signal.SIGKILL)
    wait_until(lambda: system.rows()["idle_b"]["state"] == "FAILED", 30, "b failed")
    assert system.rows()["idle_b"]["exit_status"] == -signal.SIGKILL
    assert system.terminate()[0] == 0


@pytest.mark.parametrize("traffic", ["flowing", "idle"])
def test_sigterm_stops_everything_without_orphans_or_segments(tmp_path, systems, traffic):
    count = 0 if traffic == "flowing" else 100
    config, marks = pipeline(tmp_path, count)
    system = start(tmp_path, config)
    systems.append(system)
    if traffic == "idle":  # the consumer is parked on its doorbell when the stop comes
        wait_until(lambda: int(np.count_nonzero(marks)) == count, 30, "the sink to drain")
    children = list(pids(system).values())
    zygote = next(e["process"] for e in system.events() if e["event"] == "zygote ready")
    code, _ = system.terminate()
    assert code == 0
    for pid in [*children, zygote]:
        assert not is_alive(pid), f"process {pid} outlived the run"
    assert "node ignored SIGTERM, killing" not in [e["event"] for e in system.events()]
    assert not run_leftovers(config["name"])


def test_stale_segments_of_a_killed_run_are_removed_at_start(tmp_path, systems):
    config, _ = pipeline(tmp_path, 0)
    first = start(tmp_path, config)
    systems.append(first)
    nodes = list(pids(first).values())
    first.kill9()  # nodes die with the supervisor; its segments stay
    wait_until(lambda: not any(is_alive(pid) for pid in nodes), 10, "nodes to die with it")
    leftovers = run_leftovers(config["name"])
    assert leftovers, "a killed supervisor cannot clean up; the next start must"
    second = start(tmp_path, config)
    systems.append(second)
    warnings = [
        e for e in second.events() if e["event"] == "removed stale segments of a crashed run"
    ]
    assert warnings
    assert second.terminate()[0] == 0


def test_actor_classes_are_warmed_up_once_in_the_zygote(tmp_path, systems):
    report = tmp_path / "warm.txt"
    config = base_config(tmp_path)
    config["actors"] = [
        {"name": "warm", "cls": "tests.kernel_actors:Warmed", "params": {"report": str(report)}}
    ]
    config["nodes"] = [{"name": "w", "actors": ["warm"], "wait": "backoff"}]
    config["supervisors"] = [{"name": "root", "children": ["w"]}]
    system = start(tmp_path, config)
    systems.append(system)
    warmed_in, runs_in = map(int, report.read_text().split())
    zygote = next(e["process"] for e in system.events() if e["event"] == "zygote ready")
    assert warmed_in == zygote and runs_in == pids(system)["w"] != zygote
    assert system.terminate()[0] == 0


@pytest.mark.parametrize("wait", ["spin", "park"])
def test_ctrl_c_to_the_whole_process_group_stops_in_order(tmp_path, systems, wait):
    """A terminal's Ctrl-C signals every process of the foreground group at once."""
    config, _ = pipeline(tmp_path, 0)
    for node in config["nodes"]:
        node["wait"] = wait
    system = start(tmp_path, config)
    systems.append(system)
    children = list(pids(system).values())
    system.close_health()
    os.killpg(system.proc.pid, signal.SIGINT)
    assert system.proc.wait(timeout=15) == 0
    events = [e["event"] for e in system.events()]
    assert "node ignored SIGTERM, killing" not in events
    assert "the zygote died" not in events
    for pid in children:
        assert not is_alive(pid)
    assert not run_leftovers(config["name"])


def test_a_killed_zygote_takes_its_nodes_and_fails_the_run_cleanly(tmp_path, systems):
    config, _ = pipeline(tmp_path, 0)
    system = start(tmp_path, config)
    systems.append(system)
    children = list(pids(system).values())
    zygote = next(e["process"] for e in system.events() if e["event"] == "zygote ready")
    system.close_health()
    os.kill(zygote, signal.SIGKILL)
    assert system.proc.wait(timeout=30) == 1
    for pid in children:
        assert not is_alive(pid)
    assert not run_leftovers(config["name"])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_the_supervisor_and_zygote_keep_off_the_core_of_a_spinning_node(tmp_path, systems):
    spun = max(os.sched_getaffinity(0))
    config = base_config(tmp_path)
    config["actors"] = [{"name": "idle_s", "cls": IDLE}, {"name": "idle_p", "cls": IDLE}]
    config["nodes"] = [
        {"name": "s", "actors": ["idle_s"], "wait": "spin", "cores": [spun]},
        {"name": "p", "actors": ["idle_p"], "wait": "park", "cores": [spun]},
    ]
    config["supervisors"] = [{"name": "root", "children": ["s", "p"]}]
    system = start(tmp_path, config)
    systems.append(system)
    supervisor = psutil.Process(system.proc.pid)
    assert spun not in supervisor.cpu_affinity()
    zygote = next(child for child in supervisor.children() if "zygote" in " ".join(child.cmdline()))
    assert spun not in zygote.cpu_affinity()
    rows = system.rows()
    # The nodes themselves sit where the config puts them.
    assert rows["idle_s"]["cores"] == [spun]


def test_an_actor_whose_state_cannot_be_saved_after_a_timer_fails_its_node(tmp_path, systems):
    """A commit outside the drain loop (after a timer, from the heartbeat) that fails in the
    actor's code fails the node like a handler would: restarted, never silently running on
    with nothing saved."""
    config = base_config(tmp_path)
    config["actors"] = [{"name": "unsaveable", "cls": "tests.kernel_actors:Unsaveable"}]
    config["nodes"] = [{"name": "n", "actors": ["unsaveable"], "wait": "backoff"}]
    config["supervisors"] = [{"name": "root", "children": ["n"], "max_restarts": 100}]
    system = start(tmp_path, config)
    systems.append(system)
    wait_until(lambda: system.rows()["unsaveable"]["restarts"] >= 2, 30, "restarts")
    (failure, *_) = [e for e in system.events() if e["event"] == "actor failed"]
    assert (failure["actor"], failure["stage"]) == ("unsaveable", "commit")
    assert "cannot save after 1 ticks" in failure["error"]
