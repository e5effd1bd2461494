"""Latency histograms in shared memory: recorded on the hot path, read from anywhere.

Each recording process owns one segment `<system>.lat.<owner>` (a Kind.LATENCY
segment of ringbuf.shm, lifetime RUN, owned by the run's supervisor so that a restarted
recorder finds its counts and the run's clean stop removes them) holding named series;
each series is a high-dynamic-range histogram (HDR-style log-linear buckets: values
below 32 ns exact, above that 16 buckets per power of two, so any value is known to
within 1/16 = 6.25 %), plus the exact maximum and the count.
One writer per series, no locks; readers (the benchmark, /metrics) copy the counts.
Recording is `ringbuf._core.HdrSeries.record`, in C: three stores, ~0.05 us.
"""

import contextlib
import mmap
from dataclasses import dataclass

import numpy as np

from kernel.health import run_owner
from ringbuf import shm
from ringbuf._core import HdrSeries, hdr_bucket

VERSION = 1
SUB_BITS = 5
BUCKETS = 640  # up to 2**41 ns (~37 minutes); larger values land in the last bucket
NAME_BYTES = 48
# After the common header: series count, reserved x3; then the names, then the series.
HEADER_WORDS = shm.HEADER_BYTES // 8 + 4
SERIES_WORDS = 2 + BUCKETS  # count, max, buckets
_COUNT_AT = shm.HEADER_BYTES
_NAMES_AT = HEADER_WORDS * 8


def bucket_of(value_ns: int) -> int:
    """The bucket index of a value (negative values count as 0): the one `HdrSeries`
    (ringbuf/_core.c, the writer) counts it in."""
    return hdr_bucket(value_ns, BUCKETS)


def bucket_bounds(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive lower and exclusive upper value of buckets, in ns."""
    index = np.asarray(index, dtype=np.int64)
    exact = index < 32
    shift = np.where(exact, 0, (index >> 4) - 1)
    mantissa = np.where(exact, index, (index & 15) + 16)
    low = mantissa << shift
    high = (mantissa + 1) << shift
    return low, high


def latency_name(system: str, owner: str) -> str:
    return f"{system}.lat.{owner}"


def latency_path(system: str, owner: str) -> str:
    return shm.segment_path(latency_name(system, owner))


class LatencyRecorder:
    """One process's histograms, by series name; created or re-attached by name.

    A restarted owner re-attaches its segment and keeps adding to the same counts.
    """

    def __init__(self, system: str, owner: str, series: list[str]) -> None:
        self.path = latency_path(system, owner)
        names = _names_block(series)

        def init(mapping: mmap.mmap) -> None:
            mapping[_COUNT_AT : _COUNT_AT + 8] = len(series).to_bytes(8, "little")
            mapping[_NAMES_AT : _NAMES_AT + len(names)] = names

        self._segment, _ = shm.create_or_attach(
            latency_name(system, owner),
            shm.Kind.LATENCY,
            VERSION,
            8 * _file_words(len(series)) - shm.HEADER_BYTES,
            shm.Lifetime.RUN,
            owner=run_owner(system),
            init=init,
        )
        mapping = self._segment.mapping
        if mapping[_NAMES_AT : _NAMES_AT + len(names)] != names:
            self._segment.close()
            raise ValueError(f"{self.path} is not a histogram file of these series")
        first = HEADER_WORDS + len(series) * NAME_BYTES // 8
        self._series = {
            name: HdrSeries(mapping, 8 * (first + i * SERIES_WORDS), BUCKETS)
            for i, name in enumerate(series)
        }

    def series(self, name: str) -> HdrSeries:
        return self._series[name]

    def close(self) -> None:
        for series in self._series.values():
            series.release()
        self._series.clear()
        with contextlib.suppress(BufferError):
            self._segment.close()


def _file_words(series_count: int) -> int:
    return HEADER_WORDS + series_count * (SERIES_WORDS + NAME_BYTES // 8)


def _names_block(series: list[str]) -> bytes:
    """The series names as stored: NUL-padded NAME_BYTES each."""
    return b"".join(name.encode()[:NAME_BYTES].ljust(NAME_BYTES, b"\0") for name in series)


@dataclass
class Histogram:
    """A copy of one series, with percentiles computed from its buckets."""

    name: str
    counts: np.ndarray
    max_ns: int

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def percentile(self, q: float) -> float:
        """The value (ns) at quantile q in [0, 100]: the upper edge of its bucket, capped
        at the exact maximum, so the figure never understates a latency."""
        total = self.count
        if total == 0:
            return float("nan")
        rank = max(1, int(np.ceil(q / 100 * total)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        _, high = bucket_bounds(np.array([index]))
        return float(min(int(high[0]) - 1, self.max_ns))

    def merged(self, other: "Histogram") -> "Histogram":
        return Histogram(self.name, self.counts + other.counts, max(self.max_ns, other.max_ns))


def read_histograms(system: str) -> dict[str, Histogram]:
    """Every series of every owner of a system, as `<owner>.<series>`.

    Segments that vanish or are not histograms of this version are skipped: readers
    (/metrics, the benchmark) must not fail on one bad file.
    """
    out: dict[str, Histogram] = {}
    prefix = latency_name(system, "")
    for name in shm.segment_names(prefix):
        owner = name[len(prefix) :]
        try:
            _, raw = shm.read(name, shm.Kind.LATENCY, VERSION)
        except (shm.ShmError, OSError):
            continue
        words = np.frombuffer(raw, dtype=np.uint64)
        count = int(words[_COUNT_AT // 8])
        if len(words) != _file_words(count):
            continue
        first = HEADER_WORDS + count * NAME_BYTES // 8
        for i in range(count):
            at = _NAMES_AT + i * NAME_BYTES
            series = raw[at : at + NAME_BYTES].rstrip(b"\0").decode()
            base = first + i * SERIES_WORDS
            out[f"{owner}.{series}"] = Histogram(
                name=f"{owner}.{series}",
                counts=words[base + 2 : base + 2 + BUCKETS].astype(np.int64),
                max_ns=int(words[base + 1]),
            )
    return out
