"""Timestamps of a chunk to int64 ns since the epoch, UTC (the schema's `timestamp`).

Time zones use `zoneinfo` (the `tzdata` package where the OS has no zone database).
Converting between wall-clock and UTC time calls zoneinfo once per distinct minute in
the chunk, not once per row: UTC offsets change only on whole minutes (true of every
zone after 1972), so all rows of one minute share an offset.
"""

from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.replay.casting import cast_each

TimestampUnit = Literal["iso", "s", "ms", "us", "ns"]
NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
NS_PER_MINUTE = 60_000_000_000
INT64_MAX = np.iinfo(np.int64).max
_WALL_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZONED = r"[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d(:?\d\d)?)$"
"""ISO 8601 text that ends in a zone designator (a bare date's "-02" is not one)."""
UTC_NS = pa.timestamp("ns", tz="UTC")
WALL_NS = pa.timestamp("ns")


class Problem(IntEnum):
    """Why a timestamp is bad (0 = it is good); the text completes "`timestamp` 'x' ..."."""

    UNPARSABLE = 1
    NO_ZONE = 2
    NONEXISTENT = 3


class TimestampParser:
    """Parses one file's timestamp column, chunk by chunk.

    `zone` reads zoneless times (text without an offset, Parquet timestamps without a
    time zone); None makes them bad, since guessing UTC would shift the whole file.
    """

    def __init__(self, unit: TimestampUnit, zone: ZoneInfo | None) -> None:
        self.unit = unit
        self.zone = zone

    def describe(self, problem: Problem) -> str:
        if problem is Problem.NO_ZONE:
            return "has no time zone and the `timezone` param is not set"
        if problem is Problem.NONEXISTENT:
            return f"does not exist in {self.zone} (skipped by a DST change)"
        if self.unit == "iso":
            return "is not an ISO 8601 timestamp in the ns range (1677-2262)"
        return f"is not an integer count of {self.unit} since the epoch in the ns range"

    def parse(self, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """`values` (without nulls) as int64 ns UTC, and a `Problem` code per value."""
        kind = values.type
        if pa.types.is_timestamp(kind):
            if kind.tz is not None:
                return self._failed_as_unparsable(*cast_each(values, UTC_NS))
            return self._from_wall(*cast_each(values, WALL_NS))
        if self.unit != "iso":
            counts, failed = cast_each(values, pa.int64())
            factor = NS_PER_UNIT[self.unit]
            limit = INT64_MAX // factor
            failed |= (counts > limit) | (counts < -limit)
            return self._failed_as_unparsable(np.where(failed, 0, counts) * factor, failed)
        zoned = pc.match_substring_regex(values, _ZONED).to_numpy(zero_copy_only=False)
        ns = np.zeros(len(values), np.int64)
        problems = np.zeros(len(values), np.uint8)
        if zoned.any():
            ns[zoned], problems[zoned] = self._failed_as_unparsable(
                *cast_each(values.filter(zoned), UTC_NS)
            )
        if not zoned.all():
            wall = ~zoned
            ns[wall], problems[wall] = self._from_wall(
                *cast_each(values.filter(pa.array(wall)), WALL_NS)
            )
        return ns, problems

    @staticmethod
    def _failed_as_unparsable(ns: np.ndarray, failed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ns, failed.astype(np.uint8) * np.uint8(Problem.UNPARSABLE)

    def _from_wall(self, wall_ns: np.ndarray, failed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Wall-clock ns in `zone` to UTC ns."""
        problems = failed.astype(np.uint8) * np.uint8(Problem.UNPARSABLE)
        if self.zone is None:
            problems[~failed] = Problem.NO_ZONE
            return wall_ns, problems
        utc_ns, exists = wall_to_utc(wall_ns, self.zone)
        problems[~failed & ~exists] = Problem.NONEXISTENT
        return utc_ns, problems


def wall_to_utc(wall_ns: np.ndarray, zone: ZoneInfo) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock ns in `zone` to UTC ns, and whether each wall time exists.

    A time repeated when DST ends maps to its first occurrence (PEP 495 fold=0); a time
    skipped when DST starts does not exist (its UTC value is then meaningless).
    """
    minutes, inverse = np.unique(wall_ns // NS_PER_MINUTE, return_inverse=True)
    offsets = np.empty(len(minutes), np.int64)
    exists = np.empty(len(minutes), bool)
    for i, minute in enumerate(minutes.tolist()):
        wall = _WALL_EPOCH + timedelta(minutes=minute)
        offset = wall.replace(tzinfo=zone).utcoffset() or timedelta(0)
        back = (wall - offset).replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        offsets[i] = offset // timedelta(microseconds=1) * 1000
        exists[i] = back == wall
    return wall_ns - offsets[inverse], exists[inverse]


def utc_to_wall(utc_ns: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """UTC ns to wall-clock ns in `zone`."""
    minutes, inverse = np.unique(utc_ns // NS_PER_MINUTE, return_inverse=True)
    offsets = np.empty(len(minutes), np.int64)
    for i, minute in enumerate(minutes.tolist()):
        offset = (_UTC_EPOCH + timedelta(minutes=minute)).astimezone(zone).utcoffset()
        offsets[i] = (offset or timedelta(0)) // timedelta(microseconds=1) * 1000
    return utc_ns + offsets[inverse]


def format_ns(ns: int) -> str:
    """An ns UTC timestamp as ISO 8601, for messages."""
    return f"{np.datetime64(int(ns), 'ns')}Z"
