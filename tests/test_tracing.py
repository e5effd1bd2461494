"""A traced node records where each message's time goes (the `bench e2e` breakdown):
hops, handler runs, publish costs, handler-until-publish leads, commits."""

import time
from pathlib import Path

from kernel.latency import read_histograms
from tests.systems import RunningSystem, base_config, wait_until, write_config

COUNT = 2_000


def relay_system(tmp_path: Path) -> dict:
    config = base_config(tmp_path)
    config["streams"] = [
        {"name": "numbers", "capacity": 1 << 16},
        {"name": "relayed", "capacity": 1 << 16},
    ]
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:Source",
            "outputs": {"out": "numbers"},
            "params": {"count": COUNT},
        },
        {
            "name": "relay",
            "cls": "tests.kernel_actors:Relay",
            "inputs": ["numbers"],
            "outputs": {"out": "relayed"},
        },
        {"name": "ledger", "cls": "tests.kernel_actors:Ledger", "inputs": ["relayed"]},
    ]
    config["nodes"] = [
        {"name": "front", "actors": ["source"], "wait": "backoff"},
        {"name": "back", "actors": ["relay", "ledger"], "wait": "backoff"},
    ]
    config["supervisors"] = [{"name": "root", "children": ["front", "back"]}]
    return config


def test_a_traced_node_records_hops_handlers_publishes_leads_and_commits(tmp_path):
    config = relay_system(tmp_path)
    name = config["name"]
    system = RunningSystem(write_config(tmp_path / "c.toml", config), name, tmp_path / "r.jsonl")
    try:
        system.wait_running()

        def counts() -> dict[str, int]:
            return {key: h.count for key, h in read_histograms(name).items()}

        wait_until(lambda: counts().get("node.back.relayed->ledger", 0) == COUNT, 60, "all")
        histograms = read_histograms(name)
        for series in (
            "node.back.numbers->relay",
            "node.back.handle numbers->relay",
            "node.back.publish relayed",
            "node.back.handler until publish relayed",
            "node.back.relayed->ledger",
            "node.back.handle relayed->ledger",
            "node.front.publish numbers",
        ):
            assert histograms[series].count == COUNT, series
        # The source publishes from a task, not from a handler: no lead to record.
        assert histograms["node.front.handler until publish numbers"].count == 0
        assert histograms["node.back.commit"].count >= 1
        # A relay's handler includes its publish; its lead ends where the publish starts.
        handle = histograms["node.back.handle numbers->relay"]
        lead = histograms["node.back.handler until publish relayed"]
        assert handle.max_ns >= lead.percentile(50) > 0
    finally:
        system.terminate()


def test_a_node_fed_a_steady_stream_commits_in_rounds_not_at_every_gap(tmp_path):
    """A message every 100 us, handled by both actors of the back node, each of whose
    saves takes longer than that (a 800 KB record). A commit round saves each actor once,
    then waits for the interval: 2 saves per 0.1 s. A round that also took in the actors
    that handled a message since it began would never end while messages flow: one save
    after another, some thousand in 0.5 s."""
    count = 5_000
    config = base_config(tmp_path)
    config["streams"] = [{"name": "numbers", "capacity": 1 << 20}]
    bulky = {"cls": "tests.kernel_actors:BulkyLedger", "inputs": ["numbers"]}
    config["actors"] = [
        {
            "name": "source",
            "cls": "tests.kernel_actors:PacedSource",
            "outputs": {"out": "numbers"},
            "params": {"count": count, "every_us": 100.0},
        },
        {**bulky, "name": "a", "params": {"ballast_bytes": 800_000}},
        {**bulky, "name": "b", "params": {"ballast_bytes": 800_000}},
    ]
    config["nodes"] = [
        {"name": "front", "actors": ["source"], "wait": "park"},
        {"name": "back", "actors": ["a", "b"], "wait": "park", "commit_interval_s": 0.1},
    ]
    config["supervisors"] = [{"name": "root", "children": ["front", "back"]}]
    name = config["name"]
    system = RunningSystem(write_config(tmp_path / "c.toml", config), name, tmp_path / "r.jsonl")
    try:
        system.wait_running()

        def handled() -> int:
            histogram = read_histograms(name).get("node.back.numbers->b")
            return histogram.count if histogram else 0

        wait_until(lambda: handled() >= 1, 30, "the first message")
        started = time.monotonic()
        wait_until(lambda: handled() == count, 60, "every message")
        rounds = (time.monotonic() - started) / 0.1 + 2
        commits = read_histograms(name)["node.back.commit"].count
        assert 2 <= commits <= 2 * rounds, f"{commits} saves in {rounds:.0f} rounds"
    finally:
        system.terminate()
