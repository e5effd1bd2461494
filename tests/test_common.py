"""The pieces in actors/common shared by several actors, and the shared constrained types
now used by the actors' parameter Structs."""

import math

import msgspec
import pytest

from actors.common.recent import RecentIds
from actors.feed.market import MarketParams
from actors.replay.session import TradingSession
from actors.risk.limits import RiskLimits
from actors.venue.venue import SymbolSpec

# --- RecentIds --------------------------------------------------------------------------


def test_recent_ids_forget_the_oldest_beyond_capacity():
    ids = RecentIds(2)
    assert ids.add("a") and ids.add("b") and not ids.add("a")
    assert ids.add("c")
    assert "a" not in ids and "b" in ids and "c" in ids and len(ids) == 2
    assert ids.add("a")  # forgotten, so admitted again
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(0)


def test_recent_ids_newest_is_the_tail_oldest_first():
    ids = RecentIds(10)
    for item in "abcde":
        ids.add(item)
    assert ids.newest(3) == ["c", "d", "e"]
    assert ids.newest(99) == ["a", "b", "c", "d", "e"]
    assert ids.newest(0) == []


class _State(msgspec.Struct):
    intent_ids: list[str]


@pytest.mark.parametrize("codec", [msgspec.msgpack, msgspec.json])
def test_recent_ids_round_trip_through_a_msgspec_struct(codec):
    ids = RecentIds(3)
    for item in ["i1", "i2", "i1", "i3", "i4"]:
        ids.add(item)
    blob = codec.encode(_State(intent_ids=ids.to_list()))
    back = RecentIds.from_list(ids.capacity, codec.decode(blob, type=_State).intent_ids)
    assert back.to_list() == ids.to_list() == ["i2", "i3", "i4"]
    assert not back.add("i3")  # still a duplicate after the restart
    assert back.add("i5") and "i2" not in back  # and the oldest still goes first


def test_recent_ids_from_list_keeps_the_newest_under_a_smaller_capacity():
    back = RecentIds.from_list(2, ["a", "b", "b", "c"])
    assert back.to_list() == ["b", "c"] and back.capacity == 2


# --- shared constrained types -------------------------------------------------------------


@pytest.mark.parametrize(
    ("struct", "field"),
    [
        (RiskLimits, "max_notional"),
        (SymbolSpec, "tick_size"),
        (MarketParams, "start_price"),
    ],
)
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_parameters_fail_validation_with_their_path(struct, field, value):
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        msgspec.convert({field: value}, struct)


def test_a_weekday_outside_monday_to_sunday_fails_validation():
    with pytest.raises(msgspec.ValidationError, match=r"\$\.days\[0\]"):
        msgspec.convert({"days": [7]}, TradingSession)
