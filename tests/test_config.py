"""Configuration: strict types, references, field paths in errors, exit status 2."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from config.loader import DEFAULT_CONFIG, ConfigError, load_config
from kernel.wiring import load_system
from tests.systems import REPO, base_config, write_config


def valid(tmp_path: Path) -> dict:
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 4096}]
    config["actors"] = [
        {"name": "source", "cls": "tests.kernel_actors:Source", "outputs": {"out": "numbers"}},
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
    """The config and its wiring checked, as `grandmodel run` does."""
    path = write_config(tmp_path / "c.toml", config)
    return load_system(path, environ=environ or {}).config


def test_a_valid_config_loads(tmp_path):
    config = load(tmp_path, valid(tmp_path))
    assert config.nodes[0].wait == "park"
    assert config.actors[1].params == {"marks": "/tmp/x"}


def test_shipped_configs_are_valid():
    shipped = sorted(DEFAULT_CONFIG.parent.glob("*.toml"))
    assert [p.name for p in shipped] == ["default.toml", "eight_core.toml"]
    default = load_system(DEFAULT_CONFIG, environ={}).config
    assert max(core for node in default.nodes for core in node.cores) < 2
    eight = load_system(DEFAULT_CONFIG.parent / "eight_core.toml", environ={}, cpus=8).config
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
        ("streams.0.capacity", 1 << 32, "streams[0].capacity: 4294967296 is not a power of two"),
        ("streams.0.full_policy", "spill", "streams[0].full_policy: Invalid enum value"),
        ("actors.0.outputs", {"out": "nope"}, "actors[0].outputs.out: no stream 'nope'"),
        ("actors.0.outputs", {"numbers": "numbers"}, "actors[0].outputs.numbers: class Source"),
        ("actors.1.inputs", ["ghost"], "actors[1].inputs[0]: no stream 'ghost'"),
        ("actors.1.inputs", ["numbers", "numbers"], "actors[1].inputs[1]: 'numbers' is listed"),
        ("delivery", {"max_attempts": 0}, "delivery.max_attempts: Expected `int` >= 1"),
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
    config["actors"].append(
        {"name": "second", "cls": "tests.kernel_actors:Source", "outputs": {"out": "numbers"}}
    )
    config["nodes"][0]["actors"].append("second")
    with pytest.raises(ConfigError, match=r"actors\[2\].outputs.out: stream 'numbers' already has"):
        load(tmp_path, config)


def with_relay(tmp_path: Path, relay_cls: str = "tests.kernel_actors:Relay") -> dict:
    config = valid(tmp_path)
    config["streams"].append({"name": "relayed", "capacity": 4096})
    config["actors"].append(
        {"name": "relay", "cls": relay_cls, "inputs": ["numbers"], "outputs": {"out": "relayed"}}
    )
    config["nodes"][0]["actors"].append("relay")
    return config


def test_a_required_port_left_unwired_is_refused(tmp_path):
    config = with_relay(tmp_path)
    config["actors"][2]["outputs"] = {}
    config["streams"].pop()
    with pytest.raises(ConfigError, match=r"actors\[2\].outputs: port 'out' of Relay is not wired"):
        load(tmp_path, config)


def test_a_stream_nobody_consumes_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"actors\[2\].outputs.out: stream 'relayed' has no"):
        load(tmp_path, with_relay(tmp_path))


def test_a_stream_without_producer_is_refused(tmp_path):
    config = valid(tmp_path)
    config["streams"].append({"name": "silent", "capacity": 4096})
    config["actors"][1]["inputs"].append("silent")
    with pytest.raises(ConfigError, match=r"streams\[1\]: no actor's output is wired to 'silent'"):
        load(tmp_path, config)


def test_a_consumer_that_handles_nothing_its_stream_carries_is_refused(tmp_path):
    config = valid(tmp_path)
    config["actors"].append(
        {"name": "words", "cls": "tests.kernel_actors:TextSink", "inputs": ["numbers"]}
    )
    config["nodes"][0]["actors"].append("words")
    with pytest.raises(
        ConfigError, match=r"actors\[2\].inputs\[0\]: stream 'numbers' carries Number"
    ):
        load(tmp_path, config)


def test_a_handled_type_without_producer_is_refused(tmp_path):
    config = valid(tmp_path)
    config["actors"][1] = {**config["actors"][1], "params": {}}
    config["actors"][1]["cls"] = "tests.kernel_actors:NumberAndTextSink"
    with pytest.raises(ConfigError, match=r"actors\[1\].inputs: .* handles Text but no input"):
        load(tmp_path, config)


def test_a_ring_too_small_for_the_largest_message_is_refused(tmp_path):
    config = valid(tmp_path)
    config["actors"][0]["cls"] = "tests.kernel_actors:TextSource"
    config["actors"][1] = {**config["actors"][1], "params": {}}
    config["actors"][1]["cls"] = "tests.kernel_actors:NumberAndTextSink"
    config["streams"][0]["capacity"] = 1024
    with pytest.raises(ConfigError, match=r"streams\[0\].capacity: 1024 bytes hold records of"):
        load(tmp_path, config)
    config["streams"][0]["capacity"] = 1 << 16
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


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("GRANDMODEL__streams__numbers", "streams['numbers'] is a whole entry"),
        ("GRANDMODEL__name__x", "name is a str, not a table"),
        ("GRANDMODEL__zygote__preload__numpy", "no zygote.preload entry named 'numpy'"),
        ("GRANDMODEL__logging____level", "empty path part"),
        ("GRANDMODEL__nodes__one__cores__x", "no nodes['one'].cores entry named 'x'"),
        ("GRANDMODEL__logging__level__x", "logging.level is a str, not a table"),
    ],
)
def test_environment_overrides_that_lead_nowhere_are_config_errors(tmp_path, key, expected):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, valid(tmp_path), environ={key: "1"})
    assert expected in str(error.value)
    assert key in str(error.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("heartbeat_interval_s", "inf", "heartbeat_interval_s: Expected `float` <="),
        ("nodes__one__shutdown_timeout_s", "nan", "nodes[0].shutdown_timeout_s: Expected"),
        ("actors__source__params__count", "1e999", "actors[0].params.count: Expected `int`"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, valid(tmp_path), environ={f"GRANDMODEL__{key}": value})
    assert expected in str(error.value)


def test_an_environment_override_with_a_bad_value_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"actors\[0\].params.count: Expected `int`"):
        load(tmp_path, valid(tmp_path), environ={"GRANDMODEL__actors__source__params__count": "x"})


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("nodes.0.cores", [99], "nodes[0].cores[0]: core 99 does not exist"),
        ("actors.0.outputs", {"oops": "numbers"}, "actors[0].outputs.oops: class Source has no"),
    ],
)
def test_run_with_a_bad_config_exits_2_naming_the_field(tmp_path, path, value, expected):
    config_path = write_config(tmp_path / "c.toml", mutate(valid(tmp_path), path, value))
    result = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_an_env_override_error_exits_2_without_a_traceback(tmp_path):
    config_path = write_config(tmp_path / "c.toml", valid(tmp_path))
    stderr = run_expecting_exit_2(["--config", str(config_path)], {"GRANDMODEL__name__x": "1"})
    assert "GRANDMODEL__name__x: name is a str, not a table" in stderr


def run_expecting_exit_2(args: list[str], env: dict[str, str]) -> str:
    """`grandmodel run ARGS` with `env` added: exit status 2, no traceback; its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    return result.stderr


