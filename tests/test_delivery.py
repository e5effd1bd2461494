"""The delivery contract with real processes, rings and SIGKILL at controlled points.

Pipeline: source -> numbers -> relay -> relayed -> (a, b), and source -> numbers -> c,
each actor in a node of its own. Relay and the ledgers fold every value into durable
state (count, sum, an order-sensitive digest): a lost, repeated or reordered message
changes it. Each fault test kills one node with SIGKILL at a named point of the protocol
(kernel/faults.py) and checks every state equals the fault-free result.
"""

from pathlib import Path

import msgspec
import pytest

from kernel.durable import handled_seq, read_quarantine, read_record
from ringbuf import remove_stale
from ringbuf.procs import is_alive
from tests.helpers import wait_until
from tests.kernel_actors import LedgerState, RelayState, chain
from tests.systems import RunningSystem, base_config, write_config

LEDGER = "tests.kernel_actors:Ledger"
LEDGERS = ("relay", "a", "b", "c")


def expected_state(values: list[int]) -> LedgerState:
    state = LedgerState()
    for value in values:
        state.count += 1
        state.total += value
        state.digest = chain(state.digest, value)
    return state


def fan_out_config(tmp_path: Path, count: int, **overrides: object) -> dict:
    config = base_config(tmp_path, **overrides)
    config["streams"] = [
        {"name": "numbers", "capacity": 1 << 14},
        {"name": "relayed", "capacity": 1 << 14},
    ]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            "params": {"count": count, "per_tick": 20},
        },
        {
            "name": "relay",
            "cls": "tests.kernel_actors:StatefulRelay",
            "inputs": ["numbers"],
            "outputs": {"out": "relayed"},
        },
        {"name": "a", "cls": LEDGER, "inputs": ["relayed"]},
        {"name": "b", "cls": LEDGER, "inputs": ["relayed"]},
        {"name": "c", "cls": LEDGER, "inputs": ["numbers"]},
    ]
    config["nodes"] = [
        {"name": f"n_{actor['name']}", "actors": [actor["name"]], "wait": "park"}
        for actor in config["actors"]
    ]
    config["supervisors"] = [
        {"name": "root", "children": [node["name"] for node in config["nodes"]]}
    ]
    return config


def start(tmp_path: Path, config: dict, env: dict[str, str] | None = None) -> RunningSystem:
    path = write_config(tmp_path / "system.toml", config)
    system = RunningSystem(path, config["name"], Path(config["logging"]["file"]), env=env)
    system.wait_running()
    return system


def ledger(system: str, actor: str) -> LedgerState:
    record = read_record(system, actor)
    if record is None or not record.state:
        return LedgerState()
    return msgspec.msgpack.decode(record.state, type=LedgerState)


def wait_for_counts(name: str, count: int, actors: tuple[str, ...] = LEDGERS) -> None:
    wait_until(
        lambda: all(ledger(name, actor).count >= count for actor in actors),
        90,
        f"{actors} to handle {count} messages",
    )


@pytest.mark.parametrize(
    ("victim", "point", "nth"),
    [
        ("relay", "before_publish", 700),
        ("relay", "between_rings", 700),
        ("relay", "after_handler", 700),
        ("a", "after_handler", 700),
        ("source", "between_rings", 700),
        # Records are saved per group commit (every commit_interval_s while messages flow):
        # fewer saves.
        ("a", "mid_save", 3),
        ("relay", "mid_save", 3),
    ],
)
def test_kill9_at_a_protocol_point_loses_nothing_and_repeats_nothing(
    tmp_path, systems, victim, point, nth
):
    count = 2_000
    config = fan_out_config(tmp_path, count)
    marker = tmp_path / "fault.marker"
    system = start(tmp_path, config, env={"GRANDMODEL_FAULT": f"{victim}:{point}:{nth}:{marker}"})
    systems.append(system)
    wait_for_counts(system.name, count)
    assert marker.exists(), "the fault never fired"
    rows = system.rows()
    assert rows[victim]["restarts"] == 1
    want = expected_state(list(range(1, count + 1)))
    for actor in LEDGERS:
        assert ledger(system.name, actor) == want, actor
    if point in ("before_publish", "between_rings", "after_handler") and victim != "a":
        # The replayed publishes reached consumers that had them: dropped by seq.
        assert sum(rows[actor]["duplicates"] for actor in LEDGERS) > 0
    assert all(rows[actor]["unhandled"] == 0 for actor in LEDGERS)
    assert system.terminate()[0] == 0


