"""The journal: an append-only SQLite audit trail of decisions, orders, fills and controls."""

from actors.journal.actor import JOURNALED, JournalActor, JournalParams, JournalState
from actors.journal.store import SCHEMA_VERSION, JournalError, JournalStore

__all__ = [
    "JOURNALED",
    "SCHEMA_VERSION",
    "JournalActor",
    "JournalError",
    "JournalParams",
    "JournalState",
    "JournalStore",
]