# --- the instrument registry ----------------------------------------------------------

THREE = [{"symbol": s} for s in ("ES", "NQ", "YM")]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"GRANDMODEL__actors__bars__params__symbols": '["ES", "RTY"]'},
            "actors[2].params.symbols[1]: unknown instrument 'RTY' (the registry has ES, NQ)",
        ),
        (
            {"GRANDMODEL__actors__risk__params__position_limits": "{ YM = 2 }"},
            "actors[6].params.position_limits.YM: unknown instrument 'YM'",
        ),
        (
            {"GRANDMODEL__actors__feed__params__models": "{ CL = { start_price = 70.0 } }"},
            "actors[0].params.models.CL: unknown instrument 'CL'",
        ),
        (
            {"GRANDMODEL__actors__venue__params__registry": "{}"},
            "actors[1].params.registry: instruments are defined in the config's top-level",
        ),
        (
            {"GRANDMODEL__actors__feed__params__correlation": "[[1.0, 0.9], [0.8, 1.0]]"},
            "actors[0].params.correlation[1][0]: not symmetric",
        ),
    ],
)
def test_symbols_the_registry_lacks_are_named_at_load(env, expected):
    with pytest.raises(ConfigError) as error:
        load_system(DEFAULT_CONFIG, environ=env)
    assert expected in str(error.value)


def test_a_correlation_no_market_can_have_is_refused(tmp_path):
    """Pairwise plausible, jointly impossible: A ~ B and A ~ C strongly, B ~ -C."""
    config = default_as_dict()
    config["instruments"] = THREE
    feed = config["actors"][0]["params"]
    feed["symbols"] = ["ES", "NQ", "YM"]
    feed["correlation"] = [[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]]
    with pytest.raises(ConfigError, match=r"actors\[0\]\.params\.correlation: not positive semi"):
        load(tmp_path, config)
    feed["correlation"] = [[1.0, 0.9, 0.9], [0.9, 1.0, 0.7], [0.9, 0.7, 1.0]]
    assert [i.symbol for i in load(tmp_path, config).instruments] == ["ES", "NQ", "YM"]


@pytest.mark.parametrize(
    ("instruments", "expected"),
    [
        ([{"symbol": "ES"}, {"symbol": "ES"}], "instruments[1].symbol: 'ES' is instruments[0] too"),
        ([{"symbol": "ES"}, {"symbol": "FDAX", "currency": "EUR"}], "instruments[1].currency"),
        ([{"symbol": "ES", "tick_size": 0}], "instruments[0].tick_size: Expected `float` > 0"),
        ([{"symbol": "ES", "session": {"timezone": "Mars/Olympus"}}], "unknown session timezone"),
        ([{"symbol": "E S"}], "instruments[0].symbol: Expected `str` matching"),
    ],
)
def test_a_bad_registry_is_named_at_load(tmp_path, instruments, expected):
    config = default_as_dict()
    config["instruments"] = instruments
    with pytest.raises(ConfigError) as error:
        load(tmp_path, config)
    assert expected in str(error.value)


def test_run_with_an_unknown_symbol_exits_2_naming_it():
    stderr = run_expecting_exit_2([], {"GRANDMODEL__actors__tactical__params__symbols": '["ZN"]'})
    assert "actors[5].params.symbols[0]: unknown instrument 'ZN'" in stderr


def default_as_dict() -> dict:
    with open(DEFAULT_CONFIG, "rb") as handle:
        return tomllib.load(handle)