def test_a_restarted_producer_is_told_what_its_predecessor_published_since_its_commit(
    tmp_path, systems
):
    # The relay dies between the two rings of its 700th publish: everything it published
    # after its last commit is sent again, and handed to it (on_resent) before its start.
    marker = tmp_path / "fault.marker"
    config = fan_out_config(tmp_path, 1_000)
    system = start(tmp_path, config, env={"GRANDMODEL_FAULT": f"relay:between_rings:700:{marker}"})
    systems.append(system)
    wait_for_counts(system.name, 1_000)
    assert marker.exists(), "the fault never fired"
    record = read_record(system.name, "relay")
    resent = msgspec.msgpack.decode(record.state, type=RelayState).resent
    assert resent and resent == list(range(701 - len(resent), 701))
    assert system.terminate()[0] == 0


def test_state_survives_a_clean_restart_and_the_new_run_continues(tmp_path, systems):
    first = fan_out_config(tmp_path, 500)
    system = start(tmp_path, first)
    systems.append(system)
    wait_for_counts(system.name, 500)
    assert system.terminate()[0] == 0
    # Same system name, more messages: the source continues after 500.
    second = {**first, "actors": [dict(actor) for actor in first["actors"]]}
    second["actors"][0]["params"] = {"count": 900, "per_tick": 20}
    system = start(tmp_path, second)
    systems.append(system)
    wait_for_counts(system.name, 900)
    want = expected_state(list(range(1, 901)))
    for actor in LEDGERS:
        assert ledger(system.name, actor) == want, actor
    assert system.terminate()[0] == 0


def test_a_new_run_numbers_past_what_a_consumer_handled_without_committing(tmp_path, systems):
    """After a whole-tree crash whose rings are gone, a producer resumes past every seq a
    consumer handled, committed or not: a consumer may have acted on a message after its
    last commit (the journal writes its rows just before), and a new message under that
    number would pass for the same one."""
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 1 << 20}]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            "params": {"count": 500, "per_tick": 20},
        },
        {"name": "c", "cls": LEDGER, "inputs": ["numbers"]},
    ]
    # Neither commits while it runs (nor does the ring fill a quarter): what they did is
    # only in the consumer's handled mark.
    config["nodes"] = [
        {"name": f"n_{name}", "actors": [name], "wait": "park", "commit_interval_s": 1000.0}
        for name in ("c", "source")
    ]
    config["supervisors"] = [{"name": "root", "children": ["n_c", "n_source"]}]
    system = start(tmp_path, config)
    systems.append(system)
    wait_until(lambda: handled_seq(system.name, "c", 0) == 500, 30, "c to handle 500")
    pids = [row["pid"] for row in system.rows().values()]
    system.kill9()
    wait_until(lambda: not any(is_alive(pid) for pid in pids), 10, "every process gone")
    assert read_record(system.name, "source").outputs.get("numbers", 0) < 500
    assert remove_stale(f"{system.name}.")
    config["actors"][0]["params"] = {"count": 900, "per_tick": 20}
    again = start(tmp_path, config)
    systems.append(again)
    wait_until(lambda: handled_seq(again.name, "c", 0) == 900, 30, "the new run's numbers")
    assert again.terminate()[0] == 0
    assert ledger(again.name, "c") == expected_state(list(range(501, 901)))


def poisoned_config(tmp_path: Path, mode: str) -> dict:
    config = fan_out_config(
        tmp_path, 300, delivery={"max_attempts": 3, "quarantine_file": str(tmp_path / "q.jsonl")}
    )
    config["actors"][4] = {
        "name": "c",
        "cls": "tests.kernel_actors:PoisonedLedger",
        "inputs": ["numbers"],
        "params": {"poison": 123, "mode": mode},
    }
    config["nodes"][4]["heartbeat_timeout_s"] = 0.5
    config["supervisors"][0]["max_restarts"] = 10
    return config


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_a_poison_message_is_quarantined_after_max_attempts(tmp_path, systems, mode):
    config = poisoned_config(tmp_path, mode)
    system = start(tmp_path, config)
    systems.append(system)
    wait_for_counts(system.name, 299, ("c",))
    wait_for_counts(system.name, 300, ("relay", "a", "b"))
    assert ledger(system.name, "c") == expected_state([v for v in range(1, 301) if v != 123])
    entries = read_quarantine(str(tmp_path / "q.jsonl"))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["actor"], entry["stream"], entry["seq"], entry["type"]) == (
        "c",
        "numbers",
        123,
        "Number",
    )
    assert entry["failures"] == 3
    assert entry["message"]["value"] == 123
    if mode == "raise":
        assert "ValueError: poisoned by 123" in entry["reason"]
    wait_until(lambda: system.rows()["c"]["quarantined"] == 1, 10, "health to show it")
    row = system.rows()["c"]
    assert row["degraded"] and row["restarts"] == 3
    assert system.terminate()[0] == 0


