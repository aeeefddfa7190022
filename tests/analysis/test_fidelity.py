"""``analysis.fidelity``: does an early epoch (or a short clip) rank networks as the end does?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis.fidelity import fidelity_lines


def _study(early_sign: float, n: int = 12, seeds: int = 2, epochs: int = 3) -> tuple[
        pd.DataFrame, pd.DataFrame]:
    """Trials and long curves of ``n`` networks whose epoch-1 accuracy is ``early_sign`` times
    their final one (plus noise), and whose later epochs equal the final."""
    rng = np.random.default_rng(0)
    final = np.linspace(0.4, 0.8, n)
    trials, curves, trial_id = [], [], 0
    for i, acc in enumerate(final):
        for seed in range(seeds):
            trial_id += 1
            trials.append({"trial_id": trial_id, "arch_id": f"a{i}", "seed": seed,
                           "state": "COMPLETE", "val/acc1": acc + rng.normal(0, 1e-3)})
            for epoch in range(1, epochs + 1):
                value = early_sign * acc + rng.normal(0, 1e-3) if epoch == 1 else acc
                curves.append({"trial_id": trial_id, "epoch": epoch, "name": "val/acc1",
                               "value": value})
    return pd.DataFrame(trials), pd.DataFrame(curves)


def test_a_preserved_ranking_scores_one_and_a_reversed_one_minus_one() -> None:
    trials, curves = _study(+1.0)
    table = analysis.fidelity(curves, trials, n_boot=200)
    assert list(table["epoch"]) == [1, 2]  # the last epoch is the final itself: left out
    first = table.iloc[0]
    assert first["n_networks"] == 12 and first["same_best"]
    assert first["spearman"] > 0.95 and first["spearman_low"] > 0.8
    assert first["kendall"] > 0.9 and first["kendall_low"] > 0.6
    trials, curves = _study(-1.0)
    first = analysis.fidelity(curves, trials, n_boot=200).iloc[0]
    assert first["spearman"] < -0.95 and first["spearman_high"] < -0.8
    assert not first["same_best"]
    assert "does not reliably predict" in fidelity_lines(
        analysis.fidelity(curves, trials, n_boot=200), grace_epochs=1)[0]


def test_pruned_trials_do_not_count() -> None:
    trials, curves = _study(+1.0)
    trials.loc[trials["arch_id"] == "a11", "state"] = "PRUNED"
    assert analysis.fidelity(curves, trials, n_boot=50).iloc[0]["n_networks"] == 11


def test_one_epoch_or_too_few_networks_say_so() -> None:
    trials, curves = _study(+1.0, epochs=1)
    assert analysis.fidelity(curves, trials).empty
    assert "not enough" in fidelity_lines(analysis.fidelity(curves, trials))[0]
    trials, curves = _study(+1.0, n=2)
    row = analysis.fidelity(curves, trials).iloc[0]
    assert row["n_networks"] == 2 and np.isnan(row["spearman"])


def test_the_demo_study_names_asha_s_first_cut(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    table = analysis.fidelity(analysis.load_curves(demo_db, "bottom_vs_top"), df, n_boot=200)
    assert list(table["epoch"]) == [1, 2, 3, 4, 5]
    assert (table["n_networks"] == 11).all()
    assert ((table["spearman_low"] <= table["spearman"])
            & (table["spearman"] <= table["spearman_high"])).all()
    line = fidelity_lines(table, grace_epochs=2)[0]
    assert line.startswith("Ranking at epoch 2 (ASHA's first cut)")


def test_clip_fidelity_pairs_the_same_placement_across_clip_lengths() -> None:
    rows = []
    for i, acc in enumerate(np.linspace(0.4, 0.8, 6)):
        for clip, shift in ((4, -0.1), (8, 0.0)):
            rows.append({"trial_id": len(rows), "arch_id": f"a{i}@{clip}", "seed": 0,
                         "state": "COMPLETE", "clip_len": clip, "stem.kind": "3d",
                         "stage1.block1.kind": f"k{i}", "val/acc1": acc + shift})
    table = analysis.clip_fidelity(pd.DataFrame(rows), n_boot=100)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["clip_len"], row["final_clip_len"], row["n_networks"]) == (4, 8, 6)
    assert row["spearman"] == pytest.approx(1.0) and row["same_best"]
    assert analysis.clip_fidelity(pd.DataFrame(rows).query("clip_len == 8")).empty
