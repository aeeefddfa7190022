"""Transient database errors, timeouts, concurrent creation and one-line errors.

Fast tests use real SQLite files, a real lock held by another connection, and a local socket
that accepts and never answers. The slow ones run ``python -m search.run`` while the database
is locked, or while a private PostgreSQL server (``tests.conftest.private_postgres``) is stopped
and restarted under it.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError

from search.design.composing import _compose, to_run_config
from search.results.dberrors import CONFLICT, STORAGE, TRANSIENT, DatabaseUnavailable, classify
from search.results.lease import LEASES
from search.results.retry import transaction
from search.results.schema import utcnow
from search.results.store import get_or_create_study, open_engine
from search.run import main
from tests.conftest import private_postgres
from tests.search.conftest import REPO
from tests.search.polling import pg_query, query, wait_until

ANY = (Exception,)  # while waiting: the database is being created, or the server is down

SMOKE_CELLS = 4


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


# --- classification and the retry loop -------------------------------------------------------


def test_errors_are_told_apart() -> None:
    def wrapped(exc: Exception) -> OperationalError:
        return OperationalError("INSERT ...", {}, exc)

    assert classify(wrapped(sqlite3.OperationalError("database is locked"))) == TRANSIENT
    assert classify(wrapped(sqlite3.OperationalError("database or disk is full"))) == STORAGE
    assert classify(wrapped(sqlite3.OperationalError(
        "attempt to write a readonly database"))) == STORAGE
    assert classify(wrapped(sqlite3.OperationalError("no such table: trials"))) is None
    import psycopg2

    refused = psycopg2.OperationalError('connection to server at "127.0.0.1", port 1 failed: '
                                        'Connection refused')
    assert classify(wrapped(refused)) == TRANSIENT
    auth = psycopg2.OperationalError('connection to server at "h", port 1 failed: FATAL: '
                                     'password authentication failed for user "u"')
    assert classify(wrapped(auth)) is None  # waiting does not fix a wrong password
    from sqlalchemy.exc import IntegrityError

    assert classify(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE"))) == CONFLICT
    assert classify(ValueError("database is locked")) is None  # not from a database


def _hold_lock(path: Path, seconds: float, locked: threading.Event,
               until: threading.Event | None = None) -> None:
    """Hold SQLite's write lock on ``path`` for ``seconds`` (or until ``until`` is set)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, as another writer would hold it
    locked.set()
    if until is None:
        time.sleep(seconds)
    else:
        until.wait(seconds)
    conn.execute("ROLLBACK")
    conn.close()


@pytest.mark.parametrize(("hold_s", "window_s", "survives"), [(1.5, 20.0, True),
                                                               (4.0, 1.0, False)])
def test_a_lock_is_waited_out_within_the_window_and_given_up_after_it(
        tmp_path: Path, monkeypatch, hold_s: float, window_s: float, survives: bool) -> None:
    monkeypatch.setenv("VIDARCH_DB_TIMEOUT_S", "0.3")  # SQLite's busy timeout per attempt
    db = tmp_path / "s.db"
    engine = open_engine(f"sqlite:///{db}", create=True)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(db, hold_s, locked))
    holder.start()
    locked.wait(10)
    notes: list[str] = []
    t0 = time.monotonic()
    try:
        if survives:
            transaction(engine, lambda s: get_or_create_study(s, "x", kind="grid", config={}),
                        window_s=window_s, notify=notes.append)
            assert time.monotonic() - t0 >= hold_s - 0.5
            assert "retrying" in notes[0] and "is back" in notes[-1]
        else:
            with pytest.raises(DatabaseUnavailable, match="database is locked") as err:
                transaction(engine, lambda s: get_or_create_study(s, "x", kind="grid",
                                                                  config={}),
                            window_s=window_s, notify=notes.append)
            assert "\n" not in str(err.value)
            assert time.monotonic() - t0 < hold_s  # gave up after the window, not at unlock
    finally:
        holder.join()
        engine.dispose()


# --- opening ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def new_db(request, tmp_path: Path) -> str:
    """The URL of a database that does not exist yet (SQLite) or is empty (PostgreSQL)."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_db")
    return f"sqlite:///{tmp_path / 'studies.db'}"


def test_processes_creating_one_new_database_together_all_succeed(new_db: str,
                                                                   tmp_path: Path) -> None:
    """Four processes open the same new database (its schema is created by one of them) and
    write to it at the same moment."""
    script = ("import sys, time\n"
              "from search.results.store import open_engine, session_scope, get_or_create_study\n"
              "url, start, name = sys.argv[1], float(sys.argv[2]), sys.argv[3]\n"
              "while time.time() < start: time.sleep(0.001)\n"
              "engine = open_engine(url, create=True)\n"
              "with session_scope(engine) as s:\n"
              "    get_or_create_study(s, name, kind='grid', config={})\n")
    url = new_db
    start = time.time() + 4  # every process has imported SQLAlchemy by then
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(start), f"s{i % 2}"],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    if url.startswith("sqlite"):
        assert sorted(p.name for p in tmp_path.iterdir()) == ["studies.db"]  # no temporary
    engine = open_engine(url)
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT name FROM studies")).scalars()) == ["s0", "s1"]
    engine.dispose()


def _silent_server() -> tuple[socket.socket, list[socket.socket]]:
    """A TCP server on loopback that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, held


