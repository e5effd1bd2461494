"""The benchmark suites `grandmodel bench` finds are the ones bench declares."""

import tomllib
from importlib.metadata import entry_points

from bench import SUITES
from kernel.cli import BENCH_GROUP
from tests.systems import REPO


def test_pyproject_registers_exactly_bench_suites_and_the_install_is_current():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    registered = {point.name: point.value for point in entry_points(group=BENCH_GROUP)}
    expected = {name: f"{module}:main" for name, module in SUITES.items()}
    assert declared[BENCH_GROUP] == expected
    # Stale metadata (pyproject changed, `pip install -e . --no-deps` not re-run)
    # would hide a suite from the CLI.
    assert registered == expected
