"""`grandmodel chaos` and `grandmodel bench chaos`: kill -9 the trading system's processes at
random moments, then prove that nothing was lost, done twice or booked differently.

The system is the shipped default topology (config/default.toml: the market, strategy,
hot, audit and web nodes, the shipped policies deciding) on an accelerated synthetic
market with bars every 5 and 30 market seconds, so that they decide often, and loose risk
limits. The kill schedule comes from `--seed` (which node, how long after the
previous recovery); where inside its work each process dies is up to the moment.

1. Start, wait until orders flow.
2. `--kills` times: pick a node, SIGKILL its process, wait until its replacement is ready
   (measured: kill -> ready, i.e. state restored, outbox re-sent, replay done, consuming).
   Kills are spaced so that at most half of the root supervisor's restart intensity
   (`--max-restarts` in `--period-s`, written into the run's config) is ever used: the
   run exercises recovery, not escalation.
3. Unless `--no-whole-tree`: kill -9 the whole process group (supervisor, zygote, every
   node) mid-trading and start again; the new start takes over the crashed run's rings
   and outboxes and continues it.
4. HALT trading through the kill-switch segment (every new intent is denied), wait until
   the order path's rings are drained and committed, stop cleanly.
5. Reconcile (actors/reconcile): the venue's account, the journal, the risk book and
   execution agree per symbol; every order got the venue's answer; no fill id was
   executed twice; every journaled stream has one row per message.

Prints kills survived, orders, fills, lost, duplicated, mismatched and missing journal
rows; exit status 1 on any of them (or when the system dies), 0 otherwise. The bench
suite runs 1,000 kills (`--quick`: 20) and adds the journal's write cost per row.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from actors.journal.store import JournalStore
from actors.messages import TradingState
from actors.reconcile.audit import Audit, reconcile
from actors.risk.killswitch import KillSwitch
from bench.report import SuiteReport, forget_run, wait_for
from config.loader import DEFAULT_CONFIG
from kernel.health import HealthTable, State
from kernel.topology import Topology
from kernel.wiring import load_system
from ringbuf import inspect_ring
from ringbuf.procs import is_alive

ORDER_PATH = ("intents", "verdicts", "orders", "venue")
"""The streams that must be drained before the books are compared."""
TRADE_OFTEN = {
    "bars": {"timeframes": [5]},
    "tactical": {"timeframe_s": 5, "threshold_pct": 0.002, "min_atr_fraction": 0.0},
}
"""Bars every 5 market seconds and a strategy that turns on small moves (with a fast
market: many orders a second)."""
DECIDE_OFTEN = {
    "bars": {"timeframes": [5, 30]},
    "features": {"tactical_timeframe_s": 5, "strategic_timeframe_s": 30},
}
"""The shipped decision layers on 5- and 30-second bars: a tactical decision every 5
market seconds, a strategic one every 30."""
LOOSE_RISK_LIMITS = {
    "max_orders_per_minute": 1_000_000,
    "daily_loss_limit": 1e12,
    "max_notional": 1e12,
    "max_net_notional": 1e12,
    "max_position": 1000,
    "max_order_size": 3,
    "price_band_fraction": 0.5,
    "min_kelly_trades": 10**9,
}
"""Risk limits that let the strategy trade (sizing stays fixed-fractional: Kelly would
size a coin-flip strategy to zero)."""
QUIET_BREAKERS = {
    "timeframe_s": 5,
    "max_drawdown_pct": 100.0,
    "max_consecutive_losses": 10**9,
    "var_limit": 1e15,
    "volatility_ratio_limit": 1e9,
    "correlation_shock": 3.0,
}
"""Circuit breakers that never trip (a correlation moves by 2 at most): the run tests
delivery, and a coin-flip strategy would halt itself within a minute (5 losses in a
row), leaving nothing to deliver."""


def chaos_config(workdir: Path, name: str, seed: int, max_restarts: int, period_s: float) -> dict:
    """The shipped default config, on a fast market that trades often, its files under
    `workdir`, the API on a free port, the root supervisor's intensity as given."""
    with DEFAULT_CONFIG.open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)
    config["name"] = name
    config["logging"] = {"level": "warning", "file": str(workdir / "run.jsonl")}
    config["delivery"] = {"quarantine_file": str(workdir / "quarantine.jsonl")}
    params = {
        **DECIDE_OFTEN,
        "feed": {"pace": "xN", "speed": 2000.0, "seed": seed},
        "risk": {**LOOSE_RISK_LIMITS, "initial_equity": 1e12},
        "journal": {"path": str(workdir / "journal.sqlite")},
        "monitor": QUIET_BREAKERS,
        "api": {
            "port": 0,
            "port_file": str(workdir / "api.port"),
            "journal_path": str(workdir / "journal.sqlite"),
        },
    }
    for actor in config["actors"]:
        actor["params"] = params.get(actor["name"], actor.get("params", {}))
    for supervisor in config["supervisors"]:
        if supervisor["name"] == config["root"]:
            supervisor["max_restarts"] = max_restarts
            supervisor["period_s"] = period_s
    return config


