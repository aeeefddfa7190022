"""Declared contrasts in analysis: read from the stored config, paired, Holm-adjusted, reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

import analysis
from analysis import findings
from analysis.synthetic import DEMO_CONTRASTS


def test_declared_contrasts_of_a_stored_study(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    declared = analysis.study_contrasts(analysis.study_config(demo_db, "bottom_vs_top"))
    assert declared == list(DEMO_CONTRASTS)
    table = analysis.declared_contrasts(df, declared)
    pairs = list(zip(table["a"], table["b"], strict=True))
    assert pairs[0] == ("bottom-heavy", "top-heavy") and sorted(pairs[1:]) == [
        ("bottom-heavy", "2D"), ("top-heavy", "2D"), ("uniform (2+1)D", "2D"),
        ("uniform 3D", "2D")]
    # by hand: per seed, the mean over each group's networks, on seeds where all completed
    done = df[df["state"] == "COMPLETE"]
    wide = done.pivot_table(index="seed", columns="label", values="val/acc1")
    bottom = wide[["mc2", "mc3", "mc4", "mc5"]].dropna().mean(axis=1)
    top = wide[["rmc2", "rmc3", "rmc4", "rmc5"]].dropna().mean(axis=1)  # rmc4 PRUNED on seed 2
    diff = (bottom - top).dropna()
    row = table.iloc[0]
    assert row["n_pairs"] == len(diff) == 2
    assert row["delta"] == pytest.approx(diff.mean())
    assert row["p_t"] == pytest.approx(sps.ttest_1samp(diff, 0.0).pvalue)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(analysis.mean_ci(diff.to_numpy()))
    assert row["ci_method"] == "student-t" and row["wilcoxon_floor"] == 0.5
    # Holm over the five comparisons: adjusted >= raw, monotone in the raw order
    ordered = table.sort_values("p_t")
    assert (table["p_holm"] >= table["p_t"]).all()
    assert ordered["p_holm"].is_monotonic_increasing
    assert ordered["p_holm"].iloc[0] == pytest.approx(min(1.0, 5 * ordered["p_t"].iloc[0]))
    assert "0.5 at 2, 0.25 at 3" in analysis.wilcoxon_note(table)


def test_contrasts_follow_the_metric_direction(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    acc = analysis.declared_contrasts(df, ["uniform 3D - 2D"])
    loss = analysis.declared_contrasts(df, ["uniform 3D - 2D"], "val/loss")
    assert acc["delta"].iloc[0] > 0 and acc["favours"].iloc[0] == "uniform 3D"
    assert loss["delta"].iloc[0] < 0 and loss["favours"].iloc[0] == "uniform 3D"
    assert analysis.declared_contrasts(df, []).empty


def test_findings_reads_the_contrasts_the_study_stored(demo_db: Path) -> None:
    study = next(s for s in findings.STUDIES if s.name == "bottom_vs_top")
    out = findings.build_study(demo_db, study, None)
    assert "**Declared contrasts** (from its stored config: `bottom-heavy - top-heavy`, " \
           "`each vs 2D`)" in out.block
    table = out.tables["bottom_vs_top_contrasts.csv"]
    assert len(table) == 5 and np.isfinite(table["p_holm"]).all()
    assert "per GMAC" not in out.block and "Δ vs" not in out.block
    assert "bottom_vs_top_front.csv" in out.tables
    assert "undertrained (1 not plateaued)" in out.block  # mc2 on its last seed
