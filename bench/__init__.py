"""The benchmark suite: `grandmodel bench [SUITE ...]`.

Each suite is a module with `main(argv) -> int` that prints a table, writes
bench/results/<suite>.json and returns 1 when one of its budgets is broken.

`grandmodel bench` finds the suites through the `grandmodel.bench` entry points in
pyproject.toml (the kernel never imports this package by name); SUITES serves
`python -m bench`, and tests/test_bench_registry.py keeps the two the same.
"""

import importlib

SUITES = {
    "ring": "bench.ring",
    "restart": "bench.restart",
    "e2e": "bench.e2e",
    "data": "bench.data",
    "instructions": "bench.instructions",
    "chaos": "bench.chaos",
    "policy": "bench.policy",
    "risk": "bench.risk",
}


def run_suites(names: list[str], extra_args: list[str]) -> int:
    """Run the named suites (all when empty); the worst exit status wins."""
    status = 0
    for name in names or list(SUITES):
        module = importlib.import_module(SUITES[name])
        status = max(status, module.main(extra_args))
    return status