def test_a_server_that_accepts_and_never_answers_ends_the_run_in_bounded_time(
        monkeypatch, capsys) -> None:
    monkeypatch.setenv("VIDARCH_DB_TIMEOUT_S", "2")
    server, held = _silent_server()
    port = server.getsockname()[1]
    try:
        t0 = time.monotonic()
        code = main(["study=smoke", f"storage=postgresql+psycopg2://u@127.0.0.1:{port}/db"])
        elapsed = time.monotonic() - t0
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "timeout" in lines[0] and f":{port}/db" in lines[0], lines
    assert held, "the run never reached the server"
    assert elapsed < 60


def test_a_held_lease_is_one_line_and_the_traceback_only_with_debug(tmp_path: Path, monkeypatch,
                                                                     capsys) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    engine = open_engine(url, create=True)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(LEASES).values(study_name="smoke", holder="node-3:77:tok",
                                           acquired_at=now, heartbeat_at=now,
                                           expires_at=now + timedelta(minutes=5)))
    engine.dispose()
    assert main(["study=smoke", f"storage={url}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "host node-3, pid 77, since" in err, err
    monkeypatch.setenv("VIDARCH_DEBUG", "1")
    assert main(["study=smoke", f"storage={url}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: study 'smoke' is being run") and "Traceback" in err


def test_the_lease_is_released_when_the_study_is_refused(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    engine = open_engine(url, create=True)
    with engine.begin() as conn:  # a study of this name, with another design
        conn.execute(text("INSERT INTO studies (name, kind, config_json, package_version, "
                          "created_at) VALUES ('smoke', 'grid', '{\"study\": {\"design\": "
                          "\"conv_kinds\"}}', '0', '2026-01-01')"))
    assert main(["study=smoke", f"storage={url}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "study 'smoke' exists with" in err, err
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM study_leases")).scalar() == 0
    engine.dispose()


# --- big seed lists ---------------------------------------------------------------------------


def test_a_long_seed_list_is_read_in_linear_time() -> None:
    """20,000 seeds (Hydra's own parser: minutes) compose in about a second."""
    seeds = "[" + ",".join(str(s) for s in range(20_000)) + "]"
    t0 = time.perf_counter()
    cfg = to_run_config(*_compose(["study=smoke", f"study.seeds={seeds}"]))
    elapsed = time.perf_counter() - t0
    assert cfg.study.seeds == list(range(20_000))
    assert elapsed < 15, f"{elapsed:.1f} s"
    by_range = to_run_config(*_compose(["study=smoke", "study.seeds=range(0, 20000)"]))
    assert by_range.study.seeds == cfg.study.seeds
    short = to_run_config(*_compose(["study=smoke", "study.seeds=range(3,9,2)"]))
    assert short.study.seeds == [3, 5, 7]


@pytest.mark.parametrize(("override", "expected"), [
    ("study.seeds=range(1,2,3,4)", "study.seeds: not a range of integers"),
    ("study.seeds=range(a)", "study.seeds: not a range of integers"),
    ("study.uniform=range(40)", "study.uniform: wrong type"),
    ("study.nope=range(40)", "study.nope"),
])
def test_a_bad_range_is_one_line_naming_the_key(override: str, expected: str, tmp_path: Path,
                                                monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["study=smoke", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


# --- a running study (slow) -------------------------------------------------------------------






def _group_gone(pgid: int, timeout: float = 20) -> bool:
    """No live process (Ray's included) is left in the driver's process group."""
    def alive() -> list[int]:
        out = []
        for p in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    out.append(p.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        return out

    return wait_until(lambda: not alive(), timeout, tolerate=ANY)


SLOW = ("train.epochs=3",)  # with SLEEP (search.faults)
SLEEP = "epoch_sleep_s=1"


@pytest.mark.slow
def test_a_sqlite_lock_past_the_window_ends_the_run_and_a_shorter_one_is_survived(
        runner, monkeypatch) -> None:
    monkeypatch.setenv("VIDARCH_DB_TIMEOUT_S", "1")
    monkeypatch.setenv("VIDARCH_DB_RETRY_S", "4")
    proc = runner.start(*SLOW, faults=SLEEP)
    running = "SELECT 1 FROM trials WHERE state = 'RUNNING'"
    assert wait_until(lambda: query(runner.db, running), 150, tolerate=ANY), "no trial started"
    locked, ended = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(runner.db, 150, locked, ended))
    holder.start()  # held until the driver has ended
    try:
        _, err = proc.communicate(timeout=200)
    finally:
        ended.set()
        holder.join()
    assert proc.returncode == 1, err[-3000:]
    lines = _error_lines(err)
    assert len(lines) == 1 and "database is locked" in lines[0] and "rerun" in lines[0], err
    assert "retrying for up to 4 s" in err
    assert _group_gone(proc.pid), "Ray was left running"
    # The lock outlived the driver, so its lease could not be deleted: it names a dead process
    # of this host, which the rerun takes over at once.
    assert [h.split(":")[1] for (h,) in query(runner.db, "SELECT holder FROM study_leases")] \
        in ([], [str(proc.pid)])

    monkeypatch.setenv("VIDARCH_DB_RETRY_S", "60")  # the rerun waits out a 20 s lock
    again = runner.start(*SLOW, faults=SLEEP)
    attempt2 = "SELECT 1 FROM trials WHERE state = 'RUNNING' AND attempt = 2"
    fresh = "SELECT 1 FROM trials WHERE state = 'RUNNING' AND started_at > " \
            "(SELECT max(finished_at) FROM trials WHERE error LIKE 'interrupted%')"
    assert wait_until(lambda: query(runner.db, attempt2) or query(runner.db, fresh), 150, tolerate=ANY)
    locked = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(runner.db, 20, locked))
    holder.start()
    try:
        _, err = again.communicate(timeout=300)
    finally:
        holder.join()
    assert again.returncode == 0, err[-3000:]
    assert _error_lines(err) == [] and "retrying" in err and "is back after" in err, err
    rows = query(runner.db, "SELECT arch_id, seed, state FROM trials")
    assert len(rows) == SMOKE_CELLS and {r[2] for r in rows} == {"COMPLETE"}




@pytest.mark.slow
def test_postgres_restarted_mid_study_is_survived_and_a_long_outage_ends_the_run(
        runner, monkeypatch) -> None:
    """Stop a real PostgreSQL server under a running study and start it again 8 s later: the
    study completes, each cell trained once. Down for longer than the retry window: one line,
    exit 1, Ray shut down; the rerun repairs and completes."""
    monkeypatch.setenv("VIDARCH_DB_TIMEOUT_S", "3")
    monkeypatch.setenv("VIDARCH_DB_RETRY_S", "90")
    with private_postgres() as server:
        url, port = server.create_database("vidarch"), server.port
        proc = runner.start(f"storage={url}", *SLOW, faults=SLEEP)
        training = ("SELECT 1 FROM trials t JOIN epoch_metrics e ON e.trial_id = t.id "
                    "WHERE t.state = 'RUNNING'")
        assert wait_until(lambda: pg_query(url, training, connect_timeout=2), 150, tolerate=ANY), "no trial started training"
        server.stop()
        time.sleep(8)
        server.start(port=port)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert _error_lines(err) == [] and "retrying" in err and "is back after" in err, err
        rows = pg_query(url, "SELECT arch_id, seed, state, attempt FROM trials", connect_timeout=2)
        assert len(rows) == SMOKE_CELLS and {r[2] for r in rows} == {"COMPLETE"}
        assert {r[3] for r in rows} == {1}  # no cell trained twice

        monkeypatch.setenv("VIDARCH_DB_RETRY_S", "5")
        more = ("study.seeds=[0,1,2]", "train.epochs=3")
        proc = runner.start(f"storage={url}", *more, faults="epoch_sleep_s=2")
        seed2 = "SELECT 1 FROM trials WHERE seed = 2 AND state = 'RUNNING'"
        assert wait_until(lambda: pg_query(url, seed2, connect_timeout=2), 150, tolerate=ANY), "the extension did not start"
        server.stop()
        try:
            _, err = proc.communicate(timeout=200)
        finally:
            server.start(port=port)
        assert proc.returncode == 1, err[-3000:]
        lines = _error_lines(err)
        assert len(lines) == 1 and lines[0].startswith("error: storage: "), err
        assert "RUNNING" in lines[0] and "rerun the same command" in lines[0]
        assert _group_gone(proc.pid), "Ray was left running"

        done = runner.run(f"storage={url}", *more, faults="epoch_sleep_s=2")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "resume:" in done.stderr
        rows = pg_query(url, "SELECT arch_id, seed, state FROM trials", connect_timeout=2)
        assert len(rows) == 6 and {r[2] for r in rows} == {"COMPLETE"}
        assert pg_query(url, "SELECT count(*) FROM study_leases", connect_timeout=2) == [(0,)]

