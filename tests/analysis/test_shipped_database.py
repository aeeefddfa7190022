"""The committed findings database is the complete output of the shipped presets.

``scripts/run_studies.sh`` on a fresh clone unpacks ``docs/findings/findings.db.xz`` and runs
every study in its list: each must resume (its stored config agrees with the preset as it is
now) and find nothing left to run. A preset changed without rerunning its study would make that
script stop with exit 2, and findings.md would describe a run the preset no longer makes.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from search.design.composing import _compose, studies_of
from search.design.resuming import check_resumable, snapshot
from search.design.studies import build_design

ROOT = Path(__file__).resolve().parents[2]


def _script_studies() -> list[str]:
    """The studies ``scripts/run_studies.sh`` runs by default, in its order."""
    text = (ROOT / "scripts" / "run_studies.sh").read_text()
    match = re.search(r'STUDIES=\$\{STUDIES:-"([^"]+)"\}', text)
    assert match, "scripts/run_studies.sh: no default STUDIES list"
    return match.group(1).split()


@pytest.fixture(scope="module")
def shipped_db(shipped_findings_db: Path) -> sqlite3.Connection:
    return sqlite3.connect(shipped_findings_db)


@pytest.mark.parametrize("study", _script_studies())
def test_every_shipped_study_resumes_with_nothing_left_to_run(
        study: str, shipped_db: sqlite3.Connection) -> None:
    cfg, int_lists = _compose([f"study={study}"])
    run_cfgs = list(studies_of(cfg, int_lists))
    assert run_cfgs
    for run_cfg in run_cfgs:
        name = run_cfg.study.name
        row = shipped_db.execute("SELECT id, config_json FROM studies WHERE name = ?",
                                 (name,)).fetchone()
        assert row is not None, f"{name}: in scripts/run_studies.sh but not in findings.db.xz"
        check_resumable(row[1], snapshot(run_cfg), name)  # raises as search.run would
        states = dict(shipped_db.execute(
            "SELECT state, count(*) FROM trials WHERE study_id = ? GROUP BY state", (row[0],)))
        assert states == {"COMPLETE": build_design(run_cfg).total}, f"{name}: {states}"
