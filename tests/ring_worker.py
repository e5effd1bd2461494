"""Producer and consumer processes for the cross-process ring tests.

Run as `python tests/ring_worker.py ROLE --ring NAME ...`. Each role reports what
it did as one JSON line on stdout when it finishes.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streamcheck import check_record, make_record

from ringbuf import Doorbell, RingReader, RingWriter, make_wait_strategy

STREAM_TYPE = 7


def produce(args: argparse.Namespace) -> dict[str, int]:
    doorbell = Doorbell.from_fd(args.doorbell_fd) if args.doorbell_fd >= 0 else None
    writer = RingWriter(args.ring, doorbell=doorbell)
    seq = writer.published + 1  # resume after whatever a dead predecessor published
    dropped = 0
    end = args.count
    while seq <= end:
        burst = min(end - seq + 1, args.burst)
        for _ in range(burst):
            if not writer.write(STREAM_TYPE, make_record(seq)):
                dropped += 1
            seq += 1
        if args.pause_us:
            time.sleep(args.pause_us * 1e-6)
    if args.die_unpublished:
        # A producer killed between writing payloads and publishing the cursor.
        for offset in range(args.die_unpublished):
            writer.try_write(STREAM_TYPE, make_record(seq + offset), publish=False)
        os.kill(os.getpid(), signal.SIGKILL)
    return {"next_seq": seq, "dropped": dropped, "ring_dropped": writer.dropped}


def consume(args: argparse.Namespace) -> dict[str, int]:
    doorbell = Doorbell.from_fd(args.doorbell_fd) if args.doorbell_fd >= 0 else None
    reader = RingReader(args.ring, doorbell=doorbell)
    marks = np.memmap(args.marks, dtype=np.uint8, mode="r+")
    # Crash-only: what was handled is whatever the side-effect store says.
    handled = np.flatnonzero(marks)
    state = {"last": int(handled[-1]) if handled.size else 0, "dupes": 0, "slow": 0}
    wait = make_wait_strategy(args.wait, doorbell)
    parks = 0

    def handle(type_id: int, payload: memoryview) -> None:
        assert type_id == STREAM_TYPE, type_id
        seq = check_record(payload)
        if seq <= state["last"]:
            state["dupes"] += 1
            return
        marks[seq] += 1
        state["last"] = seq
        if args.slow_every and seq % args.slow_every == 0:
            time.sleep(0.002)

    while state["last"] < args.until:
        if reader.poll(handle, args.batch) == 0:
            before = time.perf_counter()
            wait.wait([reader], timeout_s=5.0)
            if time.perf_counter() - before > 50e-6:
                parks += 1
    return {"last": state["last"], "dupes": state["dupes"], "idle_waits": parks}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--ring", required=True)
    parser.add_argument("--doorbell-fd", type=int, default=-1)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--burst", type=int, default=1_000_000_000)
    parser.add_argument("--pause-us", type=int, default=0)
    parser.add_argument("--die-unpublished", type=int, default=0)
    parser.add_argument("--marks", default="")
    parser.add_argument("--until", type=int, default=0)
    parser.add_argument("--wait", default="backoff")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--slow-every", type=int, default=0)
    args = parser.parse_args()
    report = produce(args) if args.role == "produce" else consume(args)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
