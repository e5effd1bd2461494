"""Shared-memory latency histograms: bucket math, percentiles, cross-process reads."""

import subprocess
import sys
import uuid

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.health import HealthTable
from kernel.latency import (
    BUCKETS,
    LatencyRecorder,
    bucket_bounds,
    bucket_of,
    latency_path,
    read_histograms,
)
from ringbuf import Kind, Lifetime, list_segments, shm, unlink_segment
from ringbuf._core import HdrSeries


@pytest.fixture
def system():
    name = f"lat{uuid.uuid4().hex[:8]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


def test_every_value_lands_in_a_bucket_that_contains_it():
    values = np.unique(
        np.concatenate([np.arange(0, 5000), np.geomspace(1, 2**40, 5000).astype(np.int64)])
    )
    for value in values.tolist():
        index = bucket_of(value)
        low, high = bucket_bounds(np.array([index]))
        assert low[0] <= value < high[0], (value, index)
        if value >= 32:
            assert (high[0] - low[0]) / low[0] <= 1 / 16


def test_buckets_are_contiguous_and_increasing():
    low, high = bucket_bounds(np.arange(BUCKETS))
    assert low[0] == 0
    assert np.all(high[:-1] == low[1:])


def test_percentiles_match_numpy_within_bucket_precision(system):
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=np.log(50_000), sigma=0.8, size=50_000).astype(np.int64)
    recorder = LatencyRecorder(system, "actor", ["hop"])
    series = recorder.series("hop")
    for value in samples.tolist():
        series.record(value)
    (hist,) = read_histograms(system).values()
    assert hist.count == samples.size and hist.max_ns == samples.max()
    for q in (50, 90, 99, 99.9):
        exact = np.percentile(samples, q)
        assert exact * 0.99 <= hist.percentile(q) <= exact * 1.07
    assert hist.percentile(100) == samples.max()
    recorder.close()


def test_another_process_records_and_a_restart_keeps_the_counts(system):
    script = (
        "import sys; from kernel.latency import LatencyRecorder\n"
        "r = LatencyRecorder(sys.argv[1], 'venue', ['tick_to_order', 'order_path'])\n"
        "for v in range(1000, 2000): r.series('tick_to_order').record(v)\n"
        "r.series('order_path').record(123456)\n"
    )
    for _ in range(2):  # the second run is the restarted owner: counts accumulate
        subprocess.run([sys.executable, "-c", script, system], check=True, timeout=60)
    hists = read_histograms(system)
    assert hists["venue.tick_to_order"].count == 2000
    assert hists["venue.order_path"].count == 2
    assert hists["venue.order_path"].max_ns == 123456
    with pytest.raises(ValueError, match="bytes, not the"):
        LatencyRecorder(system, "venue", ["only_one"])
    assert latency_path(system, "venue").endswith(f"gm-{system}.lat.venue")


def test_histograms_belong_to_the_run_and_refuse_other_series(system):
    table = HealthTable.create(system, [("venue", "exec")])
    LatencyRecorder(system, "venue", ["a", "b"]).close()
    (status,) = list_segments(f"{system}.lat.")
    assert (status.kind, status.lifetime) == (Kind.LATENCY, Lifetime.RUN)
    assert status.owner == table.owner  # the run's supervisor, not the recorder
    with pytest.raises(ValueError, match="not a histogram file of these series"):
        LatencyRecorder(system, "venue", ["a", "c"])  # same size, other names
    with open(latency_path(system, "venue"), "r+b") as file:
        file.write(b"\0" * 8)  # not a segment any more
    with pytest.raises(shm.SegmentCorrupted, match="bad magic"):
        LatencyRecorder(system, "venue", ["a", "b"])
    assert read_histograms(system) == {}  # readers skip what they cannot read
    table.close()


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_the_writer_counts_any_value_in_the_bucket_that_contains_it(value):
    """HdrSeries (C) against the buckets' bounds as the readers compute them (numpy)."""
    buffer = bytearray(8 * (2 + BUCKETS) + 8)
    series = HdrSeries(buffer, 8, BUCKETS)
    series.record(value)
    series.release()
    words = np.frombuffer(buffer, dtype=np.uint64)[1:]
    (index,) = np.flatnonzero(words[2:])
    assert words[0] == 1 and words[2 + index] == 1 and index == bucket_of(value)
    low, high = bucket_bounds(np.array([index]))
    if index == BUCKETS - 1:
        assert value >= low[0]
    else:
        assert low[0] <= max(value, 0) < high[0]
    assert words[1] == max(value, 0)
