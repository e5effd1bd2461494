"""Idle work (`Actor.when_idle`) in a real node: run at the node's quiet moments, after the
messages that were waiting, in order; its failure fails the node like a handler's."""

from pathlib import Path

from tests.helpers import wait_until
from tests.pipeline import start_pipeline
from tests.systems import base_config


def _config(tmp_path: Path, count: int, **params: object) -> dict:
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 1 << 16}]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            # bursts of 200: the consumer finds many messages waiting at once
            "params": {"count": count, "per_tick": 200},
        },
        {
            "name": "notes",
            "cls": "tests.kernel_actors:IdleNotes",
            "inputs": ["numbers"],
            "params": {"notes": str(tmp_path / "notes.txt"), **params},
        },
    ]
    config["nodes"] = [
        {"name": "producer", "actors": ["source"], "wait": "park"},
        {"name": "consumer", "actors": ["notes"], "wait": "park", "batch": 64},
    ]
    config["supervisors"] = [{"name": "root", "children": ["producer", "consumer"]}]
    return config


def _notes(tmp_path: Path) -> list[tuple[int, int]]:
    path = tmp_path / "notes.txt"
    if not path.exists():
        return []
    *lines, _unfinished = path.read_text().split("\n")  # the last line may be half-written
    return [(int(value), int(last)) for value, last in (line.split() for line in lines)]


def test_idle_work_runs_once_the_waiting_messages_are_handled_in_order(tmp_path, systems):
    count = 4_000
    system = start_pipeline(tmp_path, _config(tmp_path, count))
    systems.append(system)
    wait_until(lambda: len(_notes(tmp_path)) >= count, 60, "every piece of idle work")
    notes = _notes(tmp_path)
    assert [value for value, _ in notes] == list(range(1, count + 1))
    assert all(last >= value for value, last in notes)
    # Not run inline: within a burst, the messages that were waiting went first.
    assert sum(last > value for value, last in notes) > count // 2
    assert system.terminate()[0] == 0


def test_failing_idle_work_fails_its_node_and_the_restart_goes_on(tmp_path, systems):
    count = 2_000
    faults = tmp_path / "faults.txt"
    config = _config(tmp_path, count, fail_at=700, faults_file=str(faults))
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    wait_until(lambda: {v for v, _ in _notes(tmp_path)} >= set(range(700, count + 1)), 60, "notes")
    assert faults.exists()
    failures = [e for e in system.events() if e.get("event") == "actor failed"]
    assert [(e["actor"], e["stage"]) for e in failures] == [("notes", "idle work")]
    assert system.rows()["notes"]["restarts"] == 1
    assert system.terminate()[0] == 0
