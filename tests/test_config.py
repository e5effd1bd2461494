"""Configuration: strict types, references, field paths in errors, exit status 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import DEFAULT_CONFIG, ConfigError, load_config
from tests.systems import REPO, base_config, write_config


def valid(tmp_path: Path) -> dict:
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 4096}]
    config["actors"] = [
        {"name": "source", "cls": "tests.kernel_actors:Source", "outputs": ["numbers"]},
        {
            "name": "sink",
            "cls": "tests.kernel_actors:Sink",
            "inputs": ["numbers"],
            "params": {"marks": "/tmp/x"},
        },
    ]
    config["nodes"] = [{"name": "one", "actors": ["source", "sink"], "cores": [0]}]
    config["supervisors"] = [{"name": "root", "children": ["one"]}]
    return config


def load(tmp_path: Path, config: dict, environ: dict | None = None):
    return load_config(write_config(tmp_path / "c.toml", config), environ=environ or {})


def test_a_valid_config_loads(tmp_path):
    config = load(tmp_path, valid(tmp_path))
    assert config.nodes[0].wait == "park"
    assert config.actors[1].params == {"marks": "/tmp/x"}


def test_shipped_configs_are_valid():
    shipped = sorted(DEFAULT_CONFIG.parent.glob("*.toml"))
    assert [p.name for p in shipped] == ["default.toml", "eight_core.toml"]
    default = load_config(DEFAULT_CONFIG, environ={})
    assert max(core for node in default.nodes for core in node.cores) < 2
    eight = load_config(DEFAULT_CONFIG.parent / "eight_core.toml", environ={}, cpus=8)
    hot_cores = [core for node in eight.nodes if node.wait == "spin" for core in node.cores]
    assert 0 not in hot_cores and len(set(hot_cores)) == len(hot_cores)
    assert all(node.cores == [0] for node in eight.nodes if node.wait != "spin")


def mutate(config: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    target = config
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("nodes.0.colour", "red", "nodes[0]: Object contains unknown field `colour`"),
        ("nodes.0.cores", ["zero"], "nodes[0].cores[0]: Expected `int`, got `str`"),
        ("nodes.0.cores", [64], "nodes[0].cores[0]: core 64 does not exist"),
        ("nodes.0.wait", "doze", "nodes[0].wait: Invalid enum value 'doze'"),
        ("nodes.0.batch", 0, "nodes[0].batch: Expected `int` >= 1"),
        ("streams.0.capacity", 3000, "streams[0].capacity: 3000 is not a power of two"),
        ("actors.0.outputs", ["nope"], "actors[0].outputs[0]: no stream 'nope'"),
        ("actors.0.cls", "tests.kernel_actors:Nope", "actors[0].cls: 'tests.kernel_actors' has no"),
        ("actors.0.cls", "nowhere", "actors[0].cls: 'nowhere' is not of the form"),
        ("actors.0.params", {"count": "many"}, "actors[0].params.count: Expected `int`"),
        ("actors.1.params", {"mark": 1}, "actors[1].params: Object contains unknown field `mark`"),
        ("actors.1.params", {}, "actors[1].params: Object missing required field `marks`"),
        ("supervisors.0.children", ["one", "ghost"], "children[1]: no node or supervisor 'ghost'"),
        ("supervisors.0.strategy", "all_for_one", "supervisors[0].strategy: Invalid enum"),
        ("root", "boss", "root: no supervisor named 'boss'"),
    ],
)
def test_invalid_fields_are_named(tmp_path, path, value, expected):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, mutate(valid(tmp_path), path, value))
    assert expected in str(error.value)
    assert "c.toml" in str(error.value)


def test_an_actor_in_two_nodes_is_refused(tmp_path):
    config = valid(tmp_path)
    config["nodes"].append({"name": "two", "actors": ["sink"]})
    config["supervisors"][0]["children"].append("two")
    with pytest.raises(ConfigError, match=r"nodes\[1\].actors\[0\]: 'sink' already runs"):
        load(tmp_path, config)


def test_an_unsupervised_node_is_refused(tmp_path):
    config = valid(tmp_path)
    config["actors"].append({"name": "idle", "cls": "tests.kernel_actors:Idle"})
    config["nodes"].append({"name": "two", "actors": ["idle"]})
    with pytest.raises(ConfigError, match=r"nodes\[1\]: 'two' is not under any supervisor"):
        load(tmp_path, config)


def test_a_stream_with_two_producers_is_refused(tmp_path):
    config = valid(tmp_path)
    config["actors"][1]["outputs"] = ["numbers"]
    with pytest.raises(ConfigError, match="already has producer 'source'"):
        load(tmp_path, config)


def test_environment_overrides(tmp_path):
    config = load(
        tmp_path,
        valid(tmp_path),
        environ={
            "GRANDMODEL__logging__level": "debug",
            "GRANDMODEL__actors__source__params__count": "7",
            "GRANDMODEL__nodes__one__wait": "spin",
        },
    )
    assert config.logging.level == "debug"
    assert config.actors[0].params == {"count": 7}
    assert config.nodes[0].wait == "spin"
    with pytest.raises(ConfigError, match="no actors entry named 'ghost'"):
        load(tmp_path, valid(tmp_path), environ={"GRANDMODEL__actors__ghost__cls": "x"})


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_run_with_a_bad_config_exits_2_naming_the_field(tmp_path):
    path = write_config(tmp_path / "c.toml", mutate(valid(tmp_path), "nodes.0.cores", [99]))
    result = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert "nodes[0].cores[0]: core 99 does not exist" in result.stderr
