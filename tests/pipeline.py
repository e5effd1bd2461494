"""The trading pipeline as a real system under test: config, quiescence, what it journaled."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.journal.query import connect, select_records
from bench.chaos import LOOSE_RISK_LIMITS, TRADE_OFTEN
from config.instruments import DEFAULT_INSTRUMENTS
from ringbuf import inspect_ring
from tests.helpers import wait_until
from tests.systems import RunningSystem, base_config, write_config

POINT_VALUES = {instrument.symbol: instrument.point_value for instrument in DEFAULT_INSTRUMENTS}
"""The pipeline's instruments (the default registry: ES and NQ) and their point values."""
STREAMS = ["ticks", "bars", "intents", "verdicts", "orders", "venue"]
JOURNALED_STREAMS = {
    "intents": "tactical",
    "verdicts": "risk",
    "orders": "execution",
    "venue": "venue",
}
"""The streams the journal consumes, each with its producer."""


def pipeline_config(tmp: Path, max_ticks: int, **risk: object) -> dict[str, Any]:
    """Feed -> bars -> tactical -> risk -> execution -> venue, plus the journal."""
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
            "params": dict(TRADE_OFTEN["bars"]),
        },
        {
            "name": "tactical",
            "cls": "actors.tactical:TacticalActor",
            "inputs": ["bars"],
            "outputs": {"intents": "intents"},
            "params": dict(TRADE_OFTEN["tactical"]),
        },
        {
            "name": "risk",
            "cls": "actors.risk:RiskActor",
            "inputs": ["intents", "venue", "bars"],
            "outputs": {"verdicts": "verdicts"},
            "params": {**LOOSE_RISK_LIMITS, **risk},
        },
        {
            "name": "execution",
            "cls": "actors.execution:ExecutionActor",
            "inputs": ["verdicts", "venue"],
            "outputs": {"orders": "orders"},
            # every order kept, so that the books can be checked against all of them
            "params": {"retain_done": 4096},
        },
        {
            "name": "journal",
            "cls": "actors.journal:JournalActor",
            "inputs": list(JOURNALED_STREAMS),
            "full_policy": "drop",
            "params": {"path": str(journal_path(tmp))},
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
        {"name": "audit", "actors": ["journal"], "cores": [0], "wait": "backoff"},
    ]
    config["supervisors"] = [
        {"name": "root", "children": ["audit", "market", "hot"], "max_restarts": 10, "period_s": 60}
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
        "intents": ["risk", "journal"],
        "verdicts": ["execution", "journal"],
        "orders": ["venue", "journal"],
        "venue": ["execution", "risk", "journal"],
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


def journal_path(tmp: Path) -> Path:
    return tmp / "journal.sqlite"


@dataclass
class Journaled:
    """What the journal holds, by type: only committed rows, each message once."""

    intents: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    seqs: dict[str, list[int]] = field(default_factory=dict)
    """Per stream, the seqs journaled, in order."""


def journaled(tmp: Path, path: Path | None = None) -> Journaled:
    """The journal of the pipeline in `tmp` (or the one at `path`)."""
    out = Journaled()
    path = path or journal_path(tmp)
    if not path.exists():
        return out
    lists = {
        "TradeIntent": out.intents,
        "RiskVerdict": out.verdicts,
        "OrderRequest": out.orders,
        "OrderAck": out.acks,
        "OrderReject": out.rejects,
        "Fill": out.fills,
    }
    db = connect(path)
    try:
        rows = select_records(db)
    finally:
        db.close()
    for row in sorted(rows, key=lambda row: (row["epoch"], row["stream"], row["seq"])):
        lists[row["type"]].append(row["payload"])
        out.seqs.setdefault(row["stream"], []).append(row["seq"])
    return out


def net_position(fills: list[dict[str, Any]]) -> int:
    return sum(f["side"] * f["quantity"] for f in fills)
