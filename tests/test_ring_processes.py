"""Two real processes on one ring: loss, duplication, order, tearing, kill -9."""

import os
import random
import signal

import numpy as np
import pytest

from ringbuf import Doorbell, RingReader, create_ring, destroy_ring
from ringbuf.procs import holder_alive
from tests.helpers import wait_until

MILLION = 1_000_000


@pytest.fixture
def marks(tmp_path):
    """The consumer's side-effect store: marks[seq] counts how often seq was handled."""

    def make(count: int) -> tuple[str, np.memmap]:
        path = tmp_path / "marks.bin"
        store = np.memmap(path, dtype=np.uint8, mode="w+", shape=(count + 1,))
        store.flush()
        return str(path), store

    return make


def assert_exactly_once(store: np.ndarray, count: int) -> None:
    handled = np.asarray(store[1 : count + 1])
    missing = np.flatnonzero(handled == 0) + 1
    doubled = np.flatnonzero(handled > 1) + 1
    assert missing.size == 0, f"{missing.size} lost, first {missing[:5]}"
    assert doubled.size == 0, f"{doubled.size} handled twice, first {doubled[:5]}"


def test_million_messages_between_processes(ring_name, workers, marks):
    segment = create_ring(ring_name, 1 << 16)
    path, store = marks(MILLION)
    consumer = workers(
        "consume", "--ring", ring_name, "--marks", path, "--until", str(MILLION), "--wait", "spin"
    )
    producer = workers("produce", "--ring", ring_name, "--count", str(MILLION))
    assert producer.report()["next_seq"] == MILLION + 1
    report = consumer.report()
    assert report["last"] == MILLION and report["dupes"] == 0
    assert_exactly_once(store, MILLION)
    destroy_ring(segment)


def test_million_messages_to_a_parked_consumer(ring_name, workers, marks):
    segment = create_ring(ring_name, 1 << 16, doorbell=True)
    doorbell = Doorbell.create()
    path, store = marks(MILLION)
    fd = str(doorbell.fd)
    consumer = workers(
        "consume",
        "--ring",
        ring_name,
        "--marks",
        path,
        "--until",
        str(MILLION),
        "--wait",
        "park",
        "--doorbell-fd",
        fd,
        pass_fds=(doorbell.fd,),
    )
    # Bursts with pauses: the consumer drains, parks on the eventfd, and must be woken.
    producer = workers(
        "produce",
        "--ring",
        ring_name,
        "--count",
        str(MILLION),
        "--burst",
        "997",
        "--pause-us",
        "300",
        "--doorbell-fd",
        fd,
        pass_fds=(doorbell.fd,),
    )
    producer.report()
    report = consumer.report()
    assert report["last"] == MILLION and report["dupes"] == 0
    assert report["idle_waits"] > 100, "the consumer never parked"
    assert_exactly_once(store, MILLION)
    doorbell.close()
    destroy_ring(segment)


def test_slow_consumer_blocks_the_producer_without_loss(ring_name, workers, marks):
    count = 200_000
    segment = create_ring(ring_name, 4096, full_policy="block")
    path, store = marks(count)
    consumer = workers(
        "consume",
        "--ring",
        ring_name,
        "--marks",
        path,
        "--until",
        str(count),
        "--slow-every",
        "5000",
    )
    producer = workers("produce", "--ring", ring_name, "--count", str(count))
    assert producer.report()["dropped"] == 0
    assert consumer.report()["last"] == count
    assert_exactly_once(store, count)
    destroy_ring(segment)


def test_slow_consumer_under_drop_policy_counts_every_drop(ring_name, workers, marks):
    count = 200_000
    segment = create_ring(ring_name, 4096, full_policy="drop")
    path, store = marks(count)
    consumer = workers(
        "consume",
        "--ring",
        ring_name,
        "--marks",
        path,
        "--until",
        str(count),
        "--slow-every",
        "5000",
    )
    producer = workers("produce", "--ring", ring_name, "--count", str(count))
    produced = producer.report()
    # The last message may itself be dropped: stop the consumer by its mark count instead.
    delivered = count - produced["dropped"]
    wait_until(lambda: int(np.count_nonzero(store)) == delivered, 60, "all undropped messages")
    consumer.kill9()
    assert produced["dropped"] > 0, "the consumer was never slow enough to fill the ring"
    assert produced["ring_dropped"] == produced["dropped"]
    assert int(store.max()) == 1, "a message was handled twice"
    with RingReader(ring_name) as reader:
        assert reader.dropped == produced["dropped"]
        assert reader.consumed == delivered
    destroy_ring(segment)


def test_consumer_killed_mid_stream_resumes_without_loss_or_double_handling(
    ring_name, workers, marks
):
    count = 300_000
    segment = create_ring(ring_name, 1 << 14)
    path, store = marks(count)
    producer = workers("produce", "--ring", ring_name, "--count", str(count))
    rng = random.Random(7)
    kills = 0
    while True:
        consumer = workers(
            "consume", "--ring", ring_name, "--marks", path, "--until", str(count), "--batch", "64"
        )
        if kills == 5:
            break
        before = int(np.count_nonzero(store))
        target = min(count - 1, before + rng.randrange(5_000, 40_000))
        wait_until(lambda t=target: int(np.count_nonzero(store)) >= t, 60, "consumer progress")
        consumer.kill9()
        kills += 1
        # The dead consumer's claim is free again once the process is gone.
        with RingReader(ring_name) as probe:
            assert probe.consumed <= int(np.count_nonzero(store))
    producer.report()
    report = consumer.report()
    assert report["last"] == count
    assert_exactly_once(store, count)
    destroy_ring(segment)


def test_producer_killed_between_payload_and_publish(ring_name, workers, marks):
    count = 50_000
    segment = create_ring(ring_name, 1 << 16)
    path, store = marks(count)
    consumer = workers("consume", "--ring", ring_name, "--marks", path, "--until", str(count))
    first = workers(
        "produce", "--ring", ring_name, "--count", str(count // 2), "--die-unpublished", "40"
    )
    assert first.exit_code() == -signal.SIGKILL
    # Everything published before the death is delivered; the 40 unpublished records never are.
    wait_until(lambda: int(np.count_nonzero(store)) == count // 2, 60, "first half")
    second = workers("produce", "--ring", ring_name, "--count", str(count))
    assert second.report()["next_seq"] == count + 1
    assert consumer.report()["last"] == count
    assert_exactly_once(store, count)
    destroy_ring(segment)


def test_producer_killed_at_random_points_never_tears_a_record(ring_name, workers, marks):
    count = 400_000
    segment = create_ring(ring_name, 1 << 14)
    path, store = marks(count)
    consumer = workers("consume", "--ring", ring_name, "--marks", path, "--until", str(count))
    rng = random.Random(11)
    for _ in range(6):
        producer = workers("produce", "--ring", ring_name, "--count", str(count))
        target = min(count - 1, int(np.count_nonzero(store)) + rng.randrange(10_000, 50_000))
        wait_until(lambda t=target: int(np.count_nonzero(store)) >= t, 60, "producer progress")
        os.kill(producer.pid, signal.SIGKILL)
        producer.proc.wait(timeout=10)
        wait_until(lambda p=producer.pid: not holder_alive(p), 10, "the producer to be gone")
    last = workers("produce", "--ring", ring_name, "--count", str(count))
    last.report()
    report = consumer.report()
    assert report["last"] == count and report["dupes"] == 0
    assert_exactly_once(store, count)
    destroy_ring(segment)
