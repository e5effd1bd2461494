"""The decision layers in a running system (real processes, rings and files): features ->
strategic -> tactical -> risk -> execution -> venue trades on the synthetic market; a
version activated with `grandmodel models activate` while bars stream in is served
without a restart, journaled, and no bar goes undecided; no node process loads torch."""

import itertools
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from actors.journal.query import connect, select_records
from actors.policies import registry
from actors.policies.forward import tactical_shapes
from bench.chaos import LOOSE_RISK_LIMITS
from tests.helpers import wait_until
from tests.systems import REPO, RunningSystem, base_config, write_config

SESSION_TICKS = 4_680
"""Ticks of one ES session at a tick every 5 market seconds (09:30-16:00)."""
NEW_YORK = ZoneInfo("America/New_York")


def policy_config(tmp: Path, models: Path, sessions: int) -> dict[str, Any]:
    """The default pipeline's decision layers on one instrument, fast: a session of
    market a second or so."""
    config = base_config(
        tmp,
        messages="actors.messages:AnyMessage",
        delivery={"quarantine_file": str(tmp / "quarantine.jsonl")},
    )
    config["zygote"] = {"preload": ["numpy", "numba", "msgspec", "uvloop"]}
    streams = ["ticks", "bars", "features", "strategic", "intents", "decisions", "verdicts"]
    config["streams"] = [{"name": s, "capacity": 1 << 22} for s in [*streams, "orders", "venue"]]
    policy = {"symbols": ["ES"], "models_root": str(models), "poll_interval_s": 0.05}
    config["actors"] = [
        {
            "name": "feed",
            "cls": "actors.feed:FeedActor",
            "outputs": {"ticks": "ticks"},
            "params": {
                "pace": "xN",
                "speed": 20_000.0,
                "seed": 5,
                "symbols": ["ES"],
                "tick_interval_s": 5.0,
                # and a few ticks of the next session, which close the last bar
                "max_ticks": sessions * SESSION_TICKS + 10,
            },
        },
        {
            "name": "venue",
            "cls": "actors.venue:VenueActor",
            "inputs": ["ticks", "orders"],
            "outputs": {"reports": "venue"},
            "params": {"symbols": ["ES"]},
        },
        {
            "name": "bars",
            "cls": "actors.bars:BarsActor",
            "inputs": ["ticks"],
            "outputs": {"bars": "bars"},
            "params": {"timeframes": [300, 1800]},
        },
        {
            "name": "features",
            "cls": "actors.features:FeaturesActor",
            "inputs": ["bars"],
            "outputs": {"features": "features"},
            "params": {"symbols": ["ES"]},
        },
        {
            "name": "strategic",
            "cls": "actors.strategic:StrategicActor",
            "inputs": ["features"],
            "outputs": {"decisions": "strategic"},
            "params": policy,
        },
        {
            "name": "tactical",
            "cls": "actors.tactical:TacticalPolicyActor",
            "inputs": ["features", "strategic"],
            "outputs": {"intents": "intents", "decisions": "decisions"},
            "params": policy,
        },
        {
            "name": "risk",
            "cls": "actors.risk:RiskActor",
            "inputs": ["intents", "venue", "bars"],
            "outputs": {"verdicts": "verdicts"},
            "params": {**LOOSE_RISK_LIMITS, "symbols": ["ES"]},
        },
        {
            "name": "execution",
            "cls": "actors.execution:ExecutionActor",
            "inputs": ["verdicts", "venue"],
            "outputs": {"orders": "orders"},
            "params": {"symbols": ["ES"]},
        },
        {
            "name": "journal",
            "cls": "actors.journal:JournalActor",
            "inputs": ["strategic", "decisions", "intents", "verdicts", "orders", "venue"],
            "params": {"path": str(tmp / "journal.sqlite"), "symbols": ["ES"]},
        },
    ]
    config["nodes"] = [
        {"name": "market", "actors": ["feed", "venue"], "cores": [0], "wait": "park"},
        {"name": "strategy", "actors": ["strategic"], "cores": [0], "wait": "backoff"},
        {
            "name": "hot",
            "actors": ["bars", "features", "tactical", "risk", "execution"],
            "cores": [1],
            "wait": "park",
        },
        {"name": "audit", "actors": ["journal"], "cores": [0], "wait": "backoff"},
    ]
    config["supervisors"] = [
        {"name": "root", "children": ["audit", "market", "strategy", "hot"], "max_restarts": 3}
    ]
    return config


