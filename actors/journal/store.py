"""The journal's SQLite file: schema and its migrations, the integrity check, batched inserts.

One row per journaled message in `records`, keyed by (epoch, stream, seq): a message
delivered twice (a restart redelivers what the journal handled after its last commit)
is written once. `epoch` starts a new numbering when the producers' seqs start over (an
operator reset their durable state, the journal's with them; `epoch_runs` remembers which
run started each epoch). One row per event the journal sees itself (kill-switch and
trading-state changes, its own faults) in `events`.

The file is in WAL mode (readers, such as `grandmodel journal`, never block the writer)
with `synchronous=NORMAL`: a committed batch survives a crash of the process; a power
cut may lose the last batches, not corrupt the file.

The schema version is SQLite's `user_version`. `MIGRATIONS[n]` takes a file from version
n - 1 to n in one transaction; a new file runs them all, so every step is exercised
on every fresh journal. A file newer than this code is refused (`JournalError`).
"""

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

SCHEMA_VERSION = 3

Row = tuple[int, str, int, str, int, int, str | None, str | None, str | None, str]
"""One `records` row: epoch, stream, seq, type, time_ns (wall clock at publish), origin_ns,
symbol, order_id, decision_id, payload (the message as a JSON object)."""

_V1 = (
    """CREATE TABLE records (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        origin_ns INTEGER NOT NULL,
        symbol TEXT,
        order_id TEXT,
        decision_id TEXT,
        payload TEXT NOT NULL,
        PRIMARY KEY (stream, seq)
    )""",
    "CREATE INDEX records_time ON records (time_ns)",
    "CREATE INDEX records_order ON records (order_id) WHERE order_id IS NOT NULL",
    "CREATE INDEX records_decision ON records (decision_id) WHERE decision_id IS NOT NULL",
)
_V2 = (
    # The key gains the epoch: SQLite cannot change a primary key in place, so the table
    # is rebuilt; the rows of version 1 belong to epoch 0.
    """CREATE TABLE records_v2 (
        epoch INTEGER NOT NULL,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        origin_ns INTEGER NOT NULL,
        symbol TEXT,
        order_id TEXT,
        decision_id TEXT,
        payload TEXT NOT NULL,
        PRIMARY KEY (epoch, stream, seq)
    )""",
    "INSERT INTO records_v2 SELECT 0, stream, seq, type, time_ns, origin_ns, symbol, order_id,"
    " decision_id, payload FROM records",
    "DROP TABLE records",
    "ALTER TABLE records_v2 RENAME TO records",
    "CREATE INDEX records_time ON records (time_ns)",
    "CREATE INDEX records_order ON records (order_id) WHERE order_id IS NOT NULL",
    "CREATE INDEX records_decision ON records (decision_id) WHERE decision_id IS NOT NULL",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        UNIQUE (kind, detail)
    )""",
    "CREATE INDEX events_time ON events (time_ns)",
)
_V3 = (
    # The run that started each new epoch: a journal of that run that lost its record
    # before it was committed (or never knew its epoch) takes the same one again.
    """CREATE TABLE epoch_runs (
        run_id INTEGER PRIMARY KEY,
        epoch INTEGER NOT NULL
    )""",
)
MIGRATIONS: dict[int, Sequence[str]] = {1: _V1, 2: _V2, 3: _V3}


class JournalError(Exception):
    """The journal file cannot be used: corrupt, not a database, newer than this code,
    or not writable. The message names the file and the cause; `corrupt` says that the
    file's content is damaged (set it aside), not that it cannot be reached or written."""

    def __init__(self, path: str | Path, cause: str, corrupt: bool = False) -> None:
        super().__init__(f"{path}: {cause}")
        self.cause = cause
        self.corrupt = corrupt


class JournalStore:
    """A journal file opened for writing (one writer: the journal actor)."""

    def __init__(self, path: str | Path, check: bool = True) -> None:
        """Open (create, migrate) the file; `check`: run the integrity check first."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise JournalError(self.path, f"cannot open: {error}") from error
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if check:
                self._check_integrity()
            self._migrate()
        except sqlite3.OperationalError as error:  # locked, read-only, I/O: the file may be fine
            self._db.close()
            raise JournalError(self.path, str(error)) from error
        except sqlite3.DatabaseError as error:  # not a database, malformed
            self._db.close()
            raise JournalError(self.path, str(error), corrupt=True) from error
        except JournalError:
            self._db.close()
            raise

    def _check_integrity(self) -> None:
        # quick_check: the structural checks of integrity_check without matching every
        # index against its table, which would make a start take as long as a full scan
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise JournalError(
                self.path, f"integrity check failed: {'; '.join(problems[:3])}", corrupt=True
            )

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise JournalError(
                self.path,
                f"schema version {version} is newer than this code's ({SCHEMA_VERSION}); "
                "use a newer GrandModel or another journal file",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target]:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={target}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def new_epoch(self, run_id: int) -> int:
        """A new epoch, one past the newest, for a journal without one (its record is new:
        the producers' seqs started over), started by run `run_id`; the epoch that run
        started before, if it did (a journal killed before its first commit, or one that
        could not write at its start, asks again)."""
        db = self._db
        with self._writing():
            known = db.execute(
                "SELECT epoch FROM epoch_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if known is not None:
                return int(known[0])
            newest = db.execute(
                "SELECT max(epoch) FROM (SELECT max(epoch) AS epoch FROM records"
                " UNION ALL SELECT max(epoch) FROM epoch_runs)"
            ).fetchone()[0]
            epoch = 0 if newest is None else newest + 1
            db.execute("INSERT INTO epoch_runs VALUES (?, ?)", (run_id, epoch))
        return epoch

    def last_epoch(self) -> int | None:
        """The newest epoch with rows, None for an empty journal."""
        return self._db.execute("SELECT max(epoch) FROM records").fetchone()[0]

    def write(self, rows: Sequence[Row], events: Iterable[tuple[int, str, str]] = ()) -> int:
        """Insert a batch in one transaction; the number of rows new to the journal (a
        row already there, a redelivery, is skipped). Raises JournalError when the file
        cannot be written (read-only, disk full, I/O error): nothing of the batch is in."""
        db = self._db
        with self._writing():
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            inserted = db.total_changes - before
            db.executemany(
                "INSERT OR IGNORE INTO events (time_ns, kind, detail) VALUES (?,?,?)", events
            )
        return inserted

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction; JournalError when the file cannot be written, with
        nothing of the transaction in."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            yield
            db.execute("COMMIT")
        except sqlite3.Error as error:
            # SQLite may have rolled back already (a full disk does), or failed the COMMIT
            # itself and left the transaction open: end it, so the next batch can begin.
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise JournalError(self.path, f"cannot write: {error}") from error

    def close(self) -> None:
        self._db.close()


def set_aside(path: Path, stamp: str) -> Path:
    """Move a journal that cannot be used (and its WAL and shared-memory files) out of the
    way, for inspection; the new name ends in `.corrupt-<stamp>`."""
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    return target
