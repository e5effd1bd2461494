"""The order a node polls its rings in: each message's consequences inside the node first."""

from pathlib import Path

import pytest

from bench.e2e import bench_config
from config.loader import load_config
from kernel.topology import Topology

REPO = Path(__file__).resolve().parent.parent


def _order(topology: Topology, node: str) -> list[str]:
    return [f"{ring.stream}->{ring.consumer}" for ring in topology.drain_order(node)]


def test_an_intent_reaches_the_orders_ring_before_the_other_actors_inputs_are_polled():
    topology = Topology(load_config(environ={}))
    assert _order(topology, "hot") == [
        "ticks->bars",
        "bars->features",
        "features->tactical",
        "intents->risk",
        "verdicts->execution",
        "venue->risk",  # before bars->risk, as risk declares
        "bars->risk",
        "strategic->tactical",
        "venue->execution",
    ]
    assert _order(topology, "market") == ["ticks->venue", "orders->venue"]
    assert _order(topology, "strategy") == ["features->strategic"]


def test_an_actor_sees_its_inputs_in_the_order_it_declares_them(tmp_path):
    # The venue in the order path's node: the order its strategy sent on a tick comes
    # after that tick (venue inputs = ["ticks", "orders"]), even though the depth-first
    # walk reaches the orders first.
    config = tmp_path / "e2e.toml"
    config.write_text(bench_config("topo", tmp_path / "log.jsonl", 2500.0, "spin"))
    topology = Topology(load_config(config, environ={}))
    assert _order(topology, "hot") == [
        "ticks->bars",
        "bars->tactical",
        "intents->risk",
        "verdicts->execution",
        "ticks->venue",
        "orders->venue",
        "venue->risk",
        "venue->execution",
        "bars->risk",
    ]


@pytest.mark.parametrize("name", ["default.toml", "eight_core.toml"])
def test_every_ring_of_a_node_is_polled_exactly_once(name):
    topology = Topology(load_config(REPO / "config" / name, environ={}, cpus=8))
    for node in topology.nodes:
        mine = {ring.name for ring in topology.rings if ring.node == node}
        order = [ring.name for ring in topology.drain_order(node)]
        assert sorted(order) == sorted(mine)


@pytest.mark.parametrize("policy", [False, True])
def test_the_sharded_bench_layout_serves_every_symbol_once_on_cores_of_its_own(tmp_path, policy):
    config = tmp_path / "e2e.toml"
    text = bench_config("topo", tmp_path / "log.jsonl", 2500.0, "spin", None, 4, policy, 3)
    config.write_text(text)
    loaded = load_config(config, environ={}, cpus=16)
    topology = Topology(loaded)
    shards = [node for node in loaded.nodes if node.name.startswith("shard_")]
    assert [node.name for node in shards] == ["shard_0", "shard_1", "shard_2"]
    actors = {actor.name: actor for actor in loaded.actors}
    served = [[actors[name].params["symbols"] for name in node.actors] for node in shards]
    assert served == [
        [["ES", "NQ"]] * len(shards[0].actors),
        [["YM"]] * len(shards[1].actors),
        [["RTY"]] * len(shards[2].actors),
    ], "each symbol in one shard, served by all of its stages"
    cores = [core for node in loaded.nodes if node.wait == "spin" for core in node.cores]
    assert sorted(cores) == list(range(1, 8)), "one spinning node per core, core 0 left free"
    assert _order(topology, "shard_1")[:3] == [
        "ticks->bars_1",
        *(["bars_1->features_1", "features_1->tactical_1"] if policy else ["bars_1->tactical_1"]),
    ]
    risk_inputs = {ring.stream for ring in topology.rings if ring.consumer == "risk"}
    assert {f"intents_{k}" for k in range(3)} <= risk_inputs
