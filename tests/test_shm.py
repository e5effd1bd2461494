"""The shared-memory segment layer, on real files in /dev/shm: safety checks on open,
header and size validation, staleness by lifetime and owner identity, cleanup."""

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from ringbuf import SharedWords, list_segments, remove_run, remove_stale, shm
from ringbuf.procs import start_ticks
from ringbuf.shm import Kind, Lifetime, Owner
from tests.helpers import wait_until

CREATE_AND_HANG = """
import sys, time
from ringbuf import shm
from ringbuf.procs import start_ticks
prefix, parent = sys.argv[1], int(sys.argv[2])
for lifetime in shm.Lifetime:
    shm.create(f"{prefix}.{lifetime.name.lower()}", shm.Kind.SNAPSHOT, 1, 64, lifetime)
# A RUN segment made by this process for a run whose supervisor is the parent.
run = shm.Owner(parent, start_ticks(parent))
shm.create(f"{prefix}.parents", shm.Kind.SNAPSHOT, 1, 64, shm.Lifetime.RUN, owner=run)
print("ready", flush=True)
time.sleep(600)
"""


def _make(name: str, lifetime: Lifetime = Lifetime.RUN, owner: Owner | None = None):
    return shm.create(name, Kind.SNAPSHOT, 1, 64, lifetime, owner=owner)


def _rewrite_header(name: str, **changes: object) -> None:
    """Replace fields of a segment's common header, with a valid checksum."""
    header, _ = shm.read_header(name)
    fields = {**header.__dict__, **changes}
    with open(shm.segment_path(name), "r+b") as file:
        file.write(shm.Header(**fields).pack())


