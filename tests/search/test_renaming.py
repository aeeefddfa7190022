"""Renaming a stored study (search.results.renaming): a superseded run kept beside its rerun."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from search.results.lease import LEASES
from search.results.renaming import RenameError, plan, rename
from search.results.schema import TrialState, utcnow
from search.results.store import (
    finish_trial,
    get_or_create_study,
    open_engine,
    session_scope,
    start_trial,
    upsert_arch,
)

ROOT = Path(__file__).resolve().parents[2]


def _db(path: Path) -> str:
    """Studies x (a finished trial each): crossover.scale1, .scale2, crossover_x, other."""
    url = f"sqlite:///{path}"
    engine = open_engine(url, create=True)
    with session_scope(engine) as s:
        upsert_arch(s, "a" * 16, "{}", macs=10, params=5)
        for name in ("crossover.scale1", "crossover.scale2", "crossover_x", "other"):
            study = get_or_create_study(s, name, kind="grid", config={"study": {"name": name}})
            row = start_trial(s, study.id, arch_id="a" * 16, seed=0, label="mc3", family="b",
                              resources={"cpus": 1.0})
            finish_trial(s, row.id, TrialState.COMPLETE, results={"val/acc1": 0.5})
    engine.dispose()
    return url


def _names(path: Path) -> list[tuple[str, int, str]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT s.name, count(t.id), s.config_json FROM studies s JOIN trials t "
                           "ON t.study_id = s.id GROUP BY s.id ORDER BY s.name").fetchall()
    finally:
        con.close()


def test_variants_move_together_and_keep_their_trials(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url = _db(path)
    engine = open_engine(url)
    assert rename(engine, "crossover", "crossover_old", variants=True) == [
        ("crossover.scale1", "crossover_old.scale1"), ("crossover.scale2", "crossover_old.scale2")]
    engine.dispose()
    rows = _names(path)
    assert [(n, k) for n, k, _ in rows] == [("crossover_old.scale1", 1), ("crossover_old.scale2", 1),
                                           ("crossover_x", 1), ("other", 1)]
    # the stored config keeps the name the study ran under (provenance)
    assert '"crossover.scale1"' in rows[0][2]


def test_refusals_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url = _db(path)
    before = _names(path)
    engine = open_engine(url)
    cases = [("nope", "x", False, r"^OLD: no study called 'nope'$"),
             ("other", "crossover_x", False, r"^NEW: a study called 'crossover_x' is already"),
             ("gone", "x", True, r"^OLD: no study called 'gone' and none called gone\.<label>"),
             ("other", "../up", False, r"^NEW: '../up' is not a safe name"),
             ("other", "x" * 101, False, r"^NEW: 101 characters")]
    for old, new, variants, message in cases:
        with pytest.raises(RenameError, match=message):
            rename(engine, old, new, variants=variants)
    # a variant's new name taken: nothing renamed, not even the ones before it
    with pytest.raises(RenameError, match=r"'crossover_x\.scale2' is already stored"):
        plan(["crossover.scale1", "crossover.scale2", "crossover_x.scale2"], "crossover",
             "crossover_x", variants=True)
    with engine.begin() as conn:  # a driver is running "other" now
        now = utcnow()
        conn.execute(LEASES.insert().values(study_name="other", holder="vm:1:abc", acquired_at=now,
                                            heartbeat_at=now,
                                            expires_at=now + timedelta(seconds=60)))
    with pytest.raises(RenameError, match=r"^OLD: study 'other' is being run now"):
        rename(engine, "other", "other_old")
    engine.dispose()
    assert _names(path) == before


def test_cli_one_line_errors_and_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _db(path)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "search.results.renaming", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    done = cli(str(path), "crossover", "crossover_old", "--variants")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["crossover.scale1 -> crossover_old.scale1",
                                        "crossover.scale2 -> crossover_old.scale2"]
    for args, needle in (((str(path), "crossover", "y"), "OLD: no study called 'crossover'"),
                         ((str(tmp_path / "none.db"), "a", "b"), "db: no database at")):
        done = cli(*args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("error: ") and needle in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
