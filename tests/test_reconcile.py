"""actors/reconcile: what counts as lost, duplicated and mismatched; the chaos command.

The books compared here are built by hand from fills whose positions are worked out in
the comments; the pipeline tests (test_pipeline.py) reconcile real runs.
"""

import math
import subprocess
import sys
from types import SimpleNamespace

import orjson
import pytest

from actors.common.positions import Position, PositionState
from actors.journal.store import JournalStore
from actors.messages import TradingState
from actors.reconcile.audit import Audit, audit_journal
from actors.reconcile.books import StartReconciliation, compare, must_reconcile
from actors.risk.killswitch import HOLD_BY, restrict_to_reducing
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


# --- reconciliation at start: trading held while the books settle ----------------------
# `system` is a run without actor records: every other party's committed book is empty.


def party(system: str, name: str, new_run: bool = True) -> SimpleNamespace:
    """What StartReconciliation reads of an actor: its name and its run's context."""
    return SimpleNamespace(name=name, context=SimpleNamespace(system=system, new_run=new_run))


def reconciliation(system: str, name: str, timeout_s: float = 60.0) -> StartReconciliation:
    # Against the venue's committed account, which this run lacks: an empty book.
    return StartReconciliation(party(system, name), name, {"venue": "venue"}, timeout_s)


LONG_TWO = {"ES": held(2, 4100.0, 0.0)}


def test_books_that_agree_at_once_with_nothing_in_flight_do_not_hold_trading(system, controls):
    assert reconciliation(system, "execution").begin({}, settled=True) == []
    assert controls.trading_state is TradingState.ACTIVE


def test_orders_in_flight_hold_trading_until_the_books_agree(system, controls):
    start = reconciliation(system, "execution")
    assert start.begin({}, settled=False) is None  # re-sent orders: their answers may move books
    state = controls.state()
    assert state.trading_state is TradingState.HALTED and state.state_by == HOLD_BY
    assert state.state_reason == "waiting for execution"
    assert controls.holds_for("execution") and not controls.holds_for("journal")
    assert controls.at_rest, "a hold is done again by the next run: nothing to keep"
    assert start.check(LONG_TWO) is None  # they differ, time is left: still held
    assert controls.trading_state is TradingState.HALTED
    assert start.check({}) == []
    assert controls.trading_state is TradingState.ACTIVE
    assert not controls.holds_for("execution")


def test_a_difference_at_once_holds_trading_and_a_lasting_one_is_the_verdict(system, controls):
    start = reconciliation(system, "journal", timeout_s=0.0)
    assert start.begin(LONG_TWO, settled=True) is None
    assert controls.trading_state is TradingState.HALTED
    (mismatch,) = start.check(LONG_TWO)
    assert (mismatch.field, mismatch.values) == ("quantity", {"journal": 2, "venue": 0})
    assert controls.trading_state is TradingState.HALTED, "the party decides what a mismatch does"
    assert restrict_to_reducing(system, "journal", str(mismatch))
    state = controls.state()
    assert (state.trading_state, state.state_by) == (TradingState.REDUCING, "journal")


def test_trading_resumes_once_every_party_has_agreed(system, controls):
    journal, execution = reconciliation(system, "journal"), reconciliation(system, "execution")
    assert journal.begin(LONG_TWO, settled=True) is None
    assert execution.begin({}, settled=False) is None
    assert controls.state().state_reason == "waiting for journal, execution"
    assert execution.check({}) == []
    assert controls.state().state_reason == "waiting for journal"
    assert controls.trading_state is TradingState.HALTED
    assert journal.check({}) == []
    assert controls.trading_state is TradingState.ACTIVE


@pytest.mark.parametrize("during", ["fault", "operator halt", "operator resume"])
def test_a_state_set_during_the_hold_outlasts_it(system, controls, during):
    start = reconciliation(system, "execution")
    start.begin({}, settled=False)
    if during == "fault":  # a journal that cannot write: REDUCING beats the hold
        assert restrict_to_reducing(system, "journal", "journal: disk full")
        expected = TradingState.REDUCING
    elif during == "operator halt":
        controls.set_trading_state(TradingState.HALTED, "ops", "maintenance")
        expected = TradingState.HALTED
    else:
        controls.set_trading_state(TradingState.ACTIVE, "ops", "resume")
        expected = TradingState.ACTIVE
    assert start.check({}) == []
    assert controls.trading_state is expected
    assert not controls.holds_for("execution")


def test_a_restricted_state_at_start_is_not_held_and_stays(system, controls):
    controls.set_trading_state(TradingState.REDUCING, "ops", "reduce only today")
    start = reconciliation(system, "execution")
    assert start.begin({}, settled=False) is None
    assert start.check({}) == []
    state = controls.state()
    assert (state.trading_state, state.state_by) == (TradingState.REDUCING, "ops")


def test_a_party_restarted_during_its_hold_reconciles_again(system, controls):
    restarted = party(system, "execution", new_run=False)
    assert not must_reconcile(restarted, {"venue": "venue"})
    reconciliation(system, "execution").begin({}, settled=False)
    assert must_reconcile(restarted, {"venue": "venue"})
    assert not must_reconcile(restarted, {}), "nothing to reconcile with"
    assert not must_reconcile(party(system, "journal", new_run=False), {"venue": "venue"})
    assert must_reconcile(party(system, "journal"), {"venue": "venue"})


def journal_with(tmp_path, messages: list[tuple[str, str, dict]], epoch: int = 0):
    """A journal holding `messages` (type, stream, fields) in order, seqs per stream
    (added to what it holds already)."""
    store = JournalStore(tmp_path / "j.sqlite")
    seqs: dict[str, int] = {}
    rows = []
    for kind, stream, fields in messages:
        seq = seqs[stream] = seqs.get(stream, 0) + 1
        order = fields.get("client_order_id")
        payload = orjson.dumps(fields).decode()
        rows.append(
            (epoch, stream, seq, kind, seq, seq, "ES", order, fields.get("intent_id"), payload)
        )
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


def test_only_the_newest_epoch_is_audited(tmp_path):
    """The books compared restarted with it (a state reset, or another run's records
    beside the same journal file)."""
    journal_with(tmp_path, order_flow("A", 1, 3, 4100.0) + order_flow("B", 1, 9, 4101.0))
    path = journal_with(tmp_path, order_flow("A", -1, 1, 4104.0), epoch=1)
    audit = Audit()
    positions = audit_journal(path, POINT, audit, {"orders": 1})
    assert positions["ES"].quantity == -1
    assert (audit.orders, audit.fills, audit.lost, audit.missing_rows) == (1, 1, [], [])


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
