"""`grandmodel bench e2e`: the order path of the whole running system, measured.

Runs the real actors (feed -> bars -> tactical -> risk -> execution -> venue, fills
back to risk and execution) in a bench configuration: the market is paced fast and
bars close every 5 market seconds, so the baseline strategy trades many times a
second. The feed has core 0 (shared with the supervisor) and parks; the order path,
venue adapter included, has core 1 and waits by `--wait` (spin by default): on two
cores only one node can spin without being preempted. It waits for the target number
of orders at the venue, then reads the shared-memory HDR histograms the system recorded:

- `tick_to_order`: the feed published the tick that closed the bar -> the venue
  received the order (the venue records it from the order's origin_ns);
- `order_path`: tactical published the intent -> the venue received the order;
- every hop `<stream>-><actor>`: publish -> receipt, recorded by the consuming node.

The first `warmup` orders are subtracted (fresh processes, cold caches). Prints the
table, writes bench/results/e2e.json and bench/results/e2e.png (latency by
percentile), and exits 1 when the p99 of either span is >= 500 us.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.report import RESULTS_DIR, SuiteReport, forget_run, wait_for
from kernel.latency import Histogram, read_histograms

BUDGET_US = 500.0
TARGET_US = 250.0
SPANS = ("venue.tick_to_order", "venue.order_path")
HOPS = (
    ("feed->bars", "node.hot.ticks->bars"),
    ("bars->tactical", "node.hot.bars->tactical"),
    ("tactical->risk", "node.hot.intents->risk"),
    ("risk->execution", "node.hot.verdicts->execution"),
    ("execution->venue", "node.hot.orders->venue"),
)


def bench_config(name: str, log: Path, ticks_per_s: float, wait: str) -> str:
    """The default topology, tuned to trade often: 5 s bars, a fast market, loose limits,
    fixed-fractional sizing on a very large account (a coin-flip strategy paying spread
    and fees would otherwise be sized to zero by Kelly or by its shrinking equity)."""
    return f"""
name = "{name}"
messages = "actors.messages:AnyMessage"

[logging]
level = "warning"
file = "{log}"

[zygote]
preload = ["numpy", "numba", "msgspec", "uvloop", "orjson"]

[[streams]]
name = "ticks"
capacity = 8388608
[[streams]]
name = "bars"
capacity = 1048576
[[streams]]
name = "intents"
capacity = 1048576
[[streams]]
name = "verdicts"
capacity = 1048576
[[streams]]
name = "orders"
capacity = 1048576
[[streams]]
name = "venue"
capacity = 4194304
[[streams]]
name = "risk_snapshots"
capacity = 262144
full_policy = "drop"

[[actors]]
name = "feed"
cls = "actors.feed:FeedActor"
outputs = {{ ticks = "ticks" }}
params = {{ pace = "xN", speed = {ticks_per_s}, seed = 11 }}
[[actors]]
name = "venue"
cls = "actors.venue:VenueActor"
inputs = ["ticks", "orders"]
outputs = {{ reports = "venue" }}
[[actors]]
name = "bars"
cls = "actors.bars:BarsActor"
inputs = ["ticks"]
outputs = {{ bars = "bars" }}
params = {{ timeframes = [5] }}
[[actors]]
name = "tactical"
cls = "actors.tactical:TacticalActor"
inputs = ["bars"]
outputs = {{ intents = "intents" }}
params = {{ timeframe_s = 5, threshold_pct = 0.002, min_atr_fraction = 0.0 }}
[[actors]]
name = "risk"
cls = "actors.risk:RiskActor"
inputs = ["intents", "venue", "bars"]
outputs = {{ verdicts = "verdicts", snapshots = "risk_snapshots" }}
[actors.params]
max_orders_per_minute = 1000000
daily_loss_limit = 1e12
max_notional = 1e12
max_position = 1000
max_order_size = 5
price_band_fraction = 0.5
min_kelly_trades = 1000000000
initial_equity = 1e12
[[actors]]
name = "execution"
cls = "actors.execution:ExecutionActor"
inputs = ["verdicts", "venue"]
outputs = {{ orders = "orders" }}

