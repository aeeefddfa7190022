"""One driver per study: the lease in the results database, and two real drivers racing for it.

The fast tests take leases directly (``search.results.lease.StudyLease``) on real SQLite files and, when
a server is there, PostgreSQL; the slow ones start two ``python -m search.run`` processes on
one study, together and staggered, and stop one driver (SIGSTOP) until its lease expires.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from search.results.dberrors import LeaseHeld, LeaseLost
from search.results.lease import LEASES, Holder, StudyLease
from search.results.schema import utcnow
from search.results.store import open_engine
from tests.search.conftest import REPO
from tests.search.polling import query, wait_until

SMOKE_CELLS = 4  # study=smoke: 2 networks x 2 seeds
HELD = re.compile(r"study 'smoke' is being run by another driver \(host (\S+), pid (\d+), "
                  r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:
    """A new results database: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_db")
    return f"sqlite:///{tmp_path / 's.db'}"


def _leasequery(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(LEASES)))


# --- the lease itself -------------------------------------------------------------------------


def test_one_driver_per_study_until_it_releases(db_url: str) -> None:
    engine = open_engine(db_url, create=True)
    first = StudyLease(engine, "smoke", ttl_s=30)
    first.acquire()
    second = StudyLease(engine, "smoke", ttl_s=30)
    with pytest.raises(LeaseHeld) as held:
        second.acquire()
    match = HELD.search(str(held.value))
    assert match and int(match.group(2)) == os.getpid(), held.value
    assert "\n" not in str(held.value)
    StudyLease(engine, "other", ttl_s=30).acquire()  # another study is not blocked

    first.release()
    second.acquire()  # free again
    assert second.took_over is None
    assert [r.holder for r in _leasequery(engine) if r.study_name == "smoke"] == \
        [str(second.holder)]
    engine.dispose()


def test_an_expired_lease_is_taken_over_and_its_holder_stops_writing(db_url: str) -> None:
    engine = open_engine(db_url, create=True)
    stalled = StudyLease(engine, "smoke", ttl_s=0.6)  # acquired, then never renewed
    stalled.acquire()
    stalled.check()
    successor = StudyLease(engine, "smoke", ttl_s=30)
    with pytest.raises(LeaseHeld):
        successor.acquire()
    time.sleep(0.8)
    successor.acquire()
    assert successor.took_over is not None and f"pid {os.getpid()}" in successor.took_over
    with pytest.raises(LeaseLost, match="taken over"):  # the next write of the stalled driver
        stalled.check()
    assert not stalled.renew()
    stalled.release()  # deletes only its own row
    assert [r.holder for r in _leasequery(engine)] == [str(successor.holder)]
    engine.dispose()


def test_the_heartbeat_keeps_a_short_lease_alive(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 's.db'}", create=True)
    lease = StudyLease(engine, "smoke", ttl_s=0.8)
    lease.acquire()
    lease.start_heartbeat()
    first_expiry = _leasequery(engine)[0].expires_at
    time.sleep(2.0)  # 2.5 TTLs
    with pytest.raises(LeaseHeld):
        StudyLease(engine, "smoke", ttl_s=30).acquire()
    assert _leasequery(engine)[0].expires_at > first_expiry
    lease.check()
    lease.release()
    assert _leasequery(engine) == []
    engine.dispose()


def test_a_lease_held_on_another_host_waits_for_its_expiry(tmp_path: Path) -> None:
    """A driver on another host cannot be asked whether it lives: only expiry frees its lease."""
    engine = open_engine(f"sqlite:///{tmp_path / 's.db'}", create=True)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(LEASES).values(
            study_name="smoke", holder="gpu-node-7:4242:abc", acquired_at=now - timedelta(hours=1),
            heartbeat_at=now, expires_at=now + timedelta(seconds=60)))
    with pytest.raises(LeaseHeld, match=r"host gpu-node-7, pid 4242, since"):
        StudyLease(engine, "smoke").acquire()
    with engine.begin() as conn:
        conn.execute(update(LEASES).values(expires_at=now - timedelta(seconds=1)))
    lease = StudyLease(engine, "smoke")
    lease.acquire()
    assert lease.took_over is not None and "gpu-node-7" in lease.took_over
    engine.dispose()


