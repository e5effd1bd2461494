"""Benchmark results: percentiles, budgets, the printed table and the JSON file.

Every suite builds a `SuiteReport`, adds cases and budgets, then calls `finish`,
which prints the table, writes bench/results/<suite>.json (design §8) and
returns the exit status: 1 when a budget is broken.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kernel.latency import Histogram
from ringbuf import list_segments, unlink_segment

RESULTS_DIR = Path(os.environ.get("GRANDMODEL_BENCH_RESULTS", Path(__file__).parent / "results"))


@dataclass
class Case:
    name: str
    unit: str
    n: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    throughput_per_s: float | None = None


@dataclass
class Budget:
    case: str
    metric: str
    limit: float
    value: float
    ok: bool
    comparison: str = "<="


@dataclass
class SuiteReport:
    suite: str
    cases: list[Case] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_samples(
        self,
        name: str,
        samples: np.ndarray,
        unit: str = "us",
        throughput_per_s: float | None = None,
    ) -> Case:
        if samples.size == 0:
            raise ValueError(f"case {name!r} has no samples")
        p50, p90, p99, p999 = np.percentile(samples, [50, 90, 99, 99.9])
        case = Case(
            name=name,
            unit=unit,
            n=int(samples.size),
            p50=round(float(p50), 3),
            p90=round(float(p90), 3),
            p99=round(float(p99), 3),
            p999=round(float(p999), 3),
            max=round(float(samples.max()), 3),
            throughput_per_s=throughput_per_s,
        )
        self.cases.append(case)
        return case

    def add_histogram(self, name: str, histogram: Histogram, unit_ns: float = 1e3) -> Case:
        """A case from a shared-memory HDR histogram (kernel.latency), in us by default."""
        if histogram.count == 0:
            raise ValueError(f"case {name!r} has no samples")
        p50, p90, p99, p999 = (histogram.percentile(q) / unit_ns for q in (50, 90, 99, 99.9))
        case = Case(
            name=name,
            unit="us" if unit_ns == 1e3 else "ns",
            n=histogram.count,
            p50=round(p50, 3),
            p90=round(p90, 3),
            p99=round(p99, 3),
            p999=round(p999, 3),
            max=round(histogram.max_ns / unit_ns, 3),
        )
        self.cases.append(case)
        return case

    def add_throughput(self, name: str, messages: int, seconds: float) -> Case:
        rate = messages / seconds
        case = Case(name, "msgs/s", messages, *([round(rate)] * 5), throughput_per_s=round(rate))
        self.cases.append(case)
        return case

    def case(self, name: str) -> Case:
        return next(c for c in self.cases if c.name == name)

    def budget_at_most(self, case: str, metric: str, limit: float) -> None:
        value = float(getattr(self.case(case), metric))
        self.budgets.append(Budget(case, metric, limit, value, value <= limit, "<="))

    def budget_at_least(self, case: str, metric: str, limit: float) -> None:
        value = float(getattr(self.case(case), metric))
        self.budgets.append(Budget(case, metric, limit, value, value >= limit, ">="))

    @property
    def ok(self) -> bool:
        return all(budget.ok for budget in self.budgets)

    def to_json(self) -> dict[str, object]:
        return {
            "suite": self.suite,
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processor": _cpu_model(),
            },
            "cases": [asdict(case) for case in self.cases],
            "budgets": [asdict(budget) for budget in self.budgets],
            "notes": self.notes,
        }

    def print_table(self, out: "object" = sys.stdout) -> None:
        width = max([38, *(len(c.name) + 1 for c in self.cases)])
        header = f"{'case':<{width}}{'unit':>10}{'n':>9}{'p50':>11}{'p90':>11}{'p99':>11}"
        header += f"{'p99.9':>11}{'max':>11}"
        lines = [f"== bench {self.suite} ==", header]
        for c in self.cases:
            lines.append(
                f"{c.name:<{width}}{c.unit:>10}{c.n:>9} {c.p50:>10.2f} {c.p90:>10.2f}"
                f" {c.p99:>10.2f} {c.p999:>10.2f} {c.max:>10.2f}"
            )
        if self.budgets:
            lines.append("budgets:")
            for b in self.budgets:
                verdict = "ok" if b.ok else "BROKEN"
                lines.append(
                    f"  {verdict:<7}{b.case} {b.metric} = {b.value:g} (must be "
                    f"{b.comparison} {b.limit:g})"
                )
        lines.extend(f"note: {note}" for note in self.notes)
        print("\n".join(lines), file=out, flush=True)  # type: ignore[call-overload]

    def finish(self, enforce: bool = True) -> int:
        """Print, write the JSON file; 1 when a budget is broken and `enforce` is set."""
        self.print_table()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.suite}.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        print(f"results written to {path}", flush=True)
        return 1 if enforce and not self.ok else 0


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    system: "subprocess.Popen[bytes] | None" = None,
    poll_s: float = 0.0005,
) -> None:
    """Poll `condition` until it holds; a clear error on timeout or if `system` exits."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if system is not None and system.poll() is not None:
            raise RuntimeError(f"the system exited ({system.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout_s:.0f} s")
        time.sleep(poll_s)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def forget_run(system: str) -> None:
    """Remove what a benchmark's throw-away system left in /dev/shm, the durable actor
    records included (each run has a name of its own, nothing will read them again)."""
    for status in list_segments(f"{system}."):
        unlink_segment(status.name)
