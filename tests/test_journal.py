"""The journal's SQLite file: exactly-once rows, schema migrations, integrity, queries, export.

The actor in a running system (drop rings, faults, kill -9) is in test_pipeline.py.
"""

import sqlite3
import subprocess
import sys

import orjson
import pyarrow.parquet as pq
import pytest

from actors.journal.query import (
    RECORD_COLUMNS,
    connect,
    export,
    parse_time,
    select_events,
    select_records,
)
from actors.journal.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    JournalError,
    JournalStore,
    Row,
    set_aside,
)
from tests.systems import REPO

T0 = 1_764_748_800_000_000_000  # 2025-12-03T08:00:00Z


def chain(epoch: int, n: int) -> list[Row]:
    """Decision n: intent, verdict, order, ack and fill, one second apart per decision."""
    decision = f"D-{n}"
    order = f"{decision}-1"
    at = T0 + n * 1_000_000_000
    payload = orjson.dumps({"n": n}).decode()
    return [
        (epoch, "intents", n, "TradeIntent", at, at, "ES", None, decision, payload),
        (epoch, "verdicts", n, "RiskVerdict", at + 1, at, "ES", None, decision, payload),
        (epoch, "orders", n, "OrderRequest", at + 2, at, "ES", order, decision, payload),
        (epoch, "venue", 2 * n - 1, "OrderAck", at + 3, at, "ES", order, None, payload),
        (epoch, "venue", 2 * n, "Fill", at + 4, at, "ES", order, None, payload),
    ]


def test_a_message_delivered_twice_is_written_once(tmp_path):
    store = JournalStore(tmp_path / "j.sqlite")
    rows = chain(0, 1) + chain(0, 2)
    assert store.write(rows) == 10
    # A restart redelivers what the journal handled after its last commit: same keys.
    assert store.write(chain(0, 2) + chain(0, 3)) == 5
    # The producers' seqs started over (an operator reset): a new epoch is new rows.
    assert store.write(chain(1, 1)) == 5
    assert store.last_epoch() == 1
    event = (T0, "kill_switch", '{"engaged": true, "engage_count": 1}')
    store.write([], [event, event])
    store.write([], [event])
    store.close()
    with connect(tmp_path / "j.sqlite") as db:
        assert len(select_records(db)) == 20
        assert len(select_events(db)) == 1


def test_queries_by_time_order_and_decision_chain(tmp_path):
    store = JournalStore(tmp_path / "j.sqlite")
    store.write([row for n in range(1, 6) for row in chain(0, n)])
    store.close()
    with connect(tmp_path / "j.sqlite") as db:
        # The decision's chain: rows that carry its id, and every row of its orders.
        got = select_records(db, decision_id="D-3")
        assert [r["type"] for r in got] == [
            "TradeIntent",
            "RiskVerdict",
            "OrderRequest",
            "OrderAck",
            "Fill",
        ]
        assert [r["type"] for r in select_records(db, order_id="D-2-1")] == [
            "OrderRequest",
            "OrderAck",
            "Fill",
        ]
        window = select_records(db, since_ns=T0 + 2_000_000_000, until_ns=T0 + 4_000_000_000)
        assert {r["decision_id"] or r["order_id"] for r in window} == {
            "D-2",
            "D-2-1",
            "D-3",
            "D-3-1",
        }
        assert [r["seq"] for r in select_records(db, types=["Fill"], limit=2)] == [2, 4]
        assert got[0]["payload"] == {"n": 3}
        assert got[0]["time"] == "2025-12-03T08:00:03.000000Z"


def test_iso_times_are_utc_unless_they_say_otherwise():
    assert parse_time("2025-12-03T08:00:00") == T0
    assert parse_time("2025-12-03T09:00:00+01:00") == T0
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


