"""Databases for the dashboard tests, written through the real store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.synthetic import make_demo_db

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
TIMEOUT_S = 60  # a cold first run imports plotly, scipy and pandas on a busy 2-core machine


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bottom_vs_top`` (11 presets x 3 seeds) and ``random_placement`` (12 archs x 2 seeds)."""
    path = tmp_path_factory.mktemp("dashboard") / "studies.db"
    make_demo_db(f"sqlite:///{path}", n_random=12).dispose()
    return path


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | Path, str | None], AppTest]:
    """``app(db, page)``: the dashboard on ``db`` (via $VIDARCH_DB), run on ``page``."""

    def run(db: str | Path, page: str | None = None) -> AppTest:
        monkeypatch.setenv("VIDARCH_DB", str(db))
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
        if page is not None:
            at.switch_page(page).run()
        return at

    return run


@pytest.fixture(scope="session")
def smoke_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real study=smoke run (Ray, torch, fvcore) through ``python -m search.run``."""
    import os
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("smoke")
    db = work / "studies.db"
    subprocess.run(
        [sys.executable, "-m", "search.run", "study=smoke", f"storage=sqlite:///{db}",
         f"hardware.checkpoint_dir={work / 'ray'}", "hardware.num_cpus=2"],
        cwd=work, check=True, capture_output=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(APP.parents[1]), "RAY_AUTH_MODE": "disabled"})
    return db
