"""Nothing lost, nobody in, end to end: real ``python -m search.run`` processes on Ray.

- while a study runs, every process it started listens on loopback only (and Ray's own
  authentication is left on: the code does not switch it off);
- crafted checkpoints stored in the database (a pickle payload, wrong keys, paths outside the
  study's directory) never run code and never fail a cell: it trains from scratch, reason stored;
  finished trials leave no checkpoint behind (``hardware.keep_checkpoints=true`` keeps them);
- Ctrl-C at any moment: exit 130, one line, the database consistent;
- a PostgreSQL password is never printed and never stored.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch

from search.run import INTERRUPTED_LINE
from tests.listening import is_loopback, listening_sockets
from tests.search.polling import query, wait_until
from tests.search.test_security import SECRET, Payload

SLOW = ("train.epochs=2",)  # with SLEEP: trials long enough to look at
SLEEP = "epoch_sleep_s=2"  # search.faults








def _running_with_epoch(runner, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"driver ended early: {proc.communicate()}")
    try:
        return bool(query(runner.db, "SELECT 1 FROM trials t JOIN epoch_metrics e ON "
                                     "e.trial_id = t.id WHERE t.state = 'RUNNING'"))
    except sqlite3.OperationalError:
        return False


def _checkpoint_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("checkpoint_*") if p.is_dir())


@pytest.mark.slow
def test_a_running_study_listens_on_loopback_only(runner, tmp_path) -> None:
    env = runner.env()
    env.pop("RAY_AUTH_MODE")  # as a user runs it: authentication as Ray configures it
    env["HOME"] = str(tmp_path / "home")  # Ray keeps its token in ~/.ray
    proc = runner.start(*SLOW, "hardware.keep_checkpoints=true", env=env, faults=SLEEP)
    assert wait_until(lambda: _running_with_epoch(runner, proc), 180), "no trial ran"
    sockets = listening_sockets(proc.pid)
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the check sees Ray's servers
    assert any(name.startswith("ray::") for name in names), sockets  # and its workers
    exposed = [s for s in sockets if not is_loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"

    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert (tmp_path / "home" / ".ray" / "auth_token").is_file()  # Ray's token auth was on
    # hardware.keep_checkpoints=true: the COMPLETE trials keep their last checkpoints.
    assert len({p.parent for p in _checkpoint_dirs(runner.checkpoints)}) == 4
    assert all(path for (path,) in query(runner.db, "SELECT checkpoint_path FROM trials"))


@pytest.mark.slow
def test_crafted_checkpoints_never_run_and_never_fail_a_cell(runner, tmp_path) -> None:
    # Every cell fails before its first checkpoint, so each row can be given a crafted one.
    first = runner.run(faults="fail_on_seed=1,nan_on_seed=0")
    assert first.returncode == 1, first.stderr[-3000:]
    rows = query(runner.db, "SELECT id, seed, state FROM trials ORDER BY id")
    assert [r[2] for r in rows] == ["FAILED"] * 4

    marker = tmp_path / "pwned"
    inside = runner.checkpoints / "smoke-20000101-000000"

    def crafted(obj: object, directory: Path) -> str:
        directory.mkdir(parents=True)
        torch.save(obj, directory / "state.pt")
        return str(directory)

    paths = {
        "payload outside": crafted(Payload(marker), tmp_path / "outside" / "checkpoint_000000"),
        "payload inside": crafted(Payload(marker), inside / "evil" / "checkpoint_000000"),
        "wrong keys": crafted({"weights": torch.zeros(3)}, inside / "keys" / "checkpoint_000000"),
        # inside by its prefix, outside once resolved
        "traversal": str(inside / ".." / ".." / "outside" / "checkpoint_000000"),
    }
    conn = sqlite3.connect(runner.db)
    with conn:
        for (trial_id, _, _), path in zip(rows, paths.values(), strict=True):
            conn.execute("UPDATE trials SET checkpoint_path = ? WHERE id = ?", (path, trial_id))
    conn.close()

    second = runner.run()
    assert second.returncode == 0, second.stderr[-3000:]
    assert not marker.exists(), "a crafted checkpoint ran code"
    refused = [ln for ln in second.stderr.splitlines() if "refused" in ln]
    assert len(refused) == 1 and refused[0].startswith("resume: 2 stored checkpoint(s) outside")
    assert "Traceback" not in second.stderr
    notes = {}
    for trial_id, state, attempt, resources in query(
            runner.db, "SELECT id, state, attempt, resources_json FROM trials ORDER BY id"):
        assert (state, attempt) == ("COMPLETE", 2)  # trained from scratch, once
        notes[trial_id] = json.loads(resources)["resume_note"]
    by_kind = dict(zip(paths, (notes[r[0]] for r in rows), strict=True))
    assert "refused: outside the study's checkpoint directory" in by_kind["payload outside"]
    assert "refused: outside" in by_kind["traversal"]
    assert "not a plain weights file" in by_kind["payload inside"]
    assert "Unsupported global" in by_kind["payload inside"]
    assert "no 'model'" in by_kind["wrong keys"]
    # Nothing of a COMPLETE trial is left under the checkpoint directory (the crafted ones the
    # cells resumed from went too); what lies outside it is not touched.
    assert _checkpoint_dirs(runner.checkpoints) == []
    assert query(runner.db, "SELECT count(*) FROM trials WHERE checkpoint_path IS NOT NULL") \
        == [(0,)]
    assert (tmp_path / "outside" / "checkpoint_000000" / "state.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["start-up", "database created", "mid-trial"])
def test_ctrl_c_at_any_moment_exits_130_with_one_line(runner, moment) -> None:
    proc = runner.start(*SLOW, faults=SLEEP)
    if moment == "start-up":
        time.sleep(1.5)  # composing the config, importing
    elif moment == "database created":
        assert wait_until(lambda: runner.db.exists() or proc.poll() is not None, 120)
    else:
        assert wait_until(lambda: _running_with_epoch(runner, proc), 180), "no trial ran"
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (moment, err[-3000:])
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[smoke] ")]
    assert lines == [INTERRUPTED_LINE], err[-3000:]
    if runner.db.exists():
        assert query(runner.db, "PRAGMA integrity_check") == [("ok",)]
        if query(runner.db, "SELECT name FROM sqlite_master WHERE name = 'trials'"):
            assert query(runner.db, "SELECT count(*) FROM trials WHERE state = 'RUNNING'") \
                == [(0,)]
    if moment == "mid-trial":
        assert "INTERRUPTED: rerun the same command to resume" in out


@pytest.mark.slow
def test_a_postgres_password_is_never_printed_or_stored(runner, postgres_server) -> None:
    import psycopg2

    plain = postgres_server.create_database().replace("postgresql+psycopg2://", "postgresql://")
    url = plain.replace("postgres@", f"postgres:{SECRET}@", 1)  # trust auth ignores it
    done = runner.run(f"storage={url}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stdout and SECRET not in done.stderr
    (next_line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("Next: ")]
    assert "--server.address 127.0.0.1" in next_line and "PGPASSWORD" in next_line
    assert f"--db postgresql+psycopg2://postgres@127.0.0.1:{postgres_server.port}/" in next_line
    database = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(postgres_server.dsn(database))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT config_json FROM studies")
            (config,) = cur.fetchone()
            cur.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
            assert cur.fetchone() == (4,)
    finally:
        conn.close()
    assert SECRET not in config and json.loads(config)["storage"].endswith(
        f":***@127.0.0.1:{postgres_server.port}/{database}")
