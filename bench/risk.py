"""`grandmodel bench risk`: what the risk controls cost.

- `gate check`: one pre-trade check (`RiskGate.check`) of an approved intent, as the risk
  actor runs it on the order path, the default limits widened so that every intent is
  approved (the longest path through the gate: sizing, every room computed);
- `monte carlo VaR 10k paths x 5 instruments`: `var.monte_carlo` with Student-t draws, as
  the monitor runs it after each fill and bar;
- `monitor estimate (4 methods x 2 levels)`: everything the monitor computes for one
  snapshot of 5 instruments with 252 periods of history;
- `kill switch engage -> seen by another process`: a process spinning on the switch's
  word (as the gate, execution and the venue adapter read it) sees the engage this long
  after `engage` began. Working orders to cancel do not exist yet: the simulated venue
  executes IOC orders at once, nothing rests there;
- `GET /risk, 200 concurrent clients`: the API actor in a process of its own, a snapshot
  with five positions, 200 clients in this process each requesting /risk in a loop:
  latency per request and requests per second.

Budgets: gate check p99 <= 20 us, Monte Carlo VaR p99 <= 5 ms, engage seen p99 <= 10 ms.
Prints p50/p90/p99/p99.9/max, writes bench/results/risk.json, exits 1 when a budget
breaks (`--no-enforce`: report only).
"""

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from itertools import count
from pathlib import Path

import aiohttp
import msgspec
import numpy as np

from actors.messages import Bar, Direction, PositionSnapshot, TradeIntent
from actors.risk.book import RiskBook
from actors.risk.gate import RiskGate
from actors.risk.killswitch import KillSwitch
from actors.risk.limits import RiskLimits
from actors.risk_monitor import var
from bench.report import SuiteReport, forget_run

GATE_BUDGET_US = 20.0
MONTE_CARLO_BUDGET_US = 5_000.0
ENGAGE_SEEN_BUDGET_US = 10_000.0
INSTRUMENTS = 5


def _gate_checks(system: str, checks: int) -> np.ndarray:
    limits = msgspec.convert(
        {
            "max_position": 10**9,
            "max_orders_per_minute": 10**9,
            "max_notional": 1e15,
            "max_net_notional": 1e15,
            "max_order_size": 5,
        },
        RiskLimits,
    )
    book = RiskBook(limits.initial_equity, limits.point_values())
    book.on_bar(
        Bar(
            symbol="ES",
            timeframe_s=300,
            start_ns=0,
            end_ns=1,
            open=5000.0,
            high=5000.0,
            low=5000.0,
            close=5000.0,
            volume=1,
            atr=3.0,
        )
    )
    ids = count()
    with KillSwitch.open(system) as switch:
        gate = RiskGate(limits, book, switch)
        samples = np.empty(checks)
        for i in range(checks):
            side = Direction.LONG if i % 2 else Direction.SHORT
            intent = TradeIntent(
                intent_id=f"bench-{next(ids)}",
                symbol="ES",
                direction=side,
                score=0.8,
                confidence=0.7,
                price=5000.0,
                atr=3.0,
                stop_price=5000.0 - side * 6.0,
                target_price=5000.0 + side * 9.0,
                bar_end_ns=1,
            )
            started = time.perf_counter_ns()
            verdict = gate.check(intent)
            samples[i] = time.perf_counter_ns() - started
            if not verdict.approved:
                raise RuntimeError(f"the bench's intents must be approved: {verdict}")
    return samples / 1e3


def _covariance(rng: np.random.Generator) -> np.ndarray:
    shocks = rng.standard_normal((500, INSTRUMENTS)) @ rng.standard_normal((INSTRUMENTS,) * 2)
    return np.cov(shocks.T) * 1e-6


