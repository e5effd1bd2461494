import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from actors.api import ApiActor
from actors.risk.killswitch import KillSwitch
from kernel.codec import Codec
from ringbuf import Lifetime, list_segments, unlink_segment
from tests.helpers import TEST_SYSTEM, StreamCapture
from tests.systems import STARTED_RUNS, RunningSystem

WORKER = Path(__file__).resolve().parent / "ring_worker.py"


@pytest.fixture
def systems() -> "Iterator[list[RunningSystem]]":
    """Systems a test started (`grandmodel run` subprocesses), closed after it."""
    running: list[RunningSystem] = []
    yield running
    for system in running:
        system.close()


@pytest.fixture
def ring_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique ring name; any segment left under it is removed after the test."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    for status in list_segments(prefix):
        unlink_segment(status.name)


@pytest.fixture
def system() -> Iterator[str]:
    """A unique run name; every segment under it (its kill switch, actor records) is
    removed after the test."""
    name = f"test-run-{uuid.uuid4().hex[:10]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


@pytest.fixture
def controls(system: str) -> Iterator[KillSwitch]:
    """The run's kill switch."""
    switch = KillSwitch.open(system)
    yield switch
    switch.close()


class Worker:
    """A ring_worker.py child process."""

    def __init__(self, *args: str, pass_fds: tuple[int, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def report(self, timeout_s: float = 120) -> dict[str, int]:
        out, err = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, f"worker failed ({self.proc.returncode}): {err}"
        return json.loads(out.strip().splitlines()[-1])

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def exit_code(self, timeout_s: float = 60) -> int:
        self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(*args: str, pass_fds: tuple[int, ...] = ()) -> Worker:
        worker = Worker(*args, pass_fds=pass_fds)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.kill9()


@pytest.fixture
def capture() -> Iterator[Callable[..., StreamCapture]]:
    """Make StreamCaptures (real rings) that are closed and unlinked after the test."""
    made: list[StreamCapture] = []

    def make(stream: str, codec: Codec, already_published: int = 0) -> StreamCapture:
        made.append(StreamCapture(stream, codec, already_published))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture(autouse=True)
def _remove_test_system_state() -> Iterator[None]:
    """Actors driven in-process create shared state under TEST_SYSTEM: clear it."""
    yield
    for status in list_segments(f"{TEST_SYSTEM}."):
        unlink_segment(status.name)


@pytest.fixture(autouse=True, scope="session")
def _remove_durable_state_of_test_runs() -> Iterator[None]:
    """Actor records outlive their runs by design: remove those of this session's test
    runs once it ends (live segments of a run still going are left alone, and so are
    the runs of another session testing on the same machine)."""
    yield
    for status in list_segments():
        if status.name.split(".", 1)[0] in STARTED_RUNS and (
            status.stale or status.lifetime is Lifetime.DURABLE
        ):
            unlink_segment(status.name)


@pytest.fixture
async def http(api: ApiActor) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the module's `api` fixture (an ApiActor listening on 127.0.0.1)."""
    async with aiohttp.ClientSession(f"http://127.0.0.1:{api.port}") as session:
        yield session