@pytest.fixture
def models(tmp_path) -> Path:
    """A copy of the shipped registry, plus a v2 of the tactical model (v1's weights a
    little perturbed: a different version that decides differently)."""
    root = tmp_path / "registry"
    shutil.copytree(registry.SHIPPED_ROOT, root)
    shipped = registry.load_version(root, "tactical", None, tactical_shapes())
    rng = np.random.default_rng(3)
    perturbed = {
        k: v * (1 + 0.05 * rng.standard_normal(v.shape)) for k, v in shipped.arrays.items()
    }
    metadata = {"created": "2026-12-04T10:00:00Z", "command": "test", "metrics": {}}
    registry.save_version(root, "tactical", "v2", perturbed, shipped.config, metadata)
    return root


def _journal(tmp: Path, types: tuple[str, ...]) -> list[dict[str, Any]]:
    path = tmp / "journal.sqlite"
    if not path.exists():
        return []
    db = connect(path)
    try:
        return select_records(db, types=types)
    finally:
        db.close()


def _tactical(tmp: Path) -> list[dict[str, Any]]:
    records = [r["payload"] for r in _journal(tmp, ("DecisionRecord",))]
    return [r for r in records if r["kind"] == 2]  # DecisionKind.TACTICAL


def _consecutive(earlier_ns: int, later_ns: int) -> bool:
    """The next 5-minute bar: 5 minutes later, or the next session's first."""
    if later_ns - earlier_ns == 300 * 10**9:
        return True
    close, opening = (datetime.fromtimestamp(t / 1e9, NEW_YORK) for t in (earlier_ns, later_ns))
    return (close.hour, close.minute, opening.hour, opening.minute) == (16, 0, 9, 35)


def test_the_decision_layers_trade_and_take_a_new_version_without_losing_a_bar(tmp_path, models):
    config = policy_config(tmp_path, models, sessions=9)
    path = write_config(tmp_path / "policies.toml", config)
    system = RunningSystem(path, config["name"], Path(config["logging"]["file"]))
    try:
        system.wait_running()
        strategic = lambda: _journal(tmp_path, ("StrategicDecision",))  # noqa: E731
        wait_until(lambda: len(strategic()) >= 10, 120, "strategic decisions in the journal")
        activated = subprocess.run(
            [
                sys.executable,
                "-m",
                "kernel.cli",
                "models",
                "--root",
                str(models),
                "activate",
                "tactical",
                "v2",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert activated.returncode == 0, activated.stderr
        wait_until(
            lambda: any(r["model_version"].startswith("tactical/v2@") for r in _tactical(tmp_path)),
            60,
            "decisions by the new version",
        )
        done = lambda: system.rows()["feed"]["msgs_out"] >= 9 * SESSION_TICKS  # noqa: E731
        wait_until(done, 120, "the whole market")
        last_bar = lambda: max((r["event_ns"] for r in _tactical(tmp_path)), default=0)  # noqa: E731
        end = datetime(2026, 1, 15, 16, 0, tzinfo=NEW_YORK).timestamp() * 1e9  # 9th session
        wait_until(lambda: last_bar() >= end, 60, "the last bar decided")
        for pid in {row["pid"] for row in system.rows().values()}:
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "libtorch" not in maps and "/numba/" in maps, f"node process {pid}"
    finally:
        system.terminate()
    decided = _tactical(tmp_path)
    bars = [r["event_ns"] for r in decided]
    assert bars == sorted(bars) and len(set(bars)) == len(bars)
    assert all(_consecutive(a, b) for a, b in itertools.pairwise(bars)), "a bar lost"
    versions = [r["model_version"].split("@")[0] for r in decided]
    switch = versions.index("tactical/v2")
    assert set(versions[:switch]) == {"tactical/v1"} and set(versions[switch:]) == {"tactical/v2"}
    swaps = [
        r["payload"]
        for r in _journal(tmp_path, ("DecisionRecord",))
        if r["payload"]["kind"] == 5  # DecisionKind.CONTROL
    ]
    assert len(swaps) == 1 and "-> tactical/v2@" in swaps[0]["reason"]
    followed = [r for r in decided if r["parent_id"]]
    assert followed, "tactical decisions should follow strategic ones once those come"
    assert _journal(tmp_path, ("TradeIntent",)) and _journal(tmp_path, ("Fill",))
