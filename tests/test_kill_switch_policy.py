"""An engaged kill switch is checked at every stage an order passes: the risk gate
(tests/test_risk.py), the execution actor and the venue adapter, each against its own
book. Engaged with `reducing_allowed`, an order that only reduces a position still passes
everywhere; one that opens or flips a position passes nowhere."""

import math

from actors.messages import Direction, OrderReject, RejectReason
from actors.risk.killswitch import KillSwitch, reduces_exposure
from tests.helpers import TEST_SYSTEM
from tests.test_execution import _execution, _fill, _verdict
from tests.test_venue import _fills, _order, _traded


def test_only_an_order_towards_flat_reduces_exposure():
    assert reduces_exposure(3, -1, 3) and reduces_exposure(-2, 1, 1)
    assert not reduces_exposure(3, -1, 4), "a flip opens the other side"
    assert not reduces_exposure(3, 1, 1) and not reduces_exposure(0, -1, 1)


async def test_execution_holds_back_what_the_switch_stops(capture):
    actor, out = await _execution(capture)
    actor.on_message(_verdict("I-1", quantity=2))
    actor.on_message(_fill("f-1", 2, leaves=0, client_order_id="I-1-1"))
    with KillSwitch.open(TEST_SYSTEM) as switch:
        switch.engage("runaway strategy", "ops", reducing_allowed=True)
        actor.on_message(_verdict("I-2", quantity=1))  # approved before the switch: opens
        actor.on_message(_verdict("I-3", quantity=2, direction=Direction.SHORT))  # closes
        sent = [order.intent_id for order in out.messages]
        assert sent == ["I-1", "I-3"] and actor.counts.kill_switch_blocked == 1
        switch.reset("ops")
        switch.engage("runaway strategy", "ops")
        actor.on_message(_verdict("I-4", quantity=1, direction=Direction.SHORT))
        assert actor.counts.kill_switch_blocked == 2 and len(out.messages) == 2


async def test_the_venue_adapter_rejects_what_the_switch_stops_and_remembers_it(capture):
    actor, out = await _traded(capture)
    actor.on_message(_order("A", Direction.LONG, 2))
    assert sum(f.quantity for f in _fills(out)) == 2
    with KillSwitch.open(TEST_SYSTEM) as switch:
        switch.engage("exchange outage", "ops", reducing_allowed=True)
        actor.on_message(_order("B", Direction.LONG, 1))
        actor.on_message(_order("C", Direction.SHORT, 2))
        (reject,) = [m for m in out.messages if type(m) is OrderReject]
        assert (reject.client_order_id, reject.reason) == ("B", RejectReason.KILL_SWITCH)
        assert "exchange outage" in reject.detail
        assert [f.client_order_id for f in _fills(out)] == ["A", "C"]
        switch.reset("ops")
        actor.on_message(_order("B", Direction.LONG, 1))  # the same id: the same answer
        assert [m.reason for m in out.messages if type(m) is OrderReject] == [
            RejectReason.KILL_SWITCH
        ] * 2
        assert math.isclose(sum(f.quantity for f in _fills(out)), 4)