[[nodes]]
name = "market"
actors = ["feed"]
cores = [0]
wait = "park"
[[nodes]]
name = "hot"
actors = ["bars", "tactical", "risk", "execution", "venue"]
cores = [{1 % (os.cpu_count() or 1)}]
wait = "{wait}"

[[supervisors]]
name = "root"
children = ["market", "hot"]
"""


def _orders(system: str) -> int:
    histogram = read_histograms(system).get("venue.tick_to_order")
    return histogram.count if histogram else 0


def _since(after: dict[str, Histogram], before: dict[str, Histogram]) -> dict[str, Histogram]:
    """Counts recorded after the warm-up (the maximum stays the run's, conservatively)."""
    out = {}
    for name, histogram in after.items():
        earlier = before.get(name)
        counts = histogram.counts - (earlier.counts if earlier else 0)
        out[name] = Histogram(name, counts, histogram.max_ns)
    return out


def _plot(histograms: dict[str, Histogram], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    quantiles = np.array([50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99])
    figure, axis = plt.subplots(figsize=(8, 5))
    for name in (*SPANS, *(series for _, series in HOPS)):
        histogram = histograms.get(name)
        if histogram is None or histogram.count == 0:
            continue
        values = [histogram.percentile(q) / 1e3 for q in quantiles]
        axis.plot(1 / (1 - quantiles / 100), values, marker="o", label=name)
    axis.axhline(BUDGET_US, color="red", linestyle="--", label="budget 500 us")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(1 / (1 - quantiles / 100))
    axis.set_xticklabels([f"p{q:g}" for q in quantiles])
    axis.set_ylabel("latency (us)")
    axis.set_title("GrandModel order path latency by percentile")
    axis.legend(fontsize=7)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grandmodel bench e2e", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 orders")
    parser.add_argument("--no-enforce", action="store_true", help="report, never fail")
    parser.add_argument("--orders", type=int, help="orders to measure (default 20,000)")
    parser.add_argument("--ticks-per-s", type=float, default=2500.0, help="market pace")
    parser.add_argument(
        "--wait",
        default="spin",
        choices=["spin", "backoff", "park"],
        help="wait strategy of the hot node (core 1); the feed's node parks on core 0",
    )
    args = parser.parse_args(argv)
    orders = args.orders or (1_000 if args.quick else 20_000)
    warmup = max(100, orders // 20)
    name = f"bench-e2e-{uuid.uuid4().hex[:6]}"
    report = SuiteReport("e2e")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "e2e.toml"
        config.write_text(bench_config(name, Path(tmp) / "run.jsonl", args.ticks_per_s, args.wait))
        system = subprocess.Popen(
            [sys.executable, "-m", "kernel.cli", "run", "--config", str(config)],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _orders(name) >= warmup, 120, "warm-up orders", system, 0.05)
            before = read_histograms(name)
            started = time.monotonic()
            wait_for(
                lambda: _orders(name) >= warmup + orders,
                30 + orders / 20,
                f"{orders} orders",
                system,
                0.05,
            )
            elapsed = time.monotonic() - started
            histograms = _since(read_histograms(name), before)
        finally:
            system.send_signal(signal.SIGTERM)
            system.wait(timeout=30)
            forget_run(name)
    for series in SPANS:
        report.add_histogram(series.split(".", 1)[1], histograms[series])
    for label, series in HOPS:
        if series in histograms and histograms[series].count:
            report.add_histogram(f"hop {label}", histograms[series])
    measured = histograms["venue.tick_to_order"].count
    report.add_throughput("orders-at-venue", measured, elapsed)
    for span in ("tick_to_order", "order_path"):
        report.budget_at_most(span, "p99", BUDGET_US)
    report.notes.append(
        f"{measured} orders after {warmup} warm-up orders, market at {args.ticks_per_s:g} "
        f"ticks/s, 5 s bars; the order path (bars to the venue adapter) runs in one node "
        f"waiting by {args.wait} on core 1, the feed in a parked node on core 0; target p99 "
        f"tick_to_order <= {TARGET_US:g} us"
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    _plot(histograms, RESULTS_DIR / "e2e.png")
    report.notes.append(f"plot: {RESULTS_DIR / 'e2e.png'}")
    return report.finish(enforce=not args.no_enforce)


if __name__ == "__main__":
    sys.exit(main())
