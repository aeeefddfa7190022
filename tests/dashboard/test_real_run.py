"""End to end: a real (tiny) study through Ray and torch, then every dashboard page on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import analysis

ROOT = Path(__file__).resolve().parents[2]
PAGES = [None, "views/overview.py", "views/pareto.py", "views/placement.py", "views/curves.py",
         "views/trial.py", "views/table.py", "views/importance.py", "views/compare.py"]


@pytest.mark.slow
def test_dashboard_reads_what_the_driver_wrote(app, tmp_path: Path) -> None:
    db = tmp_path / "studies.db"
    subprocess.run(
        [sys.executable, "-m", "search.run", "study=smoke", f"storage=sqlite:///{db}",
         f"hardware.checkpoint_dir={tmp_path / 'ray'}"],
        cwd=tmp_path, check=True, capture_output=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    df = analysis.load_trials(db, "smoke")
    assert (df["state"] == "COMPLETE").all() and len(df) == 4
    assert set(df["family"]) == {"2D", "bottom-heavy"}
    assert df["val/acc1"].notna().all() and (df["macs"] > 0).all()
    for page in PAGES:
        at = app(db, page)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
