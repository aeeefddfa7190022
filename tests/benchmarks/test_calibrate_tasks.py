"""benchmarks/calibrate_tasks.py --study: trains a preset's arms as the study builds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_study_arms_train_with_the_presets_protocol_keys(tmp_path: Path) -> None:
    """The study's train section carries the plateau keys (the trial's stopper): the probe
    trains with the rest instead of refusing them (it once failed on ``plateau_stop``)."""
    out = tmp_path / "probe.jsonl"
    done = subprocess.run(
        [sys.executable, "benchmarks/calibrate_tasks.py", "--study", "smoke", "--seeds", "0",
         "--epochs", "2", "--jobs", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["placement"] for r in rows) == ["bottom1_3d", "f_r2d"]  # the preset's arms
    for row in rows:
        assert row["task"] == "smoke" and row["seed"] == 0 and len(row["val_curve"]) == 2
        assert 0.0 <= row["val_acc1"] <= 1.0 and row["train"] == {"epochs": 2}
