"""The health table on the shared segment layer: run identity (pid and start time)
decides "already running" and staleness; delivery counters and `degraded`."""

import uuid

import pytest

from kernel.health import VERSION, HealthTable, health_name, health_path, run_owner
from ringbuf import Kind, Lifetime, Owner, list_segments, remove_stale, shm, unlink_segment


@pytest.fixture
def system():
    name = f"health{uuid.uuid4().hex[:8]}"
    yield name
    for status in list_segments(f"{name}."):
        unlink_segment(status.name)


def _set_owner(system: str, owner: Owner) -> None:
    """Rewrite the table's owner in its common header (checksum included)."""
    header, _ = shm.read_header(health_name(system))
    with open(health_path(system), "r+b") as file:
        file.write(shm.Header(**{**header.__dict__, "owner": owner}).pack())


def test_the_table_is_a_run_segment_owned_by_its_supervisor(system):
    table = HealthTable.create(system, [("feed", "market"), ("risk", "core")])
    assert table.owner == Owner.current() and table.owner_pid == Owner.current().pid
    assert run_owner(system) == table.owner
    (status,) = list_segments(f"{system}.")
    assert (status.kind, status.lifetime, status.version) == (Kind.HEALTH, Lifetime.RUN, VERSION)
    other = HealthTable.attach(system)
    assert other.index == {"feed": 0, "risk": 1} and other.rows_of("core") == [1]
    other.close()
    table.unlink()
    table.close()
    with pytest.raises(FileNotFoundError, match="no running system named"):
        HealthTable.attach(system)


def test_a_live_supervisor_means_already_running(system):
    table = HealthTable.create(system, [("feed", "market")])
    with pytest.raises(FileExistsError):
        HealthTable.create(system, [("feed", "market")])
    assert HealthTable.remove_stale(system) is False
    assert remove_stale(f"{system}.") == []
    table.close()


def test_a_reused_pid_does_not_make_a_crashed_run_look_alive(system):
    """The recorded pid runs (it is ours) but started at another time: another process
    got the pid of the crashed supervisor."""
    HealthTable.create(system, [("feed", "market")]).close()
    me = Owner.current()
    _set_owner(system, Owner(me.pid, me.start_ticks + 1))
    assert HealthTable.attach(system).owner_pid == me.pid  # the bare pid is alive
    assert HealthTable.remove_stale(system) is True
    HealthTable.create(system, [("feed", "market")]).close()  # not "already running"
    _set_owner(system, Owner(me.pid, me.start_ticks + 1))
    assert remove_stale(f"{system}.") == [health_name(system)]


def test_a_table_of_another_layout_version_is_refused(system):
    shm.create(health_name(system), Kind.HEALTH, VERSION - 1, 64, Lifetime.RUN).close()
    with pytest.raises(ValueError, match=f"HEALTH layout version {VERSION - 1}"):
        HealthTable.attach(system)
    assert HealthTable.remove_stale(system) is False  # its owner (we) still runs


def test_delivery_counters_and_degraded(system):
    table = HealthTable.create(system, [("feed", "market"), ("risk", "core")])
    rows = table.rows
    rows["duplicates"][0] = 5  # redelivery after a restart: routine, not degraded
    rows["msgs_in"][0] = 9
    before = {row["actor"]: row for row in table.snapshot()}
    assert before["feed"]["duplicates"] == 5 and before["feed"]["msgs_in"] == 9
    assert not before["feed"]["degraded"] and not before["risk"]["degraded"]
    for field in ("unhandled", "quarantined", "gaps"):
        rows[field][1] = 1
        (_, risk) = table.snapshot()
        assert risk[field] == 1 and risk["degraded"]
        rows[field][1] = 0
    del rows
    table.close()
