"""`Actor.keep_warm` in real nodes: a spinning node calls it while its inputs are quiet,
after the waiting messages are handled; a parking node never does; its failure fails
the node like a handler's."""

from pathlib import Path

from tests.helpers import wait_until
from tests.pipeline import start_pipeline
from tests.systems import base_config

COUNT = 2_000


def _config(tmp_path: Path, **params: object) -> dict:
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 1 << 16}]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            "params": {"count": COUNT, "per_tick": 200},
        },
        *(
            {
                "name": name,
                "cls": "tests.kernel_actors:WarmNotes",
                "inputs": ["numbers"],
                "params": {"notes": str(tmp_path / f"{name}.txt"), **params},
            }
            for name in ("spinning", "parking")
        ),
    ]
    config["nodes"] = [
        {"name": "producer", "actors": ["source"], "wait": "park"},
        {"name": "spinner", "actors": ["spinning"], "wait": "spin"},
        {"name": "parker", "actors": ["parking"], "wait": "park"},
    ]
    config["supervisors"] = [{"name": "root", "children": ["producer", "spinner", "parker"]}]
    return config


def _notes(path: Path) -> tuple[int, int]:
    """(keep_warm calls, numbers handled) as last written; (0, 0) before."""
    text = path.read_text() if path.exists() else ""
    if not text.endswith("\n"):  # not yet written, or half-written
        return 0, 0
    calls, handled = text.split()
    return int(calls), int(handled)


def test_a_spinning_node_keeps_its_actors_warm_while_quiet_and_a_parking_one_never(
    tmp_path, systems
):
    system = start_pipeline(tmp_path, _config(tmp_path))
    systems.append(system)
    spinning = tmp_path / "spinning.txt"
    wait_until(lambda: system.rows()["parking"]["msgs_in"] == COUNT, 60, "the parker done")
    wait_until(lambda: _notes(spinning)[1] == COUNT, 60, "calls once every number was handled")
    calls = _notes(spinning)[0]
    wait_until(lambda: _notes(spinning)[0] >= calls + 200, 60, "calls while quiet")
    assert not (tmp_path / "parking.txt").exists(), "a parking node never calls keep_warm"
    assert system.terminate()[0] == 0


def test_a_failing_keep_warm_fails_its_node_and_the_restart_goes_on(tmp_path, systems):
    faults = tmp_path / "faults.txt"
    system = start_pipeline(tmp_path, _config(tmp_path, fail_at=120, faults_file=str(faults)))
    systems.append(system)
    wait_until(lambda: _notes(tmp_path / "spinning.txt")[0] >= 200, 60, "calls after the restart")
    assert faults.exists()
    failures = [e for e in system.events() if e.get("event") == "actor failed"]
    assert [(e["actor"], e["stage"]) for e in failures] == [("spinning", "keep warm")]
    assert system.rows()["spinning"]["restarts"] == 1
    assert system.rows()["parking"]["restarts"] == 0
    assert system.terminate()[0] == 0