def with_source(config: dict, cls: str, count: int) -> dict:
    """The fan-out config with another source class publishing `count` messages."""
    config["actors"][0] = {
        "name": "source",
        "cls": f"tests.kernel_actors:{cls}",
        "outputs": {"out": "numbers"},
        "params": {"count": count},
    }
    return config


def test_a_message_type_the_actor_does_not_handle_is_counted(tmp_path, systems):
    config = with_source(fan_out_config(tmp_path, 0), "LyingSource", 40)
    system = start(tmp_path, config)
    systems.append(system)
    wait_until(lambda: system.rows()["c"]["unhandled"] == 10, 60, "10 unhandled Texts")
    wait_for_counts(system.name, 30, ("c",))
    row = system.rows()["c"]
    assert row["degraded"]
    assert ledger(system.name, "c").count == 30
    assert system.terminate()[0] == 0


def test_an_undecodable_record_is_quarantined_at_once(tmp_path, systems):
    quarantine = {"quarantine_file": str(tmp_path / "q.jsonl")}
    config = with_source(fan_out_config(tmp_path, 0, delivery=quarantine), "ForgingSource", 50)
    system = start(tmp_path, config)
    systems.append(system)
    wait_for_counts(system.name, 50, ("c",))
    entries = read_quarantine(str(tmp_path / "q.jsonl"))
    assert {entry["actor"] for entry in entries} == {"c", "relay"}
    assert all("undecodable" in entry["reason"] for entry in entries)
    assert system.rows()["c"]["restarts"] == 0
    assert system.terminate()[0] == 0


def test_a_producer_stopped_while_blocked_on_a_full_ring_loses_nothing(tmp_path, systems):
    """Backpressure then stop: `b` hangs, the small rings fill, the source blocks in a
    publish; the hang kill of `b` makes the root restart every node (one_for_all), so the
    source is stopped in the middle of that publish (written to `a`'s ring, not `b`'s)."""
    count = 3_000
    config = fan_out_config(tmp_path, count)
    config["streams"] = [{"name": "numbers", "capacity": 4096}]
    config["actors"] = [
        config["actors"][0],
        {"name": "a", "cls": LEDGER, "inputs": ["numbers"]},
        {
            "name": "b",
            "cls": "tests.kernel_actors:HangOnceLedger",
            "inputs": ["numbers"],
            "params": {"hang_at": 1_000, "faults_file": str(tmp_path / "hung")},
        },
    ]
    config["nodes"] = [
        {"name": f"n_{actor['name']}", "actors": [actor["name"]], "wait": "park"}
        for actor in config["actors"]
    ]
    config["nodes"][2]["heartbeat_timeout_s"] = 0.5
    config["supervisors"] = [
        {
            "name": "root",
            "children": [node["name"] for node in config["nodes"]],
            "strategy": "one_for_all",
        }
    ]
    system = start(tmp_path, config)
    systems.append(system)
    wait_for_counts(system.name, count, ("a", "b"))
    assert (tmp_path / "hung").exists()
    want = expected_state(list(range(1, count + 1)))
    assert ledger(system.name, "a") == want
    assert ledger(system.name, "b") == want
    rows = system.rows()
    assert rows["source"]["restarts"] == 1 and rows["b"]["restarts"] == 1
    assert all(rows[actor]["gaps"] == 0 for actor in ("a", "b"))
    assert system.terminate()[0] == 0


def test_a_consumer_holding_a_full_ring_commits_at_once_whatever_its_interval(tmp_path):
    """The producer waits for ring space that only the consumer's commit frees: a parked
    consumer with a long commit interval must not sleep on a ring it filled up (each of the
    ~15 rounds would wait for the heartbeat's overdue commit, 5 intervals = 10 s here; the
    last messages, less than a ring, are committed by that heartbeat once)."""
    count = 2_000  # ~30 bytes each: several times the ring
    config = fan_out_config(tmp_path, count)
    config["streams"] = [{"name": "numbers", "capacity": 1 << 12}]
    config["actors"] = [config["actors"][0], {**config["actors"][4], "name": "c"}]
    config["nodes"] = [
        {"name": "n_source", "actors": ["source"], "wait": "park"},
        {"name": "n_c", "actors": ["c"], "wait": "park", "commit_interval_s": 2.0},
    ]
    config["supervisors"] = [{"name": "root", "children": ["n_source", "n_c"]}]
    system = start(tmp_path, config)
    try:
        wait_until(lambda: system.rows()["c"]["msgs_in"] == count, 30, "every message")
    finally:
        system.terminate()
    assert ledger(config["name"], "c") == expected_state(list(range(1, count + 1)))
