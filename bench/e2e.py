"""`grandmodel bench e2e`: the order path of the whole running system, measured.

Runs the real actors (feed -> bars -> tactical -> risk -> execution -> venue, fills
back to risk and execution) in a bench configuration: the market is paced fast and
bars close every 5 market seconds, so the baseline strategy trades many times a
second. The feed has core 0 (shared with the supervisor and this process) and parks;
the order path, venue adapter included, has core 1 and waits by `--wait` (spin by
default): on two cores only one node can spin without being preempted. It waits for
the target number of orders at the venue, then reads the shared-memory HDR histograms
the system recorded (the first `warmup` orders are subtracted: fresh processes, cold
caches):

- `tick_to_order`: the feed published the tick that closed the bar -> the venue
  received the order (the venue records it from the order's origin_ns);
- `order_path`: tactical published the intent -> the venue received the order;
- `tick_to_submit`: the same tick -> execution published the order (its stamp): where
  NautilusTrader's reported span ends (its ExecutionEngine handing the order to the
  execution client), so the like-for-like figure beside the peer; tick_to_order adds the
  hop to the simulated venue and the venue's handling of the tick before the order;
- `stage ...`: where tick_to_order goes. For every order it is exactly the sum of the
  hops (`a->b`: publish stamp -> the consumer's handler is handed the message: encode,
  outbox, ring write, wake-up, waiting behind other work, decode) and of each handler's
  time until it publishes (`x until publish`: the actor's own work for that message);
- `detail ...`: what the stages are made of and what else competes for the node:
  `publish s` (stamp -> every ring written), `handle s->a` (a whole handler run, e.g. the
  venue's tick handling that the order waits behind), commits, idle work (the tactical
  policy's preparation of its next decision), keep warm (the tactical policy reading
  its weights back into the caches while the node spins idle) and garbage collections.

With `--journal` the journal runs too, as in the shipped topology (its own node on core
0, fed by drop rings), so that its cost to the order path shows against a run without it.
With `--runs N` it measures N consecutive full runs, each held to the budgets. Unless
`--no-peer`, NautilusTrader (extra `peers`) runs the equivalent strategy on the same
number of ticks and orders in the same invocation (bench/peers/nautilus.py) and its
tick -> order submitted span is reported beside ours. `--load` sweeps the market rate
instead and writes the latency-versus-load curve. `--policy` puts the shipped decision
layers on the path instead of the baseline rule (features, the tactical policy, the
strategic layer beside; the model's own cost as `stage tactical model`). Prints the
table, writes bench/results/e2e.json and e2e.png (latency by percentile; e2e-policy.*
with `--policy`) or e2e-load.*, and exits 1 when a budget breaks: p99 < 500 us for both
spans and p99.9 < 1 ms for tick_to_order in every run; with `--load`, p99 < 500 us
sustained at 20,000 ticks/s or more.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR, Case, SuiteReport, forget_run, wait_for
from config.loader import load_config
from kernel.latency import Histogram, read_histograms
from kernel.system import keep_off_spinning_cores

BUDGET_US = 500.0
BUDGET_P999_US = 1000.0
SUSTAINED_TICKS_PER_S = 20_000.0
LOAD_RATES = [2_500.0, 5_000.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0]
TICKS_SERIES = "node.hot.ticks->bars"
SPANS = ("venue.tick_to_order", "venue.order_path")
STAGES = (
    # (label, series): in order along tick_to_order, which is exactly their sum per order
    ("feed->bars", "node.hot.ticks->bars"),
    ("bars until publish", "node.hot.handler until publish bars"),
    ("bars->tactical", "node.hot.bars->tactical"),
    ("tactical until publish", "node.hot.handler until publish intents"),
    ("tactical->risk", "node.hot.intents->risk"),
    ("risk until publish", "node.hot.handler until publish verdicts"),
    ("risk->execution", "node.hot.verdicts->execution"),
    ("execution until publish", "node.hot.handler until publish orders"),
    ("execution->venue", "node.hot.orders->venue"),
)
POLICY_STAGES = (
    # the same with the decision layers (`--policy`): features and the tactical policy
    ("feed->bars", "node.hot.ticks->bars"),
    ("bars until publish", "node.hot.handler until publish bars"),
    ("bars->features", "node.hot.bars->features"),
    ("features until publish", "node.hot.handler until publish features"),
    ("features->tactical", "node.hot.features->tactical"),
    ("tactical until publish", "node.hot.handler until publish intents"),
    *STAGES[4:],
)
MODEL_STAGE = ("tactical model", "tactical.decide")
"""The tactical policy's own cost (forward pass and decision rule), within `tactical until
publish`."""
DETAILS = (
    # what the stages are made of, and what else the nodes spend time on
    ("publish ticks", "node.market.publish ticks"),
    ("publish bars", "node.hot.publish bars"),
    ("publish features", "node.hot.publish features"),
    ("publish intents", "node.hot.publish intents"),
    ("publish verdicts", "node.hot.publish verdicts"),
    ("publish orders", "node.hot.publish orders"),
    ("handle ticks->bars", "node.hot.handle ticks->bars"),
    ("handle ticks->venue", "node.hot.handle ticks->venue"),
    ("handle bars->risk", "node.hot.handle bars->risk"),
    ("handle venue->risk", "node.hot.handle venue->risk"),
    ("handle venue->execution", "node.hot.handle venue->execution"),
    ("hot commit", "node.hot.commit"),
    ("hot idle work", "node.hot.idle work"),
    ("hot keep warm", "node.hot.keep warm"),
    ("hot gc pause", "node.hot.gc pause"),
    ("market commit", "node.market.commit"),
    ("market gc pause", "node.market.gc pause"),
)


@dataclass(frozen=True)
class BenchInstrument:
    symbol: str
    tick_size: float
    point_value: float
    start_price: float
    volatility_scale: float


INSTRUMENTS = (
    BenchInstrument("ES", 0.25, 50.0, 4150.0, 1.0),
    BenchInstrument("NQ", 0.25, 20.0, 14500.0, 1.3),
    BenchInstrument("YM", 1.0, 5.0, 38000.0, 0.9),
    BenchInstrument("RTY", 0.1, 50.0, 2000.0, 1.4),
)
"""The equity-index futures a run trades, the first `--instruments` of them."""
CORRELATION = (
    (1.0, 0.85, 0.9, 0.8),
    (0.85, 1.0, 0.75, 0.7),
    (0.9, 0.75, 1.0, 0.75),
    (0.8, 0.7, 0.75, 1.0),
)
"""Their shocks' correlation (positive definite, smallest eigenvalue 0.07)."""


def _market(count: int, ticks_per_s: float) -> tuple[str, str]:
    """The registry of the first `count` instruments and the feed's params: the same
    total tick rate through the tree whatever the count (each steps at 1/count of it)."""
    chosen = INSTRUMENTS[:count]
    registry = "".join(
        f"""
[[instruments]]
symbol = "{i.symbol}"
tick_size = {i.tick_size}
point_value = {i.point_value}
"""
        for i in chosen
    )
    symbols = ", ".join(f'"{i.symbol}"' for i in chosen)
    rows = ", ".join(
        "[" + ", ".join(str(value) for value in row[:count]) + "]" for row in CORRELATION[:count]
    )
    models = ", ".join(
        f"{i.symbol} = {{ start_price = {i.start_price}, volatility_scale = {i.volatility_scale} }}"
        for i in chosen
    )
    feed = f"""
[[actors]]
name = "feed"
cls = "actors.feed:FeedActor"
outputs = {{ ticks = "ticks" }}
[actors.params]
pace = "xN"
speed = {ticks_per_s / count}
seed = 11
symbols = [{symbols}]
correlation = [{rows}]
models = {{ {models} }}
"""
    return registry, feed


def bench_config(
    name: str,
    log: Path,
    ticks_per_s: float,
    wait: str,
    journal: Path | None = None,
    instruments: int = 1,
    policy: bool = False,
    shards: int = 0,
) -> str:
    """The default topology, tuned to trade often: 5 s bars, a fast market of
    `instruments` correlated index futures (`INSTRUMENTS`) at `ticks_per_s` in all, loose
    limits, fixed-fractional sizing on a very large account (a coin-flip strategy paying
    spread and fees would otherwise be sized to zero by Kelly or by its shrinking equity).
    With `journal`, the shipped journal too (its own node on core 0, drop rings). With
    `policy`, the shipped decision layers decide instead of the baseline rule: features
    and the tactical policy on the order path (5 s bars), the strategic layer on 30 s bars
    in a node of its own on core 0. With `shards`, the layout of config/eight_core.toml
    (`shard_layout`) instead of one hot node."""
    registry, feed = _market(instruments, ticks_per_s)
    symbols = [instrument.symbol for instrument in INSTRUMENTS[:instruments]]
    groups: dict[str, list[str] | None] = (
        dict(_shard_groups(symbols, shards)) if shards else {"": None}
    )
    per_symbol = "".join(
        _decision_actors(suffix, group, policy) for suffix, group in groups.items()
    )
    streams = "".join(_decision_streams(suffix, policy) for suffix in groups)
    intents = [f"intents{suffix}" for suffix in groups]
    bars = [f"bars{suffix}" for suffix in groups]
    strategic = (
        f"""
[[actors]]
name = "strategic"
cls = "actors.strategic:StrategicActor"
inputs = {json.dumps([f"features{suffix}" for suffix in groups])}
outputs = {{ decisions = "strategic" }}
[[streams]]
name = "strategic"
capacity = 1048576
[[nodes]]
name = "strategy"
actors = ["strategic"]
cores = [0]
wait = "backoff"
"""
        if policy
        else ""
    )
    audit = (
        f"""
[[actors]]
name = "journal"
cls = "actors.journal:JournalActor"
inputs = {json.dumps([*intents, "verdicts", "orders", "venue"])}
full_policy = "drop"
params = {{ path = "{journal}" }}
[[nodes]]
name = "audit"
actors = ["journal"]
cores = [0]
wait = "backoff"
"""
        if journal is not None
        else ""
    )
    nodes, placed = shard_layout(groups, wait, policy) if shards else _one_hot_node(policy, wait)
    children = ["audit"] if journal is not None else []
    children += ["strategy"] if policy else []
    children += placed
    return f"""
name = "{name}"
messages = "actors.messages:AnyMessage"
{registry}
[logging]
level = "warning"
file = "{log}"

[zygote]
preload = ["numpy", "numba", "msgspec", "uvloop", "orjson"]

[[streams]]
name = "ticks"
capacity = 8388608
{streams}
[[streams]]
name = "verdicts"
capacity = 1048576
[[streams]]
name = "orders"
capacity = 1048576
[[streams]]
name = "venue"
capacity = 4194304

{feed}
[[actors]]
name = "venue"
cls = "actors.venue:VenueActor"
inputs = ["ticks", "orders"]
outputs = {{ reports = "venue" }}
{per_symbol}{strategic}
[[actors]]
name = "risk"
cls = "actors.risk:RiskActor"
inputs = {json.dumps([*intents, "venue", *bars])}
outputs = {{ verdicts = "verdicts" }}
[actors.params]
max_orders_per_minute = 1000000
daily_loss_limit = 1e12
max_notional = 1e12
max_net_notional = 1e12
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
{nodes}{audit}
[[supervisors]]
name = "root"
children = {json.dumps(children)}
"""


PORTFOLIO_STAGES = ("risk", "execution", "venue")
"""The stages that see every symbol: one of each whatever the sharding."""


def shard_cores_needed(shards: int) -> int:
    """Cores the sharded layout pins: core 0 for housekeeping, then the feed, the
    shards and the portfolio stages one core each."""
    return 2 + shards + len(PORTFOLIO_STAGES)


def _shard_groups(symbols: list[str], shards: int) -> dict[str, list[str]]:
    """The symbols split into at most `shards` contiguous groups as even as can be, keyed
    by the suffix of their actors and streams (`_0`, `_1`, ...)."""
    count = min(shards, len(symbols))
    base, extra = divmod(len(symbols), count)
    bounds = [k * base + min(k, extra) for k in range(count + 1)]
    return {f"_{k}": symbols[bounds[k] : bounds[k + 1]] for k in range(count)}


def shard_layout(
    groups: dict[str, list[str] | None], wait: str, policy: bool
) -> tuple[str, list[str]]:
    """The nodes of config/eight_core.toml: housekeeping (supervisor, strategic layer,
    journal, this process) on core 0, the feed on core 1, each shard's per-symbol stages
    (bars, features, tactical) on a core of its own from core 2, then risk, execution
    and the venue adapter on a core each; every one of those waits by `wait` at realtime
    priority where permitted. The nodes' TOML and their names."""
    placed = [("market", ["feed"])]
    placed += [(f"shard{suffix}", _per_symbol_actors(suffix, policy)) for suffix in groups]
    placed += [(stage, [stage]) for stage in PORTFOLIO_STAGES]
    nodes = "".join(
        f"""
[[nodes]]
name = "{node}"
actors = {json.dumps(actors)}
cores = [{core}]
wait = "{wait}"
realtime = true
batch = 1
"""
        for core, (node, actors) in enumerate(placed, start=1)
    )
    return nodes, [node for node, _ in placed]


def _one_hot_node(policy: bool, wait: str) -> tuple[str, list[str]]:
    """The two-core layout: the feed parked on core 0, the whole order path (the
    per-symbol stages, risk, execution and the venue adapter) in one node on core 1."""
    hot = [*_per_symbol_actors("", policy), *PORTFOLIO_STAGES]
    nodes = f"""
[[nodes]]
name = "market"
actors = ["feed"]
cores = [0]
wait = "park"
[[nodes]]
name = "hot"
actors = {json.dumps(hot)}
cores = [{1 % (os.cpu_count() or 1)}]
wait = "{wait}"
batch = 1
"""
    return nodes, ["market", "hot"]


def _per_symbol_actors(suffix: str, policy: bool) -> list[str]:
    stages = ["bars", "features", "tactical"] if policy else ["bars", "tactical"]
    return [f"{stage}{suffix}" for stage in stages]


def _decision_streams(suffix: str, policy: bool) -> str:
    names = ["bars", "features", "intents"] if policy else ["bars", "intents"]
    sizes = {"bars": 1048576, "features": 4194304, "intents": 1048576}
    return "".join(
        f"""
[[streams]]
name = "{stream}{suffix}"
capacity = {sizes[stream]}
"""
        for stream in names
    )


def _decision_actors(suffix: str, symbols: list[str] | None, policy: bool) -> str:
    """The per-symbol stages of one shard (`symbols`; every instrument when None): the
    bars, then the baseline rule, or features and the tactical policy."""
    served = f"symbols = {json.dumps(symbols)}, " if symbols is not None else ""
    bars = f"""
[[actors]]
name = "bars{suffix}"
cls = "actors.bars:BarsActor"
inputs = ["ticks"]
outputs = {{ bars = "bars{suffix}" }}
params = {{ {served}timeframes = {[5, 30] if policy else [5]} }}
"""
    if not policy:
        return (
            bars
            + f"""
[[actors]]
name = "tactical{suffix}"
cls = "actors.tactical:TacticalActor"
inputs = ["bars{suffix}"]
outputs = {{ intents = "intents{suffix}" }}
params = {{ {served}timeframe_s = 5, threshold_pct = 0.002, min_atr_fraction = 0.0 }}
"""
        )
    return (
        bars
        + f"""
[[actors]]
name = "features{suffix}"
cls = "actors.features:FeaturesActor"
inputs = ["bars{suffix}"]
outputs = {{ features = "features{suffix}" }}
params = {{ {served}tactical_timeframe_s = 5, strategic_timeframe_s = 30 }}
[[actors]]
name = "tactical{suffix}"
cls = "actors.tactical:TacticalPolicyActor"
inputs = ["features{suffix}", "strategic"]
outputs = {{ intents = "intents{suffix}" }}
{f"params = {{ {served.rstrip(', ')} }}" if symbols is not None else ""}
"""
    )


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


def _cpu_times() -> dict[str, tuple[int, int]]:
    """Per CPU (jiffies in all, jiffies stolen by the hypervisor), from /proc/stat."""
    times = {}
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *fields = line.split()
                    values = [int(field) for field in fields]
                    times[name] = (sum(values[:8]), values[7])
    except OSError:
        pass
    return times


def _stolen(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    """The share of each CPU's time the hypervisor gave to someone else meanwhile: a
    virtual CPU that is not running stalls whatever runs on it, ours included."""
    shares = []
    for cpu, (total, steal) in sorted(after.items()):
        total0, steal0 = before.get(cpu, (0, 0))
        if total > total0:
            shares.append(f"{cpu} {100 * (steal - steal0) / (total - total0):.1f}%")
    return ", ".join(shares) or "unknown"


@dataclass
class Measurement:
    """What one system run recorded after its warm-up."""

    histograms: dict[str, Histogram]
    elapsed_s: float
    stolen: str = ""
    """Each CPU's time stolen by the hypervisor during the measurement."""

    @property
    def orders(self) -> int:
        return self.histograms["venue.tick_to_order"].count

    @property
    def ticks(self) -> int:
        """Ticks the (first) bars actor took: every shard's sees every tick."""
        sharded = self.histograms.get("node.shard_0.ticks->bars_0")
        return (sharded or self.histograms[TICKS_SERIES]).count


def measure_system(
    ticks_per_s: float,
    wait: str,
    warmup: int,
    orders: int = 0,
    seconds: float = 0.0,
    journal: bool = False,
    instruments: int = 1,
    policy: bool = False,
    shards: int = 0,
) -> Measurement:
    """Start the bench system on `instruments` instruments (with the journal if asked),
    let `warmup` orders pass, then record until `orders` more orders reached the venue,
    or for `seconds`; stop it and forget its segments."""
    name = f"bench-e2e-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "e2e.toml"
        journal_path = Path(tmp) / "journal.sqlite" if journal else None
        config.write_text(
            bench_config(
                name,
                Path(tmp) / "run.jsonl",
                ticks_per_s,
                wait,
                journal_path,
                instruments,
                policy,
                shards,
            )
        )
        # This process polls the histograms: like the supervisor, off the spinning core.
        keep_off_spinning_cores(load_config(config))
        system = subprocess.Popen(
            [sys.executable, "-m", "kernel.cli", "run", "--config", str(config)],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _orders(name) >= warmup, 120, "warm-up orders", system, 0.05)
            before = read_histograms(name)
            cpu_before = _cpu_times()
            started = time.monotonic()
            if orders:
                wait_for(
                    lambda: _orders(name) >= warmup + orders,
                    30 + orders / (5 if policy else 20),  # the policy trades less often
                    f"{orders} orders",
                    system,
                    0.05,
                )
            else:
                wait_for(
                    lambda: time.monotonic() - started >= seconds,
                    seconds + 5,
                    "the end of the measuring window",
                    system,
                    0.05,
                )
            elapsed = time.monotonic() - started
            histograms = _since(read_histograms(name), before)
            return Measurement(histograms, elapsed, _stolen(cpu_before, _cpu_times()))
        finally:
            system.send_signal(signal.SIGTERM)
            system.wait(timeout=30)
            forget_run(name)


def _latency_figure(path: Path, title: str, draw: Callable[[Any], None]) -> None:
    """A log-log latency plot with the budget line, written to `path` (matplotlib is
    imported here: only a run that plots needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    draw(axis)
    axis.axhline(BUDGET_US, color="red", linestyle="--", label="budget p99 500 us")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_ylabel("latency (us)")
    axis.set_title(title)
    axis.legend(fontsize=7)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_percentiles(histograms: dict[str, Histogram], path: Path) -> None:
    quantiles = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]
    positions = [1 / (1 - q / 100) for q in quantiles]

    def draw(axis: Any) -> None:
        for name in (*SPANS, *(series for label, series in STAGES if "->" in label)):
            histogram = histograms.get(name)
            if histogram is not None and histogram.count:
                values = [histogram.percentile(q) / 1e3 for q in quantiles]
                axis.plot(positions, values, marker="o", label=name)
        axis.set_xticks(positions)
        axis.set_xticklabels([f"p{q:g}" for q in quantiles])

    _latency_figure(path, "GrandModel order path latency by percentile", draw)


def _plot_load(points: list[tuple[float, Histogram]], path: Path) -> None:
    def draw(axis: Any) -> None:
        rates = [rate for rate, _ in points]
        for q, style in ((50, "o-"), (99, "s-"), (99.9, "^-")):
            values = [histogram.percentile(q) / 1e3 for _, histogram in points]
            axis.plot(rates, values, style, label=f"tick_to_order p{q:g}")
        axis.set_xlabel("ticks/s through the whole tree (measured)")

    _latency_figure(path, "GrandModel tick_to_order latency versus load", draw)


def _add_breakdown(report: SuiteReport, histograms: dict[str, Histogram], policy: bool) -> None:
    """The stages of tick_to_order and what they are made of (module docstring); with
    the policy, its model's own cost as a stage of its own."""
    stages = POLICY_STAGES if policy else STAGES
    for prefix, rows in (("stage", stages), ("detail", DETAILS)):
        for label, series in rows:
            if series in histograms and histograms[series].count:
                report.add_histogram(f"{prefix} {label}", histograms[series])
    medians = [
        report.case(f"stage {label}").p50
        for label, series in stages
        if series in histograms and histograms[series].count
    ]
    report.notes.append(
        f"the stages add up to each order's tick_to_order; their medians sum to "
        f"{sum(medians):.0f} us (tick_to_order p50 {report.case('tick_to_order').p50:.0f} us)"
    )
    label, series = MODEL_STAGE
    if policy and histograms.get(series) is not None and histograms[series].count:
        report.add_histogram(f"stage {label}", histograms[series])
        report.notes.append(
            "stage tactical model: the policy's forward pass and decision rule on every "
            "tactical matrix (holds included), part of `tactical until publish`"
        )


def _add_peer(report: SuiteReport, ticks: int, orders: int) -> None:
    """NautilusTrader on the same ticks and orders, beside ours (optional extra `peers`)."""
    from bench.peers import nautilus

    missing = nautilus.available()
    if missing is not None:
        report.notes.append(f"peer not measured: {missing}")
        return
    peer = nautilus.measure(ticks=ticks, orders=orders)
    case = report.add_samples(f"peer {peer.name} tick_to_order", peer.spans_ns / 1e3)
    report.notes.append(f"peer: {peer.description}")
    for span in ("tick_to_order", "tick_to_submit"):
        ours = report.case(span)
        for metric in ("p50", "p99"):
            mine, theirs = getattr(ours, metric), getattr(case, metric)
            verdict = "met" if mine <= theirs else "not met"
            report.notes.append(
                f"goal {span} {metric} <= {peer.name}'s: {verdict} ({mine:g} vs {theirs:g} us)"
            )


def _load_sweep(report: SuiteReport, rates: list[float], seconds: float, wait: str) -> None:
    """tick_to_order at each market rate, the curve, and the highest rate within budget."""
    points = []
    for rate in rates:
        measured = measure_system(rate, wait, warmup=100, seconds=seconds)
        achieved = measured.ticks / measured.elapsed_s
        histogram = measured.histograms["venue.tick_to_order"]
        case = report.add_histogram(f"load {rate:g} ticks/s tick_to_order", histogram)
        case.throughput_per_s = round(achieved)
        report.notes.append(f"time stolen by the hypervisor at {rate:g} ticks/s: {measured.stolen}")
        points.append((achieved, histogram))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    _plot_load(points, RESULTS_DIR / "e2e-load.png")
    within = [rate for rate, histogram in points if histogram.percentile(99) / 1e3 < BUDGET_US]
    best = max(within, default=0.0)
    report.cases.append(Case("sustained ticks/s with p99 < 500 us", "ticks/s", 0, *[best] * 5))
    report.budget_at_least("sustained ticks/s with p99 < 500 us", "p50", SUSTAINED_TICKS_PER_S)
    report.notes.append(f"load curve: {RESULTS_DIR / 'e2e-load.png'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grandmodel bench e2e", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 orders")
    parser.add_argument("--no-enforce", action="store_true", help="report, never fail")
    parser.add_argument("--orders", type=int, help="orders to measure (default 20,000)")
    parser.add_argument("--ticks-per-s", type=float, default=2500.0, help="market pace")
    parser.add_argument(
        "--runs", type=int, default=1, help="consecutive full runs, each held to the budgets"
    )
    parser.add_argument(
        "--wait",
        default="spin",
        choices=["spin", "backoff", "park"],
        help="wait strategy of the hot node (core 1); the feed's node parks on core 0",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip NautilusTrader")
    parser.add_argument(
        "--policy",
        action="store_true",
        help="the shipped decision layers decide instead of the baseline rule (default "
        "1,000 orders, --quick 200; no peer)",
    )
    parser.add_argument(
        "--journal", action="store_true", help="run the journal too (its node on core 0)"
    )
    parser.add_argument(
        "--load", action="store_true", help="sweep the tick rate: latency versus load"
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(rate) for rate in text.split(",")],
        default=LOAD_RATES,
        help="ticks/s of the sweep, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate of the sweep")
    parser.add_argument(
        "--instruments",
        type=_instrument_counts,
        default=[1, 4],
        help="comma-separated instrument counts to measure, each at the same total tick "
        f"rate (1-{len(INSTRUMENTS)}; default 1,4)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="the layout of config/eight_core.toml instead of one hot node: the per-symbol "
        "stages in up to N shards, each on a core of its own, the feed, risk, execution and "
        "the venue adapter on a core each (needs N + 5 cores)",
    )
    args = parser.parse_args(argv)
    if args.shards and shard_cores_needed(args.shards) > len(os.sched_getaffinity(0)):
        parser.error(
            f"--shards {args.shards} pins {shard_cores_needed(args.shards)} cores; this "
            f"machine lets us use {len(os.sched_getaffinity(0))}"
        )
    suite = "e2e-load" if args.load else "e2e-policy" if args.policy else "e2e"
    report = SuiteReport(suite)
    if args.load:
        seconds = 3.0 if args.quick else args.seconds
        _load_sweep(report, args.rates, seconds, args.wait)
        return report.finish(enforce=not args.no_enforce)
    if args.policy:
        orders = args.orders or (200 if args.quick else 1_000)
    else:
        orders = args.orders or (1_000 if args.quick else 20_000)
    warmup = max(20 if args.policy else 100, orders // 20)
    for count in args.instruments:
        merged = _measure_runs(report, args, count, warmup, orders)
        if count == args.instruments[0]:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            plot = RESULTS_DIR / f"{suite}.png"
            _plot_percentiles(merged, plot)
            report.notes.append(f"plot ({_instruments(count)}): {plot}")
    layout = (
        f"the per-symbol stages in up to {args.shards} shards, each on a core of its own from "
        f"core 2, the feed on core 1, risk, execution and the venue adapter on a core each, "
        f"every one waiting by {args.wait} (config/eight_core.toml)"
        if args.shards
        else f"the order path (bars to the venue adapter) runs in one node waiting by "
        f"{args.wait} on core 1, the feed in a parked node on core 0"
    )
    report.notes.append(
        f"{orders} orders per run after {warmup} warm-up orders, market at "
        f"{args.ticks_per_s:g} ticks/s in all, 5 s bars, "
        f"{'the shipped tactical policy' if args.policy else 'the baseline rule'} deciding; "
        f"{layout}{'; the journal in a node of its own on core 0' if args.journal else ''}"
    )
    return report.finish(enforce=not args.no_enforce)


def _instrument_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if not all(1 <= count <= len(INSTRUMENTS) for count in counts):
        raise argparse.ArgumentTypeError(f"instrument counts are 1 to {len(INSTRUMENTS)}")
    return counts


def _instruments(count: int) -> str:
    return f"{count} instrument{'s' if count > 1 else ''}"


def _measure_runs(
    report: SuiteReport, args: argparse.Namespace, count: int, warmup: int, orders: int
) -> dict[str, Histogram]:
    """`args.runs` runs on `count` instruments, each held to the budgets, with their
    stages and (on one instrument) the peer beside them; their merged histograms. Case
    names carry the instrument count, except on one instrument (the names of runs before
    there were several)."""
    label = "" if count == 1 else f" {_instruments(count)}"
    runs = [
        measure_system(
            args.ticks_per_s,
            args.wait,
            warmup,
            orders,
            journal=args.journal,
            instruments=count,
            policy=args.policy,
            shards=args.shards,
        )
        for _ in range(args.runs)
    ]
    for index, run in enumerate(runs, 1):
        suffix = label + (f" run {index}" if len(runs) > 1 else "")
        for series in SPANS:
            name = series.split(".", 1)[1] + suffix
            report.add_histogram(name, run.histograms[series])
            report.budget_at_most(name, "p99", BUDGET_US)
        report.budget_at_most(f"tick_to_order{suffix}", "p999", BUDGET_P999_US)
        report.add_throughput(f"orders-at-venue{suffix}", run.orders, run.elapsed_s)
        report.add_throughput(f"ticks-through-the-tree{suffix}", run.ticks, run.elapsed_s)
        report.notes.append(f"time stolen by the hypervisor{suffix}: {run.stolen}")
    merged = runs[0].histograms
    for run in runs[1:]:
        merged = {name: h.merged(run.histograms[name]) for name, h in merged.items()}
    if len(runs) > 1:
        report.add_histogram(f"tick_to_order{label}", merged["venue.tick_to_order"])
    for instrument in INSTRUMENTS[:count] if count > 1 else ():
        series = merged.get(f"venue.tick_to_order.{instrument.symbol}")
        if series is not None and series.count:
            report.add_histogram(f"tick_to_order{label} {instrument.symbol}", series)
    report.add_histogram(f"tick_to_submit{label}", merged["venue.tick_to_submit"])
    if count == 1 and not args.shards:
        _add_breakdown(report, merged, args.policy)
        if not args.no_peer and not args.policy:
            _add_peer(report, runs[0].ticks, runs[0].orders)
    return merged


if __name__ == "__main__":
    sys.exit(main())
