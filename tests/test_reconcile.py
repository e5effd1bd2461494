"""actors/reconcile: what counts as lost, duplicated and mismatched; the chaos command.

The books compared here are built by hand from fills whose positions are worked out in
the comments; the pipeline tests (test_pipeline.py) reconcile real runs.
"""

import math
import subprocess
import sys

import orjson
import pytest

from actors.common.positions import Position, PositionState
from actors.journal.store import JournalStore
from actors.reconcile.audit import Audit, audit_journal
from actors.reconcile.books import compare
from tests.systems import REPO

POINT = {"ES": 50.0}


def held(quantity: int, avg_price: float, realized: float) -> PositionState:
    return PositionState("ES", quantity, avg_price, realized, math.nan, 0.0)


def test_books_that_agree_have_no_mismatch():
    book = {"ES": held(2, 4100.0, -10.0)}
    assert compare({"venue": book, "risk": dict(book), "execution": dict(book)}) == []
    # A symbol one source never traded is flat there: equal to a flat position elsewhere.
    assert compare({"venue": {"ES": held(0, math.nan, 0.0)}, "risk": {}}) == []


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (held(3, 4100.0, -10.0), "quantity"),
        (held(2, 4100.5, -10.0), "avg_price"),  # 0.012 %: beyond 0.01 %
        (held(2, 4100.0, -12.5), "realized_pnl"),
        (held(2, math.nan, -10.0), "avg_price"),
    ],
)
def test_each_invariant_is_checked(other, field):
    (mismatch,) = compare({"venue": {"ES": held(2, 4100.0, -10.0)}, "risk": {"ES": other}})
    assert mismatch.field == field and mismatch.symbol == "ES"
    assert set(mismatch.values) == {"venue", "risk"}


def test_average_prices_within_a_hundredth_of_a_percent_agree():
    # 0.3 / 4100 = 0.0073 %
    assert (
        compare({"venue": {"ES": held(2, 4100.0, 0.0)}, "risk": {"ES": held(2, 4100.3, 0.0)}}) == []
    )


def journal_with(tmp_path, messages: list[tuple[str, str, dict]]):
    """A journal holding `messages` (type, stream, fields) in order, seqs per stream."""
    store = JournalStore(tmp_path / "j.sqlite")
    seqs: dict[str, int] = {}
    rows = []
    for kind, stream, fields in messages:
        seq = seqs[stream] = seqs.get(stream, 0) + 1
        order = fields.get("client_order_id")
        payload = orjson.dumps(fields).decode()
        rows.append((0, stream, seq, kind, seq, seq, "ES", order, fields.get("intent_id"), payload))
    store.write(rows)
    store.close()
    return tmp_path / "j.sqlite"


def order_flow(intent: str, side: int, quantity: int, price: float, fill_price=None):
    order = f"{intent}-1"
    fill = {
        "fill_id": f"F-{order}",
        "client_order_id": order,
        "symbol": "ES",
        "side": side,
        "quantity": quantity,
        "price": fill_price if fill_price is not None else price,
        "fee": 1.0,
    }
    return [
        ("RiskVerdict", "verdicts", {"intent_id": intent, "approved": True}),
        ("OrderRequest", "orders", {"client_order_id": order, "intent_id": intent}),
        ("OrderAck", "venue", {"client_order_id": order}),
        ("Fill", "venue", fill),
    ]


def test_the_journal_adds_up_its_fills_like_every_book(tmp_path):
    messages = order_flow("A", 1, 3, 4100.0) + order_flow("B", -1, 1, 4104.0)
    audit = Audit()
    positions = audit_journal(journal_with(tmp_path, messages), POINT, audit)
    expected = Position("ES")
    expected.apply(1, 3, 4100.0, 1.0, 50.0)
    expected.apply(-1, 1, 4104.0, 1.0, 50.0)  # 1 closed at +4 points: +200, fees -2
    assert positions["ES"].quantity == 2 == expected.quantity
    assert positions["ES"].realized == expected.realized == 198.0
    assert (audit.orders, audit.fills, audit.lost, audit.duplicated) == (2, 2, [], [])


def test_a_fill_repeated_as_the_original_outcome_is_not_a_second_execution(tmp_path):
    flow = order_flow("A", 1, 3, 4100.0)
    audit = Audit()
    positions = audit_journal(journal_with(tmp_path, [*flow, flow[-1]]), POINT, audit)
    assert audit.duplicated == [] and positions["ES"].quantity == 3


def test_an_order_executed_twice_is_duplicated(tmp_path):
    again = order_flow("A", 1, 3, 4100.0, fill_price=4101.0)[-1]  # same id, another price
    audit = Audit()
    audit_journal(journal_with(tmp_path, [*order_flow("A", 1, 3, 4100.0), again]), POINT, audit)
    assert audit.duplicated == ["F-A-1"]
    assert not audit.clean


def test_an_order_without_an_answer_and_an_approval_without_an_order_are_lost(tmp_path):
    unanswered = order_flow("A", 1, 3, 4100.0)[:2]
    unsent = order_flow("B", 1, 1, 4100.0)[:1]
    audit = Audit()
    audit_journal(journal_with(tmp_path, unanswered + unsent), POINT, audit)
    assert audit.lost == ["A-1", "intent B"]


def test_a_journal_missing_a_producers_message_is_incomplete(tmp_path):
    path = journal_with(tmp_path, order_flow("A", 1, 3, 4100.0))
    audit = Audit()
    audit_journal(path, POINT, audit, {"orders": 1, "venue": 3})
    assert audit.missing_rows == ["venue: 1 of 3 messages have no row (first: [3])"]


def test_chaos_kills_nodes_and_the_whole_tree_and_reconciles():
    """`grandmodel chaos`: node kills and a whole-tree kill -9, then a clean
    reconciliation (CI runs it with 20 kills)."""
    done = subprocess.run(
        [sys.executable, "-m", "kernel.cli", "chaos", "--kills", "3", "--seed", "7"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "kills survived: 3" in lines and "clean stop: yes" in lines
    assert "lost: 0 []" in lines and "duplicated: 0 []" in lines
    assert "mismatched: 0" in lines and "missing journal rows: 0" in lines
    orders = int(next(line for line in lines if line.startswith("orders: ")).split()[1])
    assert orders > 10
