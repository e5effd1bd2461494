"""Wait strategies, blocking and under uvloop, against a producer in another process."""

import asyncio
import threading

import pytest
import uvloop

from ringbuf import (
    BackoffWait,
    Doorbell,
    DoorbellMissing,
    ParkWait,
    RingReader,
    RingWriter,
    SpinWait,
    create_ring,
    destroy_ring,
    make_wait_strategy,
)

STREAM_TYPE = 7


def test_factory_knows_the_configured_names():
    assert isinstance(make_wait_strategy("spin"), SpinWait)
    assert isinstance(make_wait_strategy("backoff"), BackoffWait)
    doorbell = Doorbell.create()
    assert isinstance(make_wait_strategy("park", doorbell), ParkWait)
    doorbell.close()
    with pytest.raises(DoorbellMissing):
        make_wait_strategy("park")
    with pytest.raises(ValueError, match="unknown wait strategy"):
        make_wait_strategy("sleepy")


@pytest.mark.parametrize("strategy", ["spin", "backoff", "park"])
def test_blocking_wait_times_out_on_an_idle_ring(ring_name, strategy):
    doorbell = Doorbell.create() if strategy == "park" else None
    segment = create_ring(ring_name, 1024, doorbell=doorbell is not None)
    with RingReader(ring_name, doorbell=doorbell) as reader:
        wait = make_wait_strategy(strategy, doorbell)
        assert wait.wait([reader], timeout_s=0.02) is False
    destroy_ring(segment)
    if doorbell:
        doorbell.close()


@pytest.mark.parametrize("strategy", ["spin", "backoff", "park"])
def test_an_async_wait_on_an_idle_ring_returns_when_interrupted(ring_name, strategy):
    """A stopping node interrupts its wait: inputs that stay empty must not keep it."""
    doorbell = Doorbell.create() if strategy == "park" else None
    segment = create_ring(ring_name, 1024, doorbell=doorbell is not None)

    async def main() -> None:
        with RingReader(ring_name, doorbell=doorbell) as reader:
            wait = make_wait_strategy(strategy, doorbell)
            waiting = asyncio.ensure_future(wait.wait_async([reader]))
            await asyncio.sleep(0.05)  # let it settle into its idle wait (no condition)
            assert not waiting.done()
            wait.interrupt()
            await asyncio.wait_for(waiting, timeout=5)
            # Every later wait returns at once too: the consumer is stopping.
            await asyncio.wait_for(wait.wait_async([reader]), timeout=5)
            wait.close()

    uvloop.run(main())
    destroy_ring(segment)
    if doorbell:
        doorbell.close()


def test_park_wakes_on_every_single_message(ring_name):
    """Single messages, half sent once the consumer is parked, half racing its parking."""
    doorbell = Doorbell.create()
    segment = create_ring(ring_name, 4096, doorbell=True)
    reader = RingReader(ring_name, doorbell=doorbell)
    writer_ready = threading.Event()
    received: list[int] = []

    def produce() -> None:
        with RingWriter(ring_name, doorbell=doorbell) as writer:
            writer_ready.set()
            for i in range(2000):
                while i % 2 == 0 and not writer.consumer_parked:
                    pass
                writer.write(STREAM_TYPE, i.to_bytes(4, "little"))

    wait = ParkWait(doorbell, spin_s=0)
    thread = threading.Thread(target=produce)
    thread.start()
    writer_ready.wait(5)
    while len(received) < 2000:
        if reader.poll(lambda t, p: received.append(int.from_bytes(p, "little"))) == 0:
            assert wait.wait([reader], timeout_s=5), f"lost wake-up after {len(received)}"
    thread.join()
    assert received == list(range(2000))
    reader.close()
    destroy_ring(segment)
    doorbell.close()


@pytest.mark.parametrize("strategy", ["spin", "backoff", "park"])
def test_async_wait_under_uvloop_across_processes(ring_name, workers, strategy, tmp_path):
    count = 20_000
    doorbell = Doorbell.create() if strategy == "park" else None
    segment = create_ring(ring_name, 1 << 14, doorbell=doorbell is not None)
    extra: list[str] = []
    fds: tuple[int, ...] = ()
    if doorbell is not None:
        extra = ["--doorbell-fd", str(doorbell.fd)]
        fds = (doorbell.fd,)
    reader = RingReader(ring_name, doorbell=doorbell)
    wait = make_wait_strategy(strategy, doorbell)
    seqs: list[int] = []
    ticks = 0

    async def other_task() -> None:
        # The loop must stay responsive while the consumer waits.
        nonlocal ticks
        while len(seqs) < count:
            ticks += 1
            await asyncio.sleep(0.001)

    async def consume() -> None:
        def handle(type_id: int, payload: memoryview) -> None:
            seqs.append(int.from_bytes(payload[:8], "little"))

        while len(seqs) < count:
            if reader.poll(handle) == 0:
                await wait.wait_async([reader])

    async def main() -> None:
        producer = workers(
            "produce",
            "--ring",
            ring_name,
            "--count",
            str(count),
            "--burst",
            "500",
            "--pause-us",
            "2000",
            *extra,
            pass_fds=fds,
        )
        await asyncio.wait_for(asyncio.gather(consume(), other_task()), timeout=120)
        producer.report()

    uvloop.run(main())
    wait.close()
    assert seqs == list(range(1, count + 1))
    assert ticks > 10
    reader.close()
    destroy_ring(segment)
    if doorbell is not None:
        doorbell.close()
