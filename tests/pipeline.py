"""The trading pipeline as a real system under test: config, quiescence, reconciliation."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringbuf import inspect_ring
from tests.helpers import wait_until
from tests.systems import RunningSystem, base_config, write_config

STREAMS = ["ticks", "bars", "intents", "verdicts", "orders", "venue", "risk_snapshots"]


def pipeline_config(tmp: Path, max_ticks: int, **risk: object) -> dict[str, Any]:
    """Feed -> bars -> tactical -> risk -> execution -> venue, plus a recorder."""
    config = base_config(
        tmp,
        messages="actors.messages:AnyMessage",
        delivery={"quarantine_file": str(tmp / "quarantine.jsonl")},
    )
    config["zygote"] = {"preload": ["numpy", "numba", "msgspec", "uvloop"]}
    config["streams"] = [{"name": s, "capacity": 1 << 22} for s in STREAMS]
    config["actors"] = [
        {
            "name": "feed",
            "cls": "actors.feed:FeedActor",
            "outputs": {"ticks": "ticks"},
            "params": {"pace": "xN", "speed": 4000.0, "seed": 3, "max_ticks": max_ticks},
        },
        {
            "name": "venue",
            "cls": "actors.venue:VenueActor",
            "inputs": ["ticks", "orders"],
            "outputs": {"reports": "venue"},
        },
        {
            "name": "bars",
            "cls": "actors.bars:BarsActor",
            "inputs": ["ticks"],
            "outputs": {"bars": "bars"},
            "params": {"timeframes": [5]},
        },
        {
            "name": "tactical",
            "cls": "actors.tactical:TacticalActor",
            "inputs": ["bars"],
            "outputs": {"intents": "intents"},
            "params": {"timeframe_s": 5, "threshold_pct": 0.002, "min_atr_fraction": 0.0},
        },
        {
            "name": "risk",
            "cls": "actors.risk:RiskActor",
            "inputs": ["intents", "venue", "bars"],
            "outputs": {"verdicts": "verdicts", "snapshots": "risk_snapshots"},
            "params": {
                "max_orders_per_minute": 1_000_000,
                "daily_loss_limit": 1e12,
                "max_notional": 1e12,
                "max_position": 1000,
                "max_order_size": 3,
                "price_band_fraction": 0.5,
                "min_kelly_trades": 10**9,
                "snapshot_interval_s": 0.1,
                **risk,
            },
        },
        {
            "name": "execution",
            "cls": "actors.execution:ExecutionActor",
            "inputs": ["verdicts", "venue"],
            "outputs": {"orders": "orders"},
        },
        {
            "name": "recorder",
            "cls": "tests.trading_actors:Recorder",
            "inputs": ["orders", "venue", "risk_snapshots"],
            "params": {"path": str(tmp / "recorded.jsonl")},
        },
    ]
    config["nodes"] = [
        {"name": "market", "actors": ["feed", "venue"], "cores": [0], "wait": "park"},
        {
            "name": "hot",
            "actors": ["bars", "tactical", "risk", "execution"],
            "cores": [1],
            "wait": "park",
        },
        {"name": "audit", "actors": ["recorder"], "cores": [0], "wait": "backoff"},
    ]
    config["supervisors"] = [
        {"name": "root", "children": ["market", "hot", "audit"], "max_restarts": 10, "period_s": 60}
    ]
    return config


def start_pipeline(tmp: Path, config: dict[str, Any]) -> RunningSystem:
    path = write_config(tmp / "pipeline.toml", config)
    system = RunningSystem(path, config["name"], Path(config["logging"]["file"]))
    system.wait_running()
    return system


def rings(system: RunningSystem) -> list[str]:
    consumers = {
        "ticks": ["venue", "bars"],
        "bars": ["tactical", "risk"],
        "intents": ["risk"],
        "verdicts": ["execution"],
        "orders": ["venue", "recorder"],
        "venue": ["execution", "risk", "recorder"],
        "risk_snapshots": ["recorder"],
    }
    return [f"{system.name}.{s}.{c}" for s, names in consumers.items() for c in names]


def wait_quiescent(system: RunningSystem, max_ticks: int, timeout_s: float = 120) -> None:
    """The feed has published everything and every ring is drained."""

    def quiet() -> bool:
        rows = system.rows()
        if rows["feed"]["msgs_out"] < max_ticks:
            return False
        return all(inspect_ring(name).depth_bytes == 0 for name in rings(system))

    wait_until(quiet, timeout_s, "the pipeline to drain")


@dataclass
class Recorded:
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)
    risk: list[dict[str, Any]] = field(default_factory=list)


def recorded(tmp: Path) -> Recorded:
    """What the recorder saw, each stream deduplicated on seq: a recorder killed after
    writing a line and before its commit writes that message again after its restart
    (the file is outside its durable state), under the same seq."""
    out = Recorded()
    seen: set[tuple[str, int]] = set()
    lists = {
        "OrderRequest": out.orders,
        "Fill": out.fills,
        "OrderAck": out.acks,
        "OrderReject": out.rejects,
        "PositionSnapshot": out.positions,
        "RiskSnapshot": out.risk,
    }
    path = tmp / "recorded.jsonl"
    if not path.exists():
        return out
    # Whole lines only: the recorder may be halfway through writing the last one.
    for line in path.read_text().split("\n")[:-1]:
        entry = json.loads(line)
        stream = "orders" if entry["type"] == "OrderRequest" else entry["type"]
        key = (
            stream
            if entry["type"] in ("OrderRequest",)
            else "venue"
            if entry["type"] in ("Fill", "OrderAck", "OrderReject")
            else "risk",
            entry["msg"]["seq"],
        )
        if key in seen:
            continue
        seen.add(key)
        lists[entry["type"]].append(entry["msg"])
    return out


def net_position(fills: list[dict[str, Any]]) -> int:
    return sum(f["side"] * f["quantity"] for f in fills)
