"""/metrics: the health table, latency histograms, risk state, execution's committed
order counts and the journal's committed row counts as Prometheus text.

A fresh `CollectorRegistry` per request, fed by collectors over values read for that
request: nothing is registered globally, so restarts, tests and several systems in one
process never collide, and every scrape shows the shared memory as it is now.
"""

from collections.abc import Iterator

import msgspec
import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.utils import floatToGoString

from actors.api.health import RUNNING, Row
from actors.api.state import RiskState
from actors.execution.actor import ExecutionCounts
from actors.journal.actor import JournalState
from kernel.durable import read_record
from kernel.latency import BUCKETS, Histogram, bucket_bounds

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

EDGES_S = (
    *(1e-6, 2.5e-6, 5e-6),
    *(1e-5, 2.5e-5, 5e-5),
    *(1e-4, 2.5e-4, 5e-4),
    *(1e-3, 2.5e-3, 5e-3),
    *(1e-2, 2.5e-2, 5e-2),
    0.1,
)
"""Prometheus bucket edges (le), seconds: 1-2.5-5 steps from 1 us to 100 ms, with the
500 us order-path budget (design §7) on an edge so that the budget reads exactly."""

_LOW, _HIGH = bucket_bounds(np.arange(BUCKETS))
_LAST = _HIGH - 1
"""The largest value (ns) each HDR bucket holds."""
_MID_NS = (_LOW + _LAST) / 2
_EDGE_BUCKETS = np.searchsorted(_LAST, [round(edge * 1e9) for edge in EDGES_S], side="right")
"""Per edge, how many leading HDR buckets hold only values <= that edge. A bucket that
straddles an edge counts above it, so a latency is never reported below its bucket."""
_LE = [floatToGoString(edge) for edge in EDGES_S]