class ChaosRun:
    """One system under chaos: start it, kill its processes, settle it, reconcile it."""

    def __init__(self, config_path: Path, name: str) -> None:
        self.config_path = config_path
        self.name = name
        self.system: subprocess.Popen[bytes] | None = None
        self.health: HealthTable | None = None
        self.config = load_system(config_path).config
        self.topology = Topology(self.config)

    def start(self) -> None:
        self.system = subprocess.Popen(
            [sys.executable, "-m", "kernel.cli", "run", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the whole tree can be killed
        )
        wait_for(self._attached, 120, "the system's health table", self.system)
        wait_for(self._all_ready, 120, "every node running", self.system)

    def _attached(self) -> bool:
        try:
            table = HealthTable.attach(self.name)
        except (FileNotFoundError, ValueError):
            return False
        assert self.system is not None
        if table.owner.pid != self.system.pid:  # a table left by the crashed run
            table.close()
            return False
        self.health = table
        return True

    def rows(self) -> dict[str, dict[str, Any]]:
        assert self.health is not None
        return {row["actor"]: row for row in self.health.snapshot()}

    def _all_ready(self) -> bool:
        return all(
            row["state"] == State.RUNNING.name and row["ready"] for row in self.rows().values()
        )

    def orders(self) -> int:
        return int(self.rows()["execution"]["msgs_out"])

    def node_pid(self, node: str) -> int:
        actor = self.topology.nodes[node].actors[0]
        return int(self.rows()[actor]["pid"])

    def kill_node(self, node: str) -> float:
        """SIGKILL the node's process; ms until its replacement is ready."""
        actor = self.topology.nodes[node].actors[0]
        pid = self.node_pid(node)
        killed_at = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)

        def replaced() -> bool:
            row = self.rows()[actor]
            return row["pid"] not in (0, pid) and row["ready"] and row["state"] == "RUNNING"

        wait_for(replaced, 60, f"node {node} restarted", self.system)
        return (time.monotonic_ns() - killed_at) / 1e6

    def kill_tree(self) -> None:
        """kill -9 of the supervisor, the zygote and every node at once."""
        assert self.system is not None and self.health is not None
        pids = [row["pid"] for row in self.rows().values()]
        self.health.close()
        self.health = None
        os.killpg(self.system.pid, signal.SIGKILL)
        self.system.wait(timeout=30)
        wait_for(lambda: not any(is_alive(pid) for pid in pids), 30, "every process gone")

    def settle_and_stop(self) -> int:
        """HALT new trading, wait until the order path is drained and committed, stop."""
        with KillSwitch.open(self.name) as switch:
            switch.set_trading_state(TradingState.HALTED, "chaos", "end of the chaos run")
        rings = [ring.name for ring in self.topology.rings if ring.stream in ORDER_PATH]

        def drained() -> bool:
            stats = [inspect_ring(name) for name in rings]
            return all(s.depth_bytes == 0 and s.published == s.consumed for s in stats)

        wait_for(drained, 60, "the order path drained", self.system, poll_s=0.01)
        assert self.system is not None
        if self.health is not None:
            self.health.close()
            self.health = None
        self.system.send_signal(signal.SIGTERM)
        return self.system.wait(timeout=60)

    def reconcile(self) -> Audit:
        journal = next(a for a in self.config.actors if a.name == "journal")
        point_values = {i.symbol: i.point_value for i in self.config.instruments}
        streams = {stream: self.topology.producer_of[stream] for stream in journal.inputs}
        return reconcile(self.name, journal.params["path"], point_values, journaled=streams)

    def close(self) -> None:
        if self.health is not None:
            self.health.close()
        if self.system is not None and self.system.poll() is None:
            os.killpg(self.system.pid, signal.SIGKILL)
            self.system.wait(timeout=30)


