"""`grandmodel bench data`: the data pipeline's cost per bar and replay throughput.

- `features-per-bar`: one closed bar through every indicator (the classic set, FVG,
  MLMI, NWRQK, LVN, MMD) and into both matrix assemblers, timed bar by bar over a
  long synthetic OHLCV series (after a warm-up, so numba compilation is excluded).
  Budget: p99 <= 200 us.
- `classic-indicators-per-bar`: the classic set alone (ATR, RSI, MACD, Bollinger,
  momentum 5/20/50, realized volatility, volume ratio, volume-profile skew).
- `replay-csv` / `replay-parquet`: reading and validating a file of ticks (rows/s).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from actors.features import StrategicFeatures, TacticalFeatures
from actors.indicators.classic import ClassicIndicators
from actors.replay.reader import ReplaySource, read_chunks
from actors.replay.stats import ReplayStats
from bench.report import SuiteReport

BUDGET_US = 200.0


def synthetic_bars(count: int, seed: int = 3) -> np.ndarray:
    """(count, 4) high, low, close, volume of a random walk around 4150 (the open of a
    bar is the previous close)."""
    rng = np.random.default_rng(seed)
    close = 4150.0 + np.cumsum(rng.normal(0.0, 1.5, count))
    high = close + rng.exponential(1.0, count)
    low = close - rng.exponential(1.0, count)
    volume = rng.integers(100, 5000, count).astype(np.float64)
    return np.column_stack((high, low, close, volume))


def time_classic(bars: np.ndarray, warmup: int) -> np.ndarray:
    indicators = ClassicIndicators(bars_per_year=252 * 78)
    clock = time.perf_counter_ns
    samples = np.empty(len(bars) - warmup, dtype=np.int64)
    for i, (high, low, close, volume) in enumerate(bars):
        started = clock()
        indicators.update(high, low, close, volume)
        if i >= warmup:
            samples[i - warmup] = clock() - started
    return samples / 1e3


def time_features(bars: np.ndarray, warmup: int) -> np.ndarray:
    """Every indicator and both matrices for one bar (actors.features' two engines)."""
    tactical = TacticalFeatures(bars_per_year=252 * 78)
    strategic = StrategicFeatures(bars_per_year=252 * 78, lvn_bin_width=0.25)
    clock = time.perf_counter_ns
    samples = np.empty(len(bars) - warmup, dtype=np.int64)
    previous = bars[0, 2]
    for i, (high, low, close, volume) in enumerate(bars):
        started = clock()
        tactical.update(previous, high, low, close, volume)
        strategic.update(previous, high, low, close, volume)
        if i >= warmup:
            samples[i - warmup] = clock() - started
        previous = close
    return samples / 1e3


def write_ticks(directory: Path, rows: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(9)
    price = np.round((4150.0 + np.cumsum(rng.normal(0, 0.25, rows))) * 4) / 4
    start = np.datetime64("2026-01-05T14:30:00", "ns").astype(np.int64)
    table = pa.table(
        {
            "timestamp": pa.array(start + np.arange(rows, dtype=np.int64) * 1_000_000_000),
            "symbol": pa.array(["ES"] * rows),
            "price": pa.array(price),
            "size": pa.array(rng.integers(1, 20, rows)),
            "bid": pa.array(price - 0.25),
            "ask": pa.array(price),
        }
    )
    csv_path, parquet_path = directory / "ticks.csv", directory / "ticks.parquet"
    pa_csv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path


def time_replay(path: Path) -> tuple[int, float]:
    source = ReplaySource(path=str(path), timestamp_unit="ns")
    stats = ReplayStats()
    started = time.perf_counter()
    rows = sum(len(chunk.event_ns) for chunk in read_chunks(source, stats))
    return rows, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grandmodel bench data", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer bars and rows")
    parser.add_argument("--no-enforce", action="store_true", help="report, never fail")
    args = parser.parse_args(argv)
    bar_count = 20_000 if args.quick else 200_000
    replay_rows = 100_000 if args.quick else 1_000_000
    bars = synthetic_bars(bar_count)
    warmup = 1_000
    report = SuiteReport("data")
    report.add_samples("features-per-bar", time_features(bars, warmup))
    report.add_samples("classic-indicators-per-bar", time_classic(bars, warmup))
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_ticks(Path(tmp), replay_rows):
            rows, seconds = time_replay(path)
            report.add_throughput(f"replay-{path.suffix.lstrip('.')}", rows, seconds)
    report.budget_at_most("features-per-bar", "p99", BUDGET_US)
    report.notes.append(
        f"{bar_count} synthetic bars after {warmup} warm-up; replay of {replay_rows} ticks "
        "read and validated in chunks (rows/s)"
    )
    return report.finish(enforce=not args.no_enforce)


if __name__ == "__main__":
    sys.exit(main())