def test_the_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = ("import os, sys\n"
              "from search.results.store import open_engine\nfrom search.results.lease import StudyLease\n"
              "StudyLease(open_engine(sys.argv[1], create=True), 'smoke', ttl_s=600).acquire()\n"
              "print(os.getpid(), flush=True)\n"
              "os._exit(0)  # dies holding the lease, as after SIGKILL\n")
    dead = subprocess.run([sys.executable, "-c", script, url], cwd=REPO, timeout=60, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    assert dead.returncode == 0, dead.stderr
    engine = open_engine(url, create=True)
    assert Holder.parse(_leasequery(engine)[0].holder).pid == int(dead.stdout)
    lease = StudyLease(engine, "smoke")
    lease.acquire()  # its expiry is 10 minutes away, but its holder is gone
    assert lease.took_over is not None and f"pid {int(dead.stdout)}," in lease.took_over
    engine.dispose()


def test_drivers_racing_for_one_lease_let_exactly_one_in(db_url: str) -> None:
    """Eight acquirers on separate connections, released together: one wins, seven are told."""
    engines = [open_engine(db_url, create=True) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    outcome: list[str] = []

    def race(engine) -> None:
        lease = StudyLease(engine, "smoke", ttl_s=30)
        barrier.wait()
        try:
            lease.acquire()
            outcome.append("won")
        except LeaseHeld:
            outcome.append("held")

    threads = [threading.Thread(target=race, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcome) == ["held"] * 7 + ["won"]
    assert len(_leasequery(engines[0])) == 1
    for e in engines:
        e.dispose()


# --- two real drivers (slow) ------------------------------------------------------------------






def _training(db: Path) -> bool:
    """A trial is mid-way: RUNNING with an epoch stored."""
    return bool(query(db, "SELECT 1 FROM trials t JOIN epoch_metrics e ON e.trial_id = t.id "
                          "WHERE t.state = 'RUNNING'"))


def _assert_trained_once(db: Path, epochs: int, *, attempts: int = 1) -> None:
    rows = query(db, "SELECT arch_id, seed, state, attempt FROM trials")
    assert len(rows) == SMOKE_CELLS and len({(a, s) for a, s, *_ in rows}) == SMOKE_CELLS
    assert {r[2] for r in rows} == {"COMPLETE"}, rows
    assert max(r[3] for r in rows) <= attempts, rows
    assert query(db, "SELECT count(*) FROM epoch_metrics WHERE name = 'val/acc1'")[0][0] == \
        SMOKE_CELLS * epochs
    assert query(db, "SELECT count(*) FROM study_leases") == [(0,)]  # released at exit


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


SLOW = ("train.epochs=2",)  # with SLEEP (search.faults)
SLEEP = "epoch_sleep_s=1"


@pytest.mark.slow
def test_two_drivers_started_together_train_each_cell_once(runner) -> None:
    """Two ``python -m search.run`` on one new database and study, started together: one
    trains, the other exits 2 naming it; no cell is trained twice."""
    procs = [runner.start(*SLOW, "hardware.num_cpus=1", faults=SLEEP),
             runner.start(*SLOW, "hardware.num_cpus=1", faults=SLEEP)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [o[1][-2000:] for o in outs]
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    lines = _error_lines(outs[loser][1])
    assert len(lines) == 1 and outs[loser][1].strip() == lines[0], outs[loser][1]
    match = HELD.search(lines[0])
    assert match and int(match.group(2)) == procs[winner].pid, lines[0]
    assert "Pareto front" in outs[winner][0]
    _assert_trained_once(runner.db, epochs=2)


@pytest.mark.slow
def test_a_driver_started_while_another_trains_exits_2_and_changes_nothing(runner) -> None:
    slower = ("train.epochs=2", "hardware.num_cpus=1")  # with 3 s sleeps: >= 24 s
    first = runner.start(*slower, faults="epoch_sleep_s=3")
    assert wait_until(lambda: _training(runner.db), 150), "no trial started training"
    second = runner.run(*slower, timeout=120, faults="epoch_sleep_s=3")
    assert second.returncode == 2, second.stderr[-2000:]
    lines = _error_lines(second.stderr)
    assert len(lines) == 1 and f"pid {first.pid}," in lines[0], second.stderr
    errors = [e for (e,) in query(runner.db, "SELECT error FROM trials") if e]
    assert errors == [], errors  # the first driver's live trials were not marked interrupted
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    _assert_trained_once(runner.db, epochs=2)


@pytest.mark.slow
def test_a_stalled_driver_loses_its_lease_to_a_new_one_and_stops(runner, monkeypatch) -> None:
    """SIGSTOP a driver mid-study: after the lease's TTL a new driver takes the study over and
    finishes it; the old one, continued, finds its lease gone and exits 1 without writing."""
    monkeypatch.setenv("VIDARCH_LEASE_TTL_S", "3")
    epochs = ("train.epochs=3",)
    old = runner.start(*epochs, faults=SLEEP)
    assert wait_until(lambda: _training(runner.db), 150), "no trial started training"
    os.kill(old.pid, signal.SIGSTOP)
    try:
        time.sleep(4)  # past the TTL: the lease is stale though its holder still exists
        new = runner.start(*epochs, faults=SLEEP)

        def new_holds_it() -> bool:
            rows = query(runner.db, "SELECT holder FROM study_leases")
            return bool(rows) and Holder.parse(rows[0][0]).pid == new.pid

        assert wait_until(new_holds_it, 150), "the new driver did not take the lease over"
    finally:
        os.kill(old.pid, signal.SIGCONT)
    _, old_err = old.communicate(timeout=180)
    assert old.returncode == 1, old_err[-2000:]
    lines = _error_lines(old_err)
    assert len(lines) == 1 and "was taken over by another driver" in lines[0], old_err
    _, new_err = new.communicate(timeout=300)
    assert new.returncode == 0, new_err[-2000:]
    assert "taken over" in new_err and f"pid {old.pid}" in new_err
    _assert_trained_once(runner.db, epochs=3, attempts=2)