class ActorCollector:
    """Per-actor families from health table rows, labelled actor and node."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        labels = ["actor", "node"]
        up = GaugeMetricFamily(
            "grandmodel_actor_up", "1 while the actor is RUNNING, else 0.", labels=labels
        )
        restarts = CounterMetricFamily(
            "grandmodel_actor_restarts_total", "Restarts by the supervisor.", labels=labels
        )
        msgs_in = CounterMetricFamily(
            "grandmodel_actor_messages_in_total", "Messages consumed.", labels=labels
        )
        msgs_out = CounterMetricFamily(
            "grandmodel_actor_messages_out_total", "Messages published.", labels=labels
        )
        depth = GaugeMetricFamily(
            "grandmodel_actor_ring_depth_bytes",
            "Bytes waiting in the actor's input rings.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "grandmodel_actor_heartbeat_age_seconds",
            "Time since the actor's node last beat (absent before its first beat).",
            labels=labels,
        )
        for row in self.rows:
            key = [str(row["actor"]), str(row["node"])]
            up.add_metric(key, 1.0 if row["state"] == RUNNING else 0.0)
            restarts.add_metric(key, float(row["restarts"]))
            msgs_in.add_metric(key, float(row["msgs_in"]))
            msgs_out.add_metric(key, float(row["msgs_out"]))
            depth.add_metric(key, float(row["ring_depth_bytes"]))
            if row["heartbeat_age_s"] is not None:
                age.add_metric(key, float(row["heartbeat_age_s"]))
        yield from (up, restarts, msgs_in, msgs_out, depth, age)


class LatencyCollector:
    """HDR histograms re-bucketed onto `EDGES_S` as one family, labelled by series."""

    def __init__(self, histograms: dict[str, Histogram]) -> None:
        self.histograms = histograms

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "grandmodel_latency_seconds",
            "Latency per `<owner>.<series>`; the sum is estimated from bucket midpoints.",
            labels=["series"],
        )
        for name, histogram in sorted(self.histograms.items()):
            counts = histogram.counts
            cumulative = np.concatenate(([0], np.cumsum(counts)))
            buckets = [(le, float(cumulative[n])) for le, n in zip(_LE, _EDGE_BUCKETS, strict=True)]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([name], buckets, float(counts @ _MID_NS) / 1e9)
        yield family


class RiskCollector:
    """Account gauges from the latest RiskSnapshot, contracts per symbol from the latest
    PositionSnapshots; nothing before the first RiskSnapshot."""

    def __init__(self, risk: RiskState) -> None:
        self.risk = risk

    def collect(self) -> Iterator[Metric]:
        snapshot = self.risk.snapshot
        if snapshot is None:
            return
        yield GaugeMetricFamily("grandmodel_risk_equity", "Account equity.", value=snapshot.equity)
        yield GaugeMetricFamily(
            "grandmodel_risk_daily_pnl", "Profit and loss of the day.", value=snapshot.daily_pnl
        )
        yield GaugeMetricFamily(
            "grandmodel_risk_kill_switch",
            "1 while the kill switch is latched.",
            value=float(snapshot.kill_switch),
        )
        for name, text, value in (
            ("gross_notional", "Sum over symbols of |notional|.", snapshot.gross_notional),
            ("net_notional", "Sum over symbols of signed notional.", snapshot.net_notional),
            ("concentration", "Largest position / gross notional.", snapshot.concentration),
        ):
            yield GaugeMetricFamily(f"grandmodel_risk_{name}", text, value=value)
        position = GaugeMetricFamily(
            "grandmodel_position_contracts",
            "Signed position (positive long, negative short).",
            labels=["symbol"],
        )
        notional = GaugeMetricFamily(
            "grandmodel_position_notional", "Signed notional of the position.", labels=["symbol"]
        )
        pnl = GaugeMetricFamily(
            "grandmodel_position_pnl",
            "Profit and loss of the symbol, realized (net of fees) or unrealized.",
            labels=["symbol", "kind"],
        )
        for symbol, snap in sorted(self.risk.positions.items()):
            position.add_metric([symbol], float(snap.quantity))
            notional.add_metric([symbol], snap.notional)
            pnl.add_metric([symbol, "realized"], snap.realized_pnl)
            pnl.add_metric([symbol, "unrealized"], snap.unrealized_pnl)
        yield position
        yield notional
        yield pnl


def committed_journal_counts(system: str, journal: str) -> JournalState | None:
    """The journal's counters as last committed (rows count once their input position
    is committed: exact across crashes), None before its first commit or without one."""
    record = read_record(system, journal)
    if record is None or not record.state:
        return None
    return msgspec.msgpack.decode(record.state, type=JournalState)


class JournalCollector:
    """Rows the journal holds, found already written after a crash, and lost: dropped by
    its full rings (the health row's `dropped`) or by a file it could not write."""

    def __init__(self, counts: JournalState | None, rows: list[Row], journal: str) -> None:
        self.counts = counts
        self.dropped = sum(int(row["dropped"]) for row in rows if row["actor"] == journal)

    def collect(self) -> Iterator[Metric]:
        if self.counts is None:
            return
        yield CounterMetricFamily(
            "grandmodel_journal_rows_written",
            "Rows in the journal (exact across crashes).",
            value=self.counts.written,
        )
        yield CounterMetricFamily(
            "grandmodel_journal_rows_repeated",
            "Rows found already written by a journal killed before its commit (not written twice).",
            value=self.counts.repeated,
        )
        dropped = CounterMetricFamily(
            "grandmodel_journal_rows_dropped",
            "Rows that never reached the journal, by cause.",
            labels=["cause"],
        )
        dropped.add_metric(["ring_full"], self.dropped)
        dropped.add_metric(["unwritable"], self.counts.lost)
        yield dropped
        yield CounterMetricFamily(
            "grandmodel_journal_reconciliation_mismatches",
            "Fields on which the journal's fills and the venue's account still disagreed at"
            " the end of a start's reconciliation (each sets REDUCING).",
            value=self.counts.reconciliation_mismatches,
        )


class _Committed(msgspec.Struct):
    """The part of execution's durable state /metrics reads (the rest is skipped)."""

    counts: ExecutionCounts = msgspec.field(default_factory=ExecutionCounts)


def committed_order_counts(system: str, execution: str) -> ExecutionCounts | None:
    """Execution's counts as last committed: exact across crashes and replays (an
    increment counts only once its message is committed), None before its first commit."""
    record = read_record(system, execution)
    if record is None or not record.state:
        return None
    return msgspec.msgpack.decode(record.state, type=_Committed).counts


class OrderCollector:
    """Orders, acks, fills, contracts, cancels by side and rejects by reason, as
    execution committed them; nothing before its first commit."""

    BY_SIDE = (
        ("order", "grandmodel_orders", "Orders sent to the venue."),
        ("ack", "grandmodel_order_acks", "Orders the venue acknowledged."),
        ("fill", "grandmodel_fills", "Fills booked."),
        ("filled_contracts", "grandmodel_filled_contracts", "Contracts filled."),
        ("cancelled", "grandmodel_cancelled_orders", "Orders ended with their rest cancelled."),
    )

    def __init__(self, counts: ExecutionCounts | None) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts
        if counts is None:
            return
        for event, name, text in self.BY_SIDE:
            family = CounterMetricFamily(name, text, labels=["side"])
            for side in ("LONG", "SHORT"):
                family.add_metric([side], counts.by_side.get(f"{event}:{side}", 0))
            yield family
        rejects = CounterMetricFamily(
            "grandmodel_order_rejects", "Orders the venue rejected.", labels=["reason"]
        )
        for reason, count in sorted(counts.rejects.items()):
            rejects.add_metric([reason], count)
        yield rejects
        yield CounterMetricFamily(
            "grandmodel_unknown_order_reports",
            "Venue reports for orders execution does not know (each sets REDUCING).",
            value=counts.unknown_orders,
        )
        yield CounterMetricFamily(
            "grandmodel_resent_orders",
            "Working orders sent again at the start of a new run (reconciliation).",
            value=counts.resent,
        )
        yield CounterMetricFamily(
            "grandmodel_reconciliation_mismatches",
            "Fields on which execution, the venue's account and the risk book still disagreed"
            " at the end of a start's reconciliation (each sets REDUCING).",
            value=counts.reconciliation_mismatches,
        )


def render(
    rows: list[Row],
    histograms: dict[str, Histogram],
    risk: RiskState,
    orders: ExecutionCounts | None = None,
    journal: JournalCollector | None = None,
) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry()
    registry.register(ActorCollector(rows))
    registry.register(LatencyCollector(histograms))
    registry.register(RiskCollector(risk))
    registry.register(OrderCollector(orders))
    if journal is not None:
        registry.register(journal)
    return generate_latest(registry)
