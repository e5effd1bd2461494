"""The health table as the API sees it: attached on first use, then kept.

The API may start before the supervisor has created the table (or be driven without
one in a test), so attaching is retried on each request until it succeeds, instead of
failing the actor at start.
"""

from typing import Any

from kernel.health import HealthTable, State

RUNNING = State.RUNNING.name

Row = dict[str, Any]
"""One actor's row as `HealthTable.snapshot` gives it."""


class HealthSource:
    """Rows of one system's health table, read straight from shared memory."""

    def __init__(self, system: str) -> None:
        self.system = system
        self._table: HealthTable | None = None

    def rows(self) -> list[Row]:
        """Every actor's row (`HealthTable.snapshot`); FileNotFoundError while the system's
        table does not exist."""
        if self._table is None:
            self._table = HealthTable.attach(self.system)
        return self._table.snapshot()

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None


def all_running(rows: list[Row]) -> bool:
    return all(row["state"] == RUNNING for row in rows)
