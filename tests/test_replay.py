"""Replay of CSV / Parquet ticks and bars: the schema's checks, time zones, sessions,
bounded memory, and the actor over real rings (fast, paced, resumed)."""

import asyncio
import gc
import gzip
import logging
import time
from itertools import islice, pairwise
from pathlib import Path

import msgspec
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from actors.common.pacing import MIN_WAKE_INTERVAL_S, DeadlineTimer
from actors.messages import AnyMessage, Bar, Tick
from actors.replay import (
    Chunk,
    ReplayActor,
    ReplayError,
    ReplayParams,
    ReplaySource,
    ReplayStats,
    TradingSession,
    read_chunks,
)
from kernel.codec import Codec
from tests.helpers import StreamCapture, actor_context

NS = 1_000_000_000
TICKS = "timestamp,symbol,price,size,bid,ask"
BARS = "timestamp,symbol,open,high,low,close,volume"


def _csv(tmp_path: Path, *lines: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def _to_parquet(csv_path: str) -> str:
    """The same rows as a Parquet file of text columns (a row's line stays the same)."""
    header = Path(csv_path).read_text().splitlines()[0].split(",")
    table = pcsv.read_csv(
        csv_path,
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
    )
    path = csv_path.replace(".csv", ".parquet")
    pq.write_table(table, path)
    return path


def _read(path: str, **params: object) -> tuple[Chunk, ReplayStats]:
    """Every validated row of the file as one chunk, and the stats."""
    stats = ReplayStats()
    source = msgspec.convert({"path": path, **params}, ReplaySource)
    chunks = list(read_chunks(source, stats))
    if not chunks:
        empty = np.array([], np.int64)
        return Chunk(empty, np.array([], object), empty, {}), stats
    columns = {
        name: np.concatenate([c.columns[name] for c in chunks]) for name in chunks[0].columns
    }
    joined = Chunk(
        np.concatenate([c.lines for c in chunks]),
        np.concatenate([c.symbol for c in chunks]),
        np.concatenate([c.event_ns for c in chunks]),
        columns,
    )
    return joined, stats


def _utc_ns(text: str) -> int:
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


# --- bad rows ---------------------------------------------------------------------------

GOOD_BEFORE = (
    "2024-03-01T14:30:00Z,ES,5000.25,3,5000.0,5000.25",
    "2024-03-01T14:30:01Z,ES,5000.5,1,5000.25,5000.5",
)
GOOD_AFTER = "2024-03-01T14:30:03Z,ES,5000.75,2,5000.5,5000.75"
BAD_TICKS = [
    ("wrong field count", "2024-03-01T14:30:02Z,ES,5000.25,3,5000.0", "malformed"),
    ("empty value", "2024-03-01T14:30:02Z,,5000.25,3,5000.0,5000.25", "malformed"),
    ("unparsable number", "2024-03-01T14:30:02Z,ES,5000.2x,3,5000.0,5000.25", "bad_number"),
    ("fractional size", "2024-03-01T14:30:02Z,ES,5000.25,1.5,5000.0,5000.25", "bad_number"),
    ("unparsable time", "2024-03-01T25:30:02Z,ES,5000.25,3,5000.0,5000.25", "bad_timestamp"),
    ("zoneless time", "2024-03-01T14:30:02,ES,5000.25,3,5000.0,5000.25", "bad_timestamp"),
    ("nan price", "2024-03-01T14:30:02Z,ES,nan,3,5000.0,5000.25", "nan_price"),
    ("infinite ask", "2024-03-01T14:30:02Z,ES,5000.25,3,5000.0,inf", "nan_price"),
    ("zero price", "2024-03-01T14:30:02Z,ES,0,3,5000.0,5000.25", "non_positive_price"),
    ("negative bid", "2024-03-01T14:30:02Z,ES,5000.25,3,-5000.0,5000.25", "non_positive_price"),
    ("negative size", "2024-03-01T14:30:02Z,ES,5000.25,-3,5000.0,5000.25", "negative_size"),
    ("bid above ask", "2024-03-01T14:30:02Z,ES,5000.25,3,5000.5,5000.25", "crossed_quote"),
    ("duplicate", GOOD_BEFORE[1], "duplicate"),
    ("out of order", "2024-03-01T14:29:59Z,ES,5000.25,3,5000.0,5000.25", "out_of_order"),
]
BAD_BARS = [
    ("high below close", "2024-03-01T14:32:00Z,ES,10,10.5,9.5,11,100", "ohlc_inconsistent"),
    ("low above open", "2024-03-01T14:32:00Z,ES,10,12,10.5,11,100", "ohlc_inconsistent"),
    ("negative volume", "2024-03-01T14:32:00Z,ES,10,12,9,11,-1", "negative_size"),
]
GOOD_BARS = (
    "2024-03-01T14:30:00Z,ES,10,12,9,11,100",
    "2024-03-01T14:31:00Z,ES,11,11.5,10,10.25,50",
)
GOOD_BAR_AFTER = "2024-03-01T14:33:00Z,ES,10,10,10,10,0"


def _bad_file_cases() -> list[object]:
    """(kind, lines, reason) per bad row, in CSV and (where Parquet can hold it) Parquet."""
    cases = []
    for fmt in ("csv", "parquet"):
        for name, bad, reason in BAD_TICKS:
            if fmt == "parquet" and reason == "malformed" and name == "wrong field count":
                continue  # a Parquet row cannot have the wrong number of fields
            lines = (TICKS, *GOOD_BEFORE, bad, GOOD_AFTER)
            cases.append(pytest.param(fmt, "ticks", lines, reason, id=f"{fmt}-{name}"))
        for name, bad, reason in BAD_BARS:
            lines = (BARS, *GOOD_BARS, bad, GOOD_BAR_AFTER)
            cases.append(pytest.param(fmt, "bars", lines, reason, id=f"{fmt}-bars-{name}"))
    return cases


@pytest.mark.parametrize(("fmt", "kind", "lines", "reason"), _bad_file_cases())
def test_a_bad_row_raises_naming_the_file_line_and_reason(tmp_path, fmt, kind, lines, reason):
    path = _csv(tmp_path, *lines, name="prints.csv")
    if fmt == "parquet":
        path = _to_parquet(path)
    with pytest.raises(ReplayError) as raised:
        _read(path, kind=kind, on_bad_row="error")
    message = str(raised.value)
    assert message.startswith(f"{path}, line 4: {reason}: "), message
    assert (raised.value.line, raised.value.reason) == (4, reason)


@pytest.mark.parametrize(("fmt", "kind", "lines", "reason"), _bad_file_cases())
def test_a_bad_row_is_skipped_and_counted(tmp_path, fmt, kind, lines, reason):
    path = _csv(tmp_path, *lines)
    if fmt == "parquet":
        path = _to_parquet(path)
    rows, stats = _read(path, kind=kind, on_bad_row="skip")
    assert rows.lines.tolist() == [2, 3, 5]
    assert stats.skipped == {reason: 1} and stats.first_line == {reason: 4}
    assert (stats.rows, stats.emitted) == (4, 3)


def test_the_error_names_the_detail(tmp_path):
    cases = {
        "2024-03-01T14:30:02Z,ES,5000.25,3,5000.0": "expected 6 fields, got 5",
        "2024-03-01T14:30:02Z,ES,abc,3,5000.0,5000.25": "`price` 'abc' is not a number",
        "2024-03-01T14:30:02,ES,5000.25,3,5000.0,5000.25": "has no time zone",
        "2024-03-01T14:30:02Z,ES,5000.25,3,5000.5,5000.25": "bid 5000.5 > ask 5000.25",
        "2024-03-01T14:29:59Z,ES,5000.25,3,5000.0,5000.25": (
            "2024-03-01T14:29:59.000000000Z is before ES's earlier 2024-03-01T14:30:01"
        ),
    }
    for bad, detail in cases.items():
        path = _csv(tmp_path, TICKS, *GOOD_BEFORE, bad)
        with pytest.raises(ReplayError, match=detail):
            _read(path)


def test_the_first_bad_row_in_the_file_is_the_one_reported(tmp_path):
    path = _csv(
        tmp_path,
        TICKS,
        GOOD_BEFORE[0],
        GOOD_BEFORE[0],  # line 3: duplicate (a late check) before...
        "2024-03-01T14:30:02Z,ES,x,3,5000.0,5000.25",  # ...line 4: bad_number (an early one)
    )
    with pytest.raises(ReplayError, match=r"line 3: duplicate"):
        _read(path)
    # Several problems in one row: the first check in the schema's order names it.
    path = _csv(tmp_path, TICKS, "2024-03-01T14:30:02,ES,nan,-1,,5000.25")
    with pytest.raises(ReplayError, match=r"line 2: malformed: `bid` is empty"):
        _read(path)


def test_gaps_are_counted_not_errors(tmp_path):
    path = _csv(
        tmp_path,
        TICKS,
        "2024-03-01T14:30:00Z,ES,5000.25,3,5000.0,5000.25",
        "2024-03-01T14:30:00Z,NQ,18000,1,17999.75,18000",
        "2024-03-01T14:30:30Z,ES,5000.25,3,5000.0,5000.25",
        "2024-03-01T14:35:00Z,ES,5000.25,3,5000.0,5000.25",  # 270 s after ES's last
        "2024-03-01T14:35:00Z,NQ,18000,1,17999.75,18000",  # 300 s after NQ's last
    )
    rows, stats = _read(path, max_gap_s=60.0, on_bad_row="error")
    assert len(rows.lines) == 5
    assert (stats.gaps, stats.largest_gap_ns) == (2, 300 * NS)
    assert _read(path)[1].gaps == 0  # max_gap_s 0: not counted


def test_header_problems_are_errors_on_line_1_whatever_the_policy(tmp_path):
    cases = {
        "timestamp,symbol,price": r"ticks need columns \['size'\]",
        "timestamp,symbol,price,size,bid": r"columns \['bid', 'ask'\] go together",
        "timestamp,symbol,price,size,bid_size,ask_size": r"need \['bid', 'ask'\]",
        "timestamp,symbol,price,price,size": r"repeated columns \['price'\]",
        "": "a header row is required",
    }
    for header, match in cases.items():
        path = _csv(tmp_path, header) if header else str(tmp_path / "empty.csv")
        Path(path).touch()
        with pytest.raises(ReplayError, match=rf"line 1: header: .*{match}"):
            _read(path, on_bad_row="skip")
    table = pa.table({"timestamp": [1], "symbol": [7], "price": [1.0], "size": [1]})
    pq.write_table(table, tmp_path / "typed.parquet")
    with pytest.raises(ReplayError, match=r"line 1: header: `symbol` is int64, expected text"):
        _read(str(tmp_path / "typed.parquet"), timestamp_unit="s")


def test_csv_line_numbers_count_the_header_blank_lines_and_quoted_line_breaks(tmp_path):
    lines = (
        "timestamp,symbol,price,size,note",
        "2024-03-01T14:30:00Z,ES,1,1,",  # 2
        "",  # 3: blank
        '2024-03-01T14:30:01Z,ES,1,1,"two',  # 4: a value over two lines...
        'lines"',  # 5
        "2024-03-01T14:30:02Z,ES,1,1,x,extra",  # 6: malformed
        ",,,,",  # 7: empty fields only, a blank line
        "2024-03-01T14:30:03Z,ES,-1,1,",  # 8: non_positive_price
        "2024-03-01T14:30:04Z,ES,1,1,ok",  # 9
    )
    text = "\r\n".join(lines) + "\r\n"
    for name, data in (("crlf.csv", text.encode()), ("crlf.csv.gz", gzip.compress(text.encode()))):
        (tmp_path / name).write_bytes(data)
        for chunk_rows in (1, 2, 1000):
            rows, stats = _read(str(tmp_path / name), on_bad_row="skip", chunk_rows=chunk_rows)
            assert rows.lines.tolist() == [2, 4, 9], (name, chunk_rows)
            assert stats.first_line == {"malformed": 6, "non_positive_price": 8}
            assert stats.rows == 5


def test_chunk_size_does_not_change_the_result(tmp_path):
    """Order, duplicate and gap state carries across chunks, malformed rows included."""
    rng = np.random.default_rng(3)
    lines = [TICKS]
    t = _utc_ns("2024-03-01T14:30:00")
    for i in range(600):
        symbol = ("ES", "NQ", "CL")[rng.integers(3)]
        t += int(rng.integers(0, 3)) * 10**8
        price = 100 + rng.integers(0, 4) * 0.25
        row = f"{np.datetime64(t, 'ns')}Z,{symbol},{price},{rng.integers(1, 3)},{price},{price}"
        lines.append(row)
        if i % 37 == 5:
            lines.append(row)  # a duplicate
        if i % 53 == 7:
            lines.append(f"{np.datetime64(t - 10**9, 'ns')}Z,{symbol},{price},1,{price},{price}")
        if i % 71 == 9:
            lines.append("garbage,ES")
    path = _csv(tmp_path, *lines)
    reference, reference_stats = _read(path, on_bad_row="skip", max_gap_s=0.15, chunk_rows=10_000)
    assert set(reference_stats.skipped) == {"duplicate", "out_of_order", "malformed"}
    assert reference_stats.gaps > 0
    for chunk_rows in (1, 7, 64):
        rows, stats = _read(path, on_bad_row="skip", max_gap_s=0.15, chunk_rows=chunk_rows)
        assert stats == reference_stats, chunk_rows
        assert rows.lines.tolist() == reference.lines.tolist()
        assert rows.event_ns.tolist() == reference.event_ns.tolist()


# --- formats ----------------------------------------------------------------------------


def _random_ticks(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    event_ns = _utc_ns("2024-03-01T14:30:00") + np.cumsum(rng.integers(0, 5_000_000, n))
    bid = 4000 + np.round(np.cumsum(rng.normal(0, 0.3, n)) * 4) / 4
    ask = bid + 0.25 * rng.integers(1, 3, n)
    return pa.table(
        {
            "timestamp": pa.array(event_ns, pa.timestamp("ns", "UTC")),
            "symbol": pa.array(rng.choice(["ES", "NQ", "YM"], n)),
            "price": np.where(rng.random(n) < 0.5, bid, ask) + rng.normal(0, 1e-9, n),
            "size": rng.integers(1, 30, n),
            "bid": bid,
            "ask": ask,
            "bid_size": rng.integers(0, 50, n),
            "ask_size": rng.integers(0, 50, n),
        }
    )


def test_csv_and_parquet_give_identical_ticks(tmp_path):
    table = _random_ticks(5000)
    pcsv.write_csv(table, tmp_path / "ticks.csv")
    pq.write_table(table, tmp_path / "ticks.parquet", row_group_size=1000)
    from_csv, csv_stats = _read(str(tmp_path / "ticks.csv"), chunk_rows=777)
    from_parquet, parquet_stats = _read(str(tmp_path / "ticks.parquet"), chunk_rows=1024)
    assert csv_stats.emitted == parquet_stats.emitted == 5000
    assert from_csv.lines.tolist() == from_parquet.lines.tolist() == list(range(2, 5002))
    assert from_csv.symbol.tolist() == from_parquet.symbol.tolist() == table["symbol"].to_pylist()
    expected_ns = table["timestamp"].cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(from_csv.event_ns, expected_ns)
    np.testing.assert_array_equal(from_parquet.event_ns, expected_ns)
    for name, column in from_csv.columns.items():
        np.testing.assert_array_equal(column, from_parquet.columns[name], err_msg=name)
        np.testing.assert_array_equal(column, table[name].to_numpy(), err_msg=name)
    assert from_csv.columns["size"].dtype == np.int64


def test_optional_quote_columns_default_to_unknown(tmp_path):
    path = _csv(tmp_path, "symbol,size,price,timestamp", "ES,2,10.5,2024-03-01T14:30:00Z")
    rows, _ = _read(path, format="csv")
    assert rows.columns["price"].tolist() == [10.5] and rows.columns["size"].tolist() == [2]
    assert np.isnan(rows.columns["bid"]).all() and np.isnan(rows.columns["ask"]).all()
    assert rows.columns["bid_size"].tolist() == [0] == rows.columns["ask_size"].tolist()


def test_bars_replay_from_both_formats(tmp_path):
    path = _csv(tmp_path, BARS, *GOOD_BARS, GOOD_BAR_AFTER)
    for source in (path, _to_parquet(path)):
        rows, stats = _read(source, kind="bars")
        assert stats.emitted == 3
        assert rows.columns["close"].tolist() == [11.0, 10.25, 10.0]
        assert rows.columns["volume"].tolist() == [100, 50, 0]
        assert rows.event_ns[1] == _utc_ns("2024-03-01T14:31:00")


# --- time zones and sessions --------------------------------------------------------------


def test_timestamps_with_offsets_without_zone_and_as_epoch_counts(tmp_path):
    expected = [_utc_ns("2024-01-15T14:30:00"), _utc_ns("2024-07-15T13:30:00.25")]
    texts = {
        "zoneless, in the timezone param": ("2024-01-15 09:30:00", "2024-07-15T09:30:00.25"),
        "with offsets, whatever the param": (
            "2024-01-15T09:30:00-05:00",
            "2024-07-15 15:30:00.25+02",
        ),
        "Z": ("2024-01-15T14:30:00Z", "2024-07-15T13:30:00.250000000Z"),
    }
    for case, (winter, summer) in texts.items():
        path = _csv(tmp_path, TICKS, f"{winter},ES,1,1,1,1", f"{summer},ES,1,1,1,1")
        rows, _ = _read(path, timezone="America/New_York")
        assert rows.event_ns.tolist() == expected, case
    for unit, per_ns in (("s", NS), ("ms", 10**6), ("us", 10**3), ("ns", 1)):
        first, second = (t // per_ns for t in expected)
        path = _csv(tmp_path, TICKS, f"{first},ES,1,1,1,1", f"{second},ES,1,1,1,1")
        rows, _ = _read(path, timestamp_unit=unit, timezone="Asia/Tokyo")  # epochs are UTC
        assert rows.event_ns.tolist() == [t // per_ns * per_ns for t in expected], unit


def test_dst_gaps_are_bad_and_repeated_hours_read_as_their_first_occurrence(tmp_path):
    path = _csv(tmp_path, TICKS, "2024-03-10 02:30:00,ES,1,1,1,1")
    with pytest.raises(ReplayError, match="does not exist in America/New_York"):
        _read(path, timezone="America/New_York")
    path = _csv(tmp_path, TICKS, "2024-11-03 01:30:00,ES,1,1,1,1")
    rows, _ = _read(path, timezone="America/New_York")
    assert rows.event_ns.tolist() == [_utc_ns("2024-11-03T05:30:00")]  # EDT, UTC-4


def test_parquet_timestamp_columns_with_and_without_zone(tmp_path):
    expected = [_utc_ns("2024-01-15T14:30:00"), _utc_ns("2024-07-15T13:30:00")]
    wall = [_utc_ns("2024-01-15T09:30:00"), _utc_ns("2024-07-15T09:30:00")]
    columns = {  # the `timezone` param for each column
        "America/New_York": pa.array(wall, pa.timestamp("ns")),  # wall-clock: read in the param
        "Asia/Tokyo": pa.array(expected, pa.timestamp("ns", "America/New_York")),  # absolute
    }
    for timezone, stamps in columns.items():
        table = pa.table(
            {"timestamp": stamps, "symbol": ["ES", "ES"], "price": [1.0, 1.0], "size": [1, 1]}
        )
        pq.write_table(table, tmp_path / "stamps.parquet")
        rows, _ = _read(str(tmp_path / "stamps.parquet"), timezone=timezone)
        assert rows.event_ns.tolist() == expected, timezone


def test_the_session_filter_keeps_regular_hours_on_weekdays(tmp_path):
    times = {
        "2024-03-08T14:29:59Z": False,  # Friday 09:29:59 EST
        "2024-03-08T14:30:00Z": True,  # 09:30:00 EST: the open is inside
        "2024-03-08T20:59:59Z": True,
        "2024-03-08T21:00:00Z": False,  # 16:00: the close is outside
        "2024-03-09T15:00:00Z": False,  # Saturday
        "2024-03-11T13:29:00Z": False,  # Monday 09:29 EDT (DST began on Sunday)
        "2024-03-11T13:30:00Z": True,  # Monday 09:30 EDT
    }
    path = _csv(tmp_path, TICKS, *(f"{t},ES,1,1,1,1" for t in times))
    session = {"timezone": "America/New_York", "start": "09:30", "end": "16:00"}
    rows, stats = _read(path, session=session, on_bad_row="error")
    assert rows.event_ns.tolist() == [_utc_ns(t.rstrip("Z")) for t, kept in times.items() if kept]
    assert stats.outside_session == 4 and stats.emitted == 3 and not stats.skipped


def test_an_overnight_session_belongs_to_the_day_it_opened(tmp_path):
    times = {
        "2024-03-03T17:59:00-06:00": False,  # Sunday before the open
        "2024-03-03T18:30:00-06:00": True,  # Sunday evening: Sunday's session
        "2024-03-04T02:00:00-06:00": True,  # Monday night: still Sunday's session
        "2024-03-04T17:30:00-06:00": False,  # the daily break
        "2024-03-08T16:59:00-06:00": True,  # Friday afternoon: Thursday's session
        "2024-03-08T18:30:00-06:00": False,  # Friday evening: no session opens on Friday
        "2024-03-09T10:00:00-06:00": False,  # Saturday
    }
    path = _csv(tmp_path, TICKS, *(f"{t},ES,1,1,1,1" for t in times))
    session = {"timezone": "America/Chicago", "start": "18:00", "end": "17:00"}
    session["days"] = [6, 0, 1, 2, 3]  # Sunday to Thursday
    rows, stats = _read(path, session=session, max_gap_s=3600.0)
    assert rows.lines.tolist() == [i + 2 for i, kept in enumerate(times.values()) if kept]
    assert stats.outside_session == 4
    # 7.5 h between the two rows of Sunday's session is a gap; Thursday's is a new session.
    assert (stats.gaps, stats.largest_gap_ns) == (1, int(7.5 * 3600) * NS)


def test_params_are_checked_when_the_config_is_parsed():
    parse = ReplayActor.parse_params
    params = parse({"path": "x.csv", "pace": "xN", "speed": 10, "session": {"timezone": "UTC"}})
    assert (params.kind, params.on_bad_row, params.chunk_rows) == ("ticks", "error", 16_384)
    assert ReplayActor.required_ports(params) == {"ticks"}
    assert params.session == TradingSession(timezone="UTC")
    bad = {
        "unknown field `sped`": {"path": "x.csv", "sped": 1},
        "timeframe_s": {"path": "x.csv", "kind": "bars"},
        "unknown timezone": {"path": "x.csv", "timezone": "Mars/Olympus"},
        "unknown session timezone": {"path": "x.csv", "session": {"timezone": "Nowhere"}},
        "start and end must differ": {
            "path": "x.csv",
            "session": {"timezone": "UTC", "start": "09:30", "end": "09:30"},
        },
        "cannot tell the format": {"path": "x.txt"},
        "pace": {"path": "x.csv", "pace": "x10"},
    }
    for match, raw in bad.items():
        with pytest.raises(msgspec.ValidationError, match=match):
            parse(raw)
    assert parse({"path": "x.txt", "format": "csv"}).format == "csv"


# --- a million rows ---------------------------------------------------------------------


def _write_million(tmp_path: Path) -> tuple[str, str]:
    """1,000,000 ticks as CSV (ISO timestamps) and Parquet, written 100,000 at a time."""
    csv_path, parquet_path = str(tmp_path / "million.csv"), str(tmp_path / "million.parquet")
    schema = _random_ticks(1).schema
    next_ns = _utc_ns("2024-03-01T14:30:00")
    with (
        pcsv.CSVWriter(csv_path, schema) as csv_writer,
        pq.ParquetWriter(parquet_path, schema) as parquet_writer,
    ):
        for block in range(10):
            table = _random_ticks(100_000, seed=block)
            stamps = table["timestamp"].cast(pa.int64()).to_numpy()
            stamps = stamps - stamps[0] + next_ns  # each block continues the previous one
            next_ns = int(stamps[-1]) + 1
            table = table.set_column(0, "timestamp", pa.array(stamps, pa.timestamp("ns", "UTC")))
            csv_writer.write_table(table)
            parquet_writer.write_table(table)
    return csv_path, parquet_path


def test_a_million_rows_replay_in_bounded_memory(tmp_path):
    paths = _write_million(tmp_path)
    process = psutil.Process()
    for path in paths:
        source = ReplaySource(path=path, on_bad_row="error")
        warm_up = read_chunks(source, ReplayStats())
        for _ in islice(warm_up, 3):
            pass  # the allocator grows to a chunk's working set before the baseline
        warm_up.close()
        gc.collect()
        baseline = peak = process.memory_info().rss
        stats = ReplayStats()
        rows = 0
        for chunk in read_chunks(source, stats):
            rows += len(chunk.lines)
            peak = max(peak, process.memory_info().rss)
        growth_mb = (peak - baseline) / 2**20
        assert rows == stats.emitted == stats.rows == 1_000_000
        # The rows alone take ~70 MiB as numpy arrays (more as text): far above the bound.
        assert growth_mb < 50


# --- the actor --------------------------------------------------------------------------


def _replay(
    capture, path: str, published: int = 0, **params: object
) -> tuple[ReplayActor, StreamCapture]:
    """A ReplayActor over a real ring; `published` rows as if from a predecessor."""
    parsed = msgspec.convert({"path": path, **params}, ReplayParams)
    out = capture(parsed.kind, Codec.from_union(AnyMessage), already_published=published)
    return ReplayActor(parsed, actor_context("replay", {parsed.kind: out.stream})), out


def _assert_ticks(ticks: list[Tick], table: pa.Table) -> None:
    assert [t.symbol for t in ticks] == table["symbol"].to_pylist()
    assert [t.event_ns for t in ticks] == table["timestamp"].cast(pa.int64()).to_pylist()
    for name in ("price", "size", "bid", "ask", "bid_size", "ask_size"):
        assert [getattr(t, name) for t in ticks] == table[name].to_pylist(), name


async def test_fast_replay_publishes_every_tick_and_logs_the_stats(tmp_path, capture, caplog):
    table = _random_ticks(3000)
    pcsv.write_csv(table, tmp_path / "ticks.csv")
    actor, out = _replay(capture, str(tmp_path / "ticks.csv"), pace="fast", chunk_rows=500)
    with caplog.at_level(logging.INFO, logger="actor.replay"):
        await actor.on_start()
        await asyncio.wait_for(actor._task, 30)
    ticks = out.messages
    assert len(ticks) == actor.published == 3000
    assert [t.seq for t in ticks] == list(range(1, 3001))
    assert all(type(t) is Tick and t.regime == -1 and t.origin_ns == t.ts_ns > 0 for t in ticks)
    _assert_ticks(ticks, table)
    assert "3000 rows: 3000 emitted, skipped none" in caplog.text
    await actor.on_stop()


async def test_a_replay_whose_stream_holds_rows_skips_them(tmp_path, capture):
    table = _random_ticks(2500)
    pq.write_table(table, tmp_path / "ticks.parquet")
    path = str(tmp_path / "ticks.parquet")
    actor, out = _replay(capture, path, published=1200, pace="fast", chunk_rows=512)
    await actor.on_start()
    await asyncio.wait_for(actor._task, 30)
    ticks = out.messages
    assert len(ticks) == 1300 and actor.published == 2500
    assert [t.seq for t in ticks] == list(range(1201, 2501))
    _assert_ticks(ticks, table.slice(1200))
    await actor.on_stop()


async def test_bars_are_published_with_their_span(tmp_path, capture):
    path = _csv(tmp_path, BARS, *GOOD_BARS, GOOD_BAR_AFTER)
    actor, out = _replay(capture, path, kind="bars", timeframe_s=60, pace="fast")
    await actor.on_start()
    await asyncio.wait_for(actor._task, 30)
    bars = out.messages
    assert [type(b) for b in bars] == [Bar] * 3
    first = bars[0]
    assert (first.symbol, first.timeframe_s, first.open, first.high, first.low) == (
        "ES",
        60,
        10.0,
        12.0,
        9.0,
    )
    assert (first.close, first.volume) == (11.0, 100)
    assert first.start_ns == _utc_ns("2024-03-01T14:30:00")
    assert first.end_ns == first.start_ns + 60 * NS
    assert np.isnan(first.atr)
    await actor.on_stop()


async def test_paced_replay_follows_market_time_without_busy_waiting(
    tmp_path, capture, monkeypatch
):
    """51 rows 20 ms apart at x4 (5 ms apart), then a 1-hour gap that takes no time, then
    51 more: ~0.5 s in all."""
    t0 = _utc_ns("2024-03-01T14:30:00")
    stamps = [t0 + i * 20_000_000 for i in range(51)]
    stamps += [stamps[-1] + 3600 * NS + i * 20_000_000 for i in range(51)]
    path = _csv(tmp_path, TICKS, *(f"{np.datetime64(t, 'ns')}Z,ES,1,1,1,1" for t in stamps))
    waits: list[tuple[float, float]] = []  # (deadline, when it returned)
    real_sleep_until = DeadlineTimer.sleep_until

    async def recording_sleep_until(timer: DeadlineTimer, deadline_s: float) -> None:
        await real_sleep_until(timer, deadline_s)
        waits.append((deadline_s, time.monotonic()))

    monkeypatch.setattr(DeadlineTimer, "sleep_until", recording_sleep_until)
    actor, out = _replay(capture, path, pace="xN", speed=4.0, max_gap_s=60.0, chunk_rows=40)
    await actor.on_start()
    await asyncio.wait_for(actor._task, 30)
    ticks = out.messages
    assert [t.event_ns for t in ticks] == stamps
    wall_s = [(t.ts_ns - ticks[0].ts_ns) / NS for t in ticks]
    market_s = [i * 0.005 for i in range(51)] + [0.25 + i * 0.005 for i in range(51)]
    # Due relative to the first row (whose own publish may lag the clock's start by a few
    # ms), late by no more than a loaded machine's timer slack; the gap took no time.
    late = [w - m for w, m in zip(wall_s, market_s, strict=True)]
    assert min(late) >= -0.005 and max(late) <= 0.15, late
    assert all(
        deadline >= woke + MIN_WAKE_INTERVAL_S for (_, woke), (deadline, _) in pairwise(waits)
    )
    assert len(waits) <= 2 * len(ticks)  # no busy waiting
    await actor.on_stop()


async def test_a_bad_row_fails_the_replay_task(tmp_path, capture):
    path = _csv(tmp_path, TICKS, *GOOD_BEFORE, BAD_TICKS[-1][1])
    actor, out = _replay(capture, path, pace="fast")
    await actor.on_start()
    with pytest.raises(ReplayError, match="line 4: out_of_order"):
        await asyncio.wait_for(actor._task, 30)
    assert len(out.messages) == 0  # the chunk with the bad row is not published
    await actor.on_stop()