def run_chaos(
    kills: int,
    seed: int,
    whole_tree: bool,
    max_restarts: int,
    period_s: float,
    workdir: Path,
    progress: bool = True,
) -> tuple[Audit, list[float], int]:
    """The chaos run of the module docstring: (audit, kill -> ready in ms, exit status of
    the clean stop)."""
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    config = chaos_config(workdir, name, seed, max_restarts, period_s)
    config_path = workdir / "chaos.toml"
    config_path.write_bytes(msgspec.toml.encode(config))
    rng = random.Random(seed)
    # At most half of the intensity in any window: kills spaced by 2 * period / max.
    spacing_s = 2.0 * period_s / max_restarts
    run = ChaosRun(config_path, name)
    recoveries: list[float] = []
    try:
        run.start()
        wait_for(lambda: run.orders() > 10, 120, "orders flowing", run.system, poll_s=0.01)
        nodes = list(run.topology.nodes)
        last_kill = 0.0
        for n in range(kills):
            pause = max(0.0, last_kill + spacing_s - time.monotonic()) + rng.uniform(0, 0.2)
            time.sleep(pause)  # the schedule itself: a random moment, not a condition
            node = rng.choice(nodes)
            last_kill = time.monotonic()
            recoveries.append(run.kill_node(node))
            if progress:
                print(f"\rkill {n + 1}/{kills}: {node:<8} back in {recoveries[-1]:6.1f} ms", end="")
        if progress and kills:
            print()
        if whole_tree:
            orders = run.orders()
            run.kill_tree()
            run.start()
            wait_for(lambda: run.orders() > 10, 120, "orders after the restart", run.system)
            if progress:
                print(f"whole tree killed after {orders} orders of its run, restarted")
        status = run.settle_and_stop()
        return run.reconcile(), recoveries, status
    finally:
        run.close()
        forget_run(name)


def summary(audit: Audit, kills: int, status: int) -> list[str]:
    return [
        f"kills survived: {kills}",
        f"clean stop: {'yes' if status == 0 else f'no (exit {status})'}",
        f"orders: {audit.orders}",
        f"fills: {audit.fills}",
        f"lost: {len(audit.lost)} {audit.lost[:5]}",
        f"duplicated: {len(audit.duplicated)} {audit.duplicated[:5]}",
        f"mismatched: {len(audit.mismatches)}",
        *(f"  {mismatch}" for mismatch in audit.mismatches),
        f"missing journal rows: {len(audit.missing_rows)}",
        *(f"  {missing}" for missing in audit.missing_rows),
    ]


