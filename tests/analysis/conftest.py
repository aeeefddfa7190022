"""A small results database written through the real store (shared by the analysis tests)."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from analysis.synthetic import make_demo_db


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bottom_vs_top`` (11 presets x 3 seeds) and ``random_placement`` (12 archs x 2 seeds)."""
    path = tmp_path_factory.mktemp("analysis") / "studies.db"
    make_demo_db(f"sqlite:///{path}", n_random=12).dispose()
    return path


@pytest.fixture(scope="session")
def shipped_findings_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed ``docs/findings/findings.db.xz``, unpacked once (read it, do not write)."""
    db = tmp_path_factory.mktemp("shipped") / "findings.db"
    xz = Path(__file__).resolve().parents[2] / "docs" / "findings" / "findings.db.xz"
    with lzma.open(xz) as src, db.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return db