def test_a_segment_is_written_whole_before_it_gets_its_name(ring_name):
    def init(mapping):
        mapping[shm.HEADER_BYTES : shm.HEADER_BYTES + 5] = b"hello"

    made = shm.create(ring_name, Kind.SNAPSHOT, 3, 4096, Lifetime.DURABLE, init=init)
    info = os.stat(made.path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_size == shm.HEADER_BYTES + 4096
    again = shm.attach(ring_name, Kind.SNAPSHOT, 3, payload_size=4096)
    assert again.mapping[shm.HEADER_BYTES : shm.HEADER_BYTES + 5] == b"hello"
    header = again.header
    assert (header.kind, header.lifetime, header.version) == (Kind.SNAPSHOT, Lifetime.DURABLE, 3)
    assert header.owner == Owner.current() and header.owner.alive
    assert abs(header.created_ns - time.time_ns()) < 60e9
    # No temporary file of the creation is left behind.
    assert not [f for f in os.listdir(shm.SHM_DIR) if f.startswith(f".gm-{ring_name}")]
    with pytest.raises(shm.SegmentExists):
        _make(ring_name)
    again.close()
    made.close()


def test_a_symlink_at_the_path_is_refused_and_never_followed(ring_name, tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"\0" * 4096)
    os.symlink(target, shm.segment_path(ring_name))
    for open_it in (
        lambda: shm.attach(ring_name, Kind.SNAPSHOT, 1),
        lambda: shm.create_or_attach(ring_name, Kind.SNAPSHOT, 1, 64, Lifetime.RUN),
        lambda: shm.read_header(ring_name),
    ):
        with pytest.raises(shm.UnsafeSegment, match="symbolic link"):
            open_it()
    (status,) = list_segments(ring_name)
    assert status.unsafe and not status.stale and "symbolic link" in str(status.problem)
    assert remove_stale(ring_name) == []
    assert os.path.islink(shm.segment_path(ring_name))
    assert target.read_bytes() == b"\0" * 4096


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_file_owned_by_another_uid_is_refused(ring_name):
    made = _make(ring_name)
    made.close()
    os.chown(made.path, 12345, 12345)
    with pytest.raises(shm.UnsafeSegment, match="owned by uid 12345"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)
    (status,) = list_segments(ring_name)
    assert status.unsafe and not status.stale
    assert remove_stale(ring_name) == [] and os.path.exists(made.path)


def test_a_file_others_may_write_is_refused(ring_name):
    made = _make(ring_name)
    made.close()
    os.chmod(made.path, 0o666)
    with pytest.raises(shm.UnsafeSegment, match="writable by group or others"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)


def test_a_file_of_the_wrong_size_is_refused_never_resized(ring_name):
    made = _make(ring_name)
    made.close()
    with pytest.raises(shm.SegmentSizeMismatch, match="bytes, not the 192 expected"):
        shm.create_or_attach(ring_name, Kind.SNAPSHOT, 1, 128, Lifetime.RUN)
    assert os.path.getsize(made.path) == shm.HEADER_BYTES + 64
    os.truncate(made.path, 4096)
    with pytest.raises(shm.SegmentSizeMismatch, match="holds 4096 bytes, not the 128 its header"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)
    assert os.path.getsize(made.path) == 4096
    (status,) = list_segments(ring_name)
    assert "holds 4096 bytes" in str(status.problem) and status.lifetime is Lifetime.RUN
    os.truncate(made.path, 10)
    with pytest.raises(shm.SegmentCorrupted, match="smaller"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)


def test_wrong_magic_kind_version_or_checksum_is_refused_clearly(ring_name):
    made = _make(ring_name)
    made.close()
    _rewrite_header(ring_name, version=7)
    with pytest.raises(shm.SegmentVersionMismatch, match="SNAPSHOT layout version 7, this build"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)
    _rewrite_header(ring_name, version=1, kind=Kind.HEALTH)
    with pytest.raises(shm.SegmentKindMismatch, match="is a HEALTH segment, not a SNAPSHOT"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)
    with open(made.path, "r+b") as file:
        file.seek(8)
        file.write(b"\x09")  # the kind, under the checksum
    with pytest.raises(shm.SegmentCorrupted, match="checksum"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)
    with open(made.path, "r+b") as file:
        file.write(b"\0" * 8)
    with pytest.raises(shm.SegmentCorrupted, match="bad magic"):
        shm.attach(ring_name, Kind.SNAPSHOT, 1)
    (status,) = list_segments(ring_name)
    assert status.lifetime is None and "bad magic" in str(status.problem)


def test_invalid_names_and_foreign_ephemeral_owners_are_rejected():
    with pytest.raises(ValueError, match="invalid segment name"):
        shm.segment_path("../etc/passwd")
    with pytest.raises(ValueError, match="EPHEMERAL"):
        _make("never", Lifetime.EPHEMERAL, owner=Owner(1, 1))


def test_staleness_follows_lifetime_and_the_owners_identity(ring_name):
    child = subprocess.Popen(
        [sys.executable, "-c", CREATE_AND_HANG, ring_name, str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        statuses = {s.name: s for s in list_segments(ring_name)}
        assert len(statuses) == 4 and not any(s.stale for s in statuses.values())
        assert statuses[f"{ring_name}.durable"].owner.pid == child.pid
        assert statuses[f"{ring_name}.parents"].owner == Owner.current()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

    def stale() -> dict[str, bool]:
        return {s.name.rsplit(".", 1)[1]: s.stale for s in list_segments(ring_name)}

    wait_until(lambda: stale()["run"], 10, "the dead owner's segments to be stale")
    assert stale() == {"durable": False, "ephemeral": True, "parents": False, "run": True}
    assert sorted(remove_stale(ring_name)) == [f"{ring_name}.ephemeral", f"{ring_name}.run"]
    assert sorted(stale()) == ["durable", "parents"]


def test_a_reused_pid_is_not_the_owner(ring_name):
    made = _make(ring_name)
    made.close()
    me = Owner.current()
    assert not list_segments(ring_name)[0].stale
    # Same pid, another start time: what a crashed owner's pid reused by a new process
    # looks like.
    _rewrite_header(ring_name, owner=Owner(me.pid, me.start_ticks + 1))
    (status,) = list_segments(ring_name)
    assert status.stale and not status.owner_alive
    assert remove_stale(ring_name) == [ring_name]


def test_a_clean_stop_removes_the_runs_segments_and_keeps_durable_ones(ring_name):
    me = Owner.current()
    _make(f"{ring_name}.run").close()
    _make(f"{ring_name}.durable", Lifetime.DURABLE).close()
    # RUN segments of another live run (pid 1 stands for its supervisor) are not ours.
    _make(f"{ring_name}.others", owner=Owner(1, start_ticks(1) or 0)).close()
    _make(f"{ring_name}.dead", owner=Owner(me.pid, me.start_ticks + 1)).close()
    assert sorted(remove_run(f"{ring_name}.")) == [f"{ring_name}.dead", f"{ring_name}.run"]
    assert [s.name for s in list_segments(ring_name)] == [
        f"{ring_name}.durable",
        f"{ring_name}.others",
    ]


def test_racing_creators_agree_on_one_segment(ring_name):
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def open_it() -> None:
        barrier.wait()
        segment, created = shm.create_or_attach(ring_name, Kind.SNAPSHOT, 1, 64, Lifetime.RUN)
        results.append(created)
        segment.close()

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    with pytest.raises(shm.SegmentLifetimeMismatch, match="is a RUN segment, not DURABLE"):
        shm.create_or_attach(ring_name, Kind.SNAPSHOT, 1, 64, Lifetime.DURABLE)


def test_a_temporary_of_a_creator_that_died_mid_creation_is_removed(ring_name):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    me = Owner.current()
    orphan = os.path.join(shm.SHM_DIR, f".gm-{ring_name}.a.{pid}-0-1.tmp")
    live = os.path.join(shm.SHM_DIR, f".gm-{ring_name}.b.{me.pid}-{me.start_ticks}-1.tmp")
    for path in (orphan, live):
        with open(path, "wb"):
            pass
    try:
        assert list_segments(ring_name) == []  # temporaries are not segments
        remove_stale(ring_name)
        assert not os.path.exists(orphan) and os.path.exists(live)
    finally:
        os.unlink(live)


def test_shared_words_are_public_atomic_words(ring_name):
    made = _make(ring_name)
    words = SharedWords(made.mapping)
    words.store_release(shm.HEADER_BYTES, 41)
    assert words.fetch_add(shm.HEADER_BYTES, 1) == 41
    assert words.load_acquire(shm.HEADER_BYTES) == 42
    words.release()
    made.close()


def _resident_bytes(path: str) -> int:
    """Resident bytes of this process's mappings of `path`, from /proc/self/smaps."""
    resident, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                inside = line.rstrip().endswith(path)
            elif inside and first == "Rss:":
                resident += int(line.split()[1]) * 1024
    return resident


def test_a_segment_owns_all_its_pages_and_an_attach_maps_them_at_once(ring_name):
    # A page first touched on the hot path is a fault in the middle of a publish; a page
    # never allocated is a SIGBUS when /dev/shm fills up mid-run.
    size = 1 << 20
    made = shm.create(ring_name, Kind.SNAPSHOT, 1, size, Lifetime.RUN)
    assert os.stat(made.path).st_blocks * 512 >= made.header.size
    made.close()
    attached = shm.attach(ring_name, Kind.SNAPSHOT, 1, payload_size=size)
    assert _resident_bytes(attached.path) >= attached.header.size
    attached.close()


def test_a_full_dev_shm_is_a_clear_error_and_leaves_nothing_behind(ring_name, monkeypatch):
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(shm.OutOfSharedMemory, match=ring_name):
        shm.create(ring_name, Kind.SNAPSHOT, 1, 4096, Lifetime.RUN)
    assert not [f for f in os.listdir(shm.SHM_DIR) if ring_name in f]