def _parser(prog: str, kills: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=kills, help=f"default {kills}")
    parser.add_argument("--seed", type=int, default=1, help="the kill schedule and the market")
    parser.add_argument("--no-whole-tree", action="store_true", help="skip the whole-tree kill")
    parser.add_argument("--max-restarts", type=int, default=40, help="root intensity (default 40)")
    parser.add_argument("--period-s", type=float, default=10.0, help="in this window (default 10)")
    parser.add_argument(
        "--keep", metavar="DIR", help="run in DIR and keep its files (journal, log)"
    )
    return parser


def _run(args: argparse.Namespace) -> tuple[Audit, list[float], int]:
    if args.max_restarts < 2 or args.period_s <= 0 or args.kills < 0:
        raise SystemExit("grandmodel chaos: --max-restarts >= 2, --period-s > 0, --kills >= 0")
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        return run_chaos(
            args.kills, args.seed, not args.no_whole_tree, args.max_restarts, args.period_s, workdir
        )
    with tempfile.TemporaryDirectory(prefix="grandmodel-chaos-") as tmp:
        return run_chaos(
            args.kills,
            args.seed,
            not args.no_whole_tree,
            args.max_restarts,
            args.period_s,
            Path(tmp),
        )


def command(argv: list[str] | None = None) -> int:
    """`grandmodel chaos`."""
    args = _parser("grandmodel chaos", 20).parse_args(argv)
    audit, recoveries, status = _run(args)
    for line in summary(audit, len(recoveries), status):
        print(line)
    if recoveries:
        p50, p99 = np.percentile(recoveries, [50, 99])
        print(f"kill -> ready: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return 0 if audit.clean and status == 0 else 1


def journal_write_cost(rows: int = 200_000, batch: int = 256) -> tuple[np.ndarray, float]:
    """Per-row cost (us) of `JournalStore.write` in batches of `batch`, and rows/s."""
    payload = '{"seq": 1, "symbol": "ES", "price": 4150.25, "quantity": 2}'
    costs = []
    with tempfile.TemporaryDirectory() as tmp:
        store = JournalStore(Path(tmp) / "j.sqlite")
        started = time.perf_counter()
        for first in range(0, rows, batch):
            chunk = [
                (0, "orders", seq, "OrderRequest", seq, seq, "ES", f"O-{seq}", f"D-{seq}", payload)
                for seq in range(first + 1, first + batch + 1)
            ]
            began = time.perf_counter_ns()
            store.write(chunk)
            costs.append((time.perf_counter_ns() - began) / 1e3 / batch)
        rate = rows / (time.perf_counter() - started)
        store.close()
    return np.array(costs), rate


def main(argv: list[str] | None = None) -> int:
    """`grandmodel bench chaos`: 1,000 kills (`--quick`: 20), reported as a suite."""
    parser = _parser("grandmodel bench chaos", 1000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 kills")
    parser.add_argument("--no-enforce", action="store_true", help="report, never fail")
    args = parser.parse_args(argv)
    if args.quick:
        args.kills = min(args.kills, 20)
    audit, recoveries, status = _run(args)
    report = SuiteReport("chaos")
    if recoveries:
        report.add_samples("kill9-to-ready", np.array(recoveries), unit="ms")
        report.budget_at_most("kill9-to-ready", "p99", 500.0)
    faults = len(audit.lost) + len(audit.duplicated) + len(audit.mismatches)
    faults += len(audit.missing_rows) + (status != 0)
    report.add_samples("lost+duplicated+mismatched", np.array([float(faults)]), unit="count")
    report.budget_at_most("lost+duplicated+mismatched", "max", 0.0)
    costs, rate = journal_write_cost()
    report.add_samples("journal write per row (batches of 256)", costs, throughput_per_s=rate)
    report.notes += summary(audit, len(recoveries), status)
    report.notes.append(
        "kill9-to-ready: SIGKILL of a random node -> its replacement ready (state restored, "
        "outbox re-sent, replay done); the journal write cost is JournalStore.write on a "
        "temporary file (WAL, synchronous=NORMAL)"
    )
    return report.finish(enforce=not args.no_enforce)


if __name__ == "__main__":
    sys.exit(command())
