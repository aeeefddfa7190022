"""Missing, foreign, empty and unfinished databases give a message and a command, never a
traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from analysis.synthetic import bottom_vs_top_trials, write_trials
from search.results.schema import TrialState
from search.results.store import open_engine

PAGES = [None, "views/overview.py", "views/pareto.py", "views/placement.py", "views/curves.py",
         "views/trial.py", "views/table.py", "views/importance.py", "views/compare.py"]


def _says(at, *needles: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join([e.value for e in at.error] + [c.value for c in at.code])
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("page", PAGES)
def test_missing_database(app, tmp_path: Path, page: str | None) -> None:
    at = app(tmp_path / "studies.db", page)
    _says(at, "no database", "python -m search.run study=bottom_vs_top")


def test_not_a_database_file(app, tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("hello, I am a text file\n" * 50)
    _says(app(junk), "cannot open", "python -m search.run")


def test_foreign_sqlite_database(app, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    _says(app(other), "not a vidarch database", "python -m search.run")


def test_empty_vidarch_database(app, tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    open_engine(f"sqlite:///{path}", create=True).dispose()
    _says(app(path), "without any study", "python -m search.run")


@pytest.mark.parametrize("page", [None, "views/overview.py", "views/pareto.py",
                                  "views/placement.py", "views/curves.py",
                                  "views/importance.py", "views/compare.py"])
def test_study_without_completed_trials(app, tmp_path: Path, page: str | None) -> None:
    path = tmp_path / "running.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    trials = bottom_vs_top_trials(seeds=(0,))[:3]
    trials[0].state = TrialState.PRUNED
    trials[1].state = TrialState.FAILED
    trials[2].state = TrialState.RUNNING
    write_trials(engine, "bottom_vs_top", trials)
    engine.dispose()
    at = app(path, page)
    _says(at, "no completed trial", "python -m search.run study=bottom_vs_top")
    if page == "views/overview.py":  # the overview still shows where the study stands
        assert {m.label: m.value for m in at.metric}["Pruned"] == "1"


def test_table_and_trial_pages_work_without_completed_trials(app, tmp_path: Path) -> None:
    path = tmp_path / "pruned.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    trials = bottom_vs_top_trials(seeds=(0,))[:2]
    for t in trials:
        t.state = TrialState.PRUNED
    write_trials(engine, "bottom_vs_top", trials)
    engine.dispose()
    for page in ("views/table.py", "views/trial.py"):
        at = app(path, page)
        assert not at.exception and not at.error, page