def test_export_to_csv_and_parquet_keeps_every_row(tmp_path):
    store = JournalStore(tmp_path / "j.sqlite")
    store.write([row for n in range(1, 4) for row in chain(0, n)])
    store.close()
    with connect(tmp_path / "j.sqlite") as db:
        entries = select_records(db)
    export(entries, RECORD_COLUMNS, tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [(r["stream"], r["seq"]) for r in table] == [(e["stream"], e["seq"]) for e in entries]
    assert orjson.loads(table[0]["payload"]) == {"n": 1}
    export(entries, RECORD_COLUMNS, tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["time", "time_ns", "epoch"]
    assert len(lines) == 1 + len(entries)
    with pytest.raises(ValueError, match=r"\.csv, \.parquet"):
        export(entries, RECORD_COLUMNS, tmp_path / "out.xlsx")


def test_a_journal_of_the_previous_schema_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        db.execute(statement)
    db.execute("PRAGMA user_version=1")
    db.execute(
        "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
        ("orders", 7, "OrderRequest", T0, T0, "ES", "O-7", "D-7", '{"n": 7}'),
    )
    db.commit()
    db.close()
    store = JournalStore(path)
    assert store.version == SCHEMA_VERSION == 3
    assert store.last_epoch() == 0  # version 1 had no epochs: its rows are epoch 0
    assert store.write(chain(0, 7)) == 4  # the order row was there already: same key
    store.write([], [(T0, "trading_state", '{"state": "REDUCING"}')])  # a table of v2
    assert store.new_epoch(run_id=42) == 1  # a table of v3, past the rows of version 1
    store.close()
    with connect(path) as db:
        assert [r["payload"] for r in select_records(db, order_id="O-7")] == [{"n": 7}]


def test_a_journal_that_lost_its_new_epoch_gets_the_same_one_again_in_that_run(tmp_path):
    path = tmp_path / "j.sqlite"
    first = JournalStore(path)
    first.write(chain(0, 1))
    assert first.new_epoch(run_id=1000) == 1  # the producers' seqs started over
    first.write(chain(1, 1))
    first.close()
    # Killed before its first commit (or it could not write at its start): its record
    # never said epoch 1. Its successor in the run must not number the redelivered
    # messages anew, which would write them twice.
    again = JournalStore(path, check=False)
    assert again.new_epoch(run_id=1000) == 1
    assert again.write(chain(1, 1)) == 0
    assert again.new_epoch(run_id=2000) == 2  # reset again, in a later run
    again.close()


def test_a_journal_of_schema_2_numbers_new_epochs_past_its_rows(tmp_path):
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    for version in (1, 2):
        for statement in MIGRATIONS[version]:
            db.execute(statement)
    db.execute("PRAGMA user_version=2")
    db.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)", chain(0, 1) + chain(3, 1))
    db.commit()
    db.close()
    store = JournalStore(path)
    assert store.new_epoch(run_id=7) == 4
    assert store.write(chain(3, 1)) == 0  # the rows of version 2 are kept as they were
    store.close()


def test_a_journal_newer_than_the_code_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "new.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(JournalError, match="newer than this code") as caught:
        JournalStore(path)
    assert not caught.value.corrupt


@pytest.mark.parametrize("damage", ["not a database", "damaged pages"])
def test_a_damaged_journal_is_reported_corrupt(tmp_path, damage):
    path = tmp_path / "j.sqlite"
    if damage == "not a database":
        path.write_bytes(b"these are not the pages you are looking for" * 200)
    else:
        store = JournalStore(path)
        store.write([row for n in range(1, 400) for row in chain(0, n)])
        store.close()  # checkpoints the WAL into the file
        data = bytearray(path.read_bytes())
        page = 4096
        data[3 * page : 5 * page] = b"\xff" * (2 * page)  # two b-tree pages overwritten
        path.write_bytes(bytes(data))
    with pytest.raises(JournalError) as caught:
        JournalStore(path)
    assert caught.value.corrupt
    moved = set_aside(path, "20251203T080000")
    assert moved.name == "j.sqlite.corrupt-20251203T080000" and moved.exists()
    assert not path.exists()
    assert JournalStore(path).version == SCHEMA_VERSION  # a new one starts there


def test_the_cli_lists_and_exports_a_journal(tmp_path):
    path = tmp_path / "j.sqlite"
    store = JournalStore(path)
    store.write([row for n in range(1, 4) for row in chain(0, n)])
    store.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kernel.cli", "journal", "--path", str(path), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )

    listed = cli("--decision", "D-2")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == [
        "TradeIntent",
        "RiskVerdict",
        "OrderRequest",
        "OrderAck",
        "Fill",
    ]
    lines = cli("--order", "D-3-1", "--json").stdout.splitlines()
    assert [orjson.loads(line)["type"] for line in lines] == ["OrderRequest", "OrderAck", "Fill"]
    exported = cli("--export", str(tmp_path / "all.csv"))
    assert exported.stdout.strip() == f"15 rows written to {tmp_path / 'all.csv'}"
    bad = cli("--since", "last tuesday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "journal", "--path", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert missing.returncode == 1 and "no journal there" in missing.stderr


def test_a_journal_path_under_a_file_cannot_be_opened(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match="cannot open") as caught:
        JournalStore(tmp_path / "file" / "j.sqlite")
    assert not caught.value.corrupt