def _monte_carlo(calls: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    covariance = _covariance(rng)
    exposures = rng.normal(0, 200_000.0, INSTRUMENTS)
    samples = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter_ns()
        var.monte_carlo(exposures, covariance, 0.99, 252, rng, 10_000, 5.0)
        samples[i] = time.perf_counter_ns() - started
    return samples / 1e3


def _monitor_estimates(calls: int) -> np.ndarray:
    rng = np.random.default_rng(2)
    covariance = _covariance(rng)
    history = rng.multivariate_normal(np.zeros(INSTRUMENTS), covariance, 252)
    exposures = rng.normal(0, 200_000.0, INSTRUMENTS)
    samples = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter_ns()
        for confidence in (0.95, 0.99):
            var.parametric(exposures, covariance, confidence, 252)
            var.historical(exposures, history, confidence)
            var.filtered_historical(exposures, history, confidence)
            var.monte_carlo(exposures, covariance, confidence, 252, rng, 10_000, 5.0)
        samples[i] = time.perf_counter_ns() - started
    return samples / 1e3


def _watch_switch(
    system: str, ready: "multiprocessing.Event", seen: "multiprocessing.Queue", rounds: int
) -> None:
    """Spin on the switch's word; report when each engage became visible here."""
    with KillSwitch.open(system) as switch:
        for _ in range(rounds):
            ready.set()
            while not switch.engaged:
                pass
            seen.put(time.monotonic_ns())
            while switch.engaged:
                pass


def _engage_seen(system: str, rounds: int) -> np.ndarray:
    context = multiprocessing.get_context("spawn")
    ready, seen = context.Event(), context.Queue()
    watcher = context.Process(target=_watch_switch, args=(system, ready, seen, rounds))
    watcher.start()
    samples = np.empty(rounds)
    try:
        with KillSwitch.open(system) as switch:
            for i in range(rounds):
                if not ready.wait(30):
                    raise RuntimeError("the watching process did not start")
                ready.clear()
                started = time.monotonic_ns()
                switch.engage("bench", "bench")
                samples[i] = seen.get(timeout=30) - started
                switch.reset("bench")
    finally:
        watcher.join(30)
    return samples / 1e3


def _serve_api(system: str, port_file: str) -> None:
    """The API actor with a five-position snapshot, until terminated."""
    from actors.api import ApiActor
    from actors.messages import RiskSnapshot, TradingState
    from kernel.actor import ActorContext

    async def serve() -> None:
        params = ApiActor.parse_params({"port": 0, "port_file": port_file})
        context = ActorContext(
            name="api",
            node="bench",
            outputs={},
            set_timer=lambda actor, timer, interval, repeat: None,
            cancel_timer=lambda actor, timer: None,
            spawn=lambda actor, coro: asyncio.get_running_loop().create_task(coro),
            system=system,
        )
        actor = ApiActor(params, context)
        await actor.on_start()
        actor.on_message(
            RiskSnapshot(
                trading_state=TradingState.ACTIVE,
                kill_switch=False,
                equity=1e6,
                daily_pnl=0.0,
                drawdown_pct=0.0,
                gross_notional=0.0,
                net_position=0,
                var_95=1.0,
                var_99=2.0,
                es_95=1.5,
                es_99=2.5,
                event_ns=1,
            )
        )
        for k in range(INSTRUMENTS):
            actor.on_message(
                PositionSnapshot(
                    symbol=f"S{k}",
                    quantity=k,
                    avg_price=100.0,
                    mark_price=101.0,
                    realized_pnl=0.0,
                    unrealized_pnl=float(k),
                    event_ns=1,
                )
            )
        await asyncio.Event().wait()

    asyncio.run(serve())


async def _hammer(port: int, clients: int, requests: int) -> tuple[np.ndarray, float]:
    latencies: list[int] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:

        async def client(n: int) -> None:
            for _ in range(n):
                started = time.perf_counter_ns()
                async with http.get("/risk") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"/risk answered {response.status}")
                latencies.append(time.perf_counter_ns() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client(requests // clients) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return np.array(latencies) / 1e3, len(latencies) / elapsed


def _api_load(system: str, clients: int, requests: int) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "api.port"
        context = multiprocessing.get_context("spawn")
        server = context.Process(target=_serve_api, args=(system, str(port_file)))
        server.start()
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists():
                if time.monotonic() > deadline or not server.is_alive():
                    raise RuntimeError("the API process did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            return asyncio.run(_hammer(port, clients, requests))
        finally:
            server.terminate()
            server.join(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grandmodel bench risk", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--no-enforce", action="store_true", help="report, never fail")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    report = SuiteReport("risk")
    system = f"bench-risk-{uuid.uuid4().hex[:6]}"
    try:
        report.add_samples("gate check", _gate_checks(system, int(50_000 * scale)))
        report.budget_at_most("gate check", "p99", GATE_BUDGET_US)
        name = "monte carlo VaR 10k paths x 5 instruments"
        report.add_samples(name, _monte_carlo(int(500 * scale)))
        report.budget_at_most(name, "p99", MONTE_CARLO_BUDGET_US)
        report.add_samples(
            "monitor estimate (4 methods x 2 levels)", _monitor_estimates(int(200 * scale))
        )
        name = "kill switch engage -> seen by another process"
        report.add_samples(name, _engage_seen(system, int(200 * scale)))
        report.budget_at_most(name, "p99", ENGAGE_SEEN_BUDGET_US)
        latencies, rate = _api_load(system, 200, int(20_000 * scale))
        report.add_samples(
            "GET /risk, 200 concurrent clients", latencies, throughput_per_s=round(rate)
        )
    finally:
        forget_run(system)
    report.notes.append(
        "no working order rests at the simulated venue yet (IOC orders), so engage -> "
        "last working order cancelled has nothing to measure: engage -> seen is when every "
        "stage stops new orders"
    )
    report.notes.append(f"{os.cpu_count()} cpus; clients and server share them")
    return report.finish(enforce=not args.no_enforce)
