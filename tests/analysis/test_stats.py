"""Pareto fronts and seed statistics on hand-made frames with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.stats import (
    arch_summary,
    compare,
    curve_summary,
    marginal_effects,
    mean_ci,
    pareto_front,
    pareto_mask,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["A", "B", "C", "D", "E", "F", "G"],
        "val/acc1": [0.90, 0.80, 0.70, 0.95, 0.99, 0.80, np.nan],
        "macs": [10, 5, 8, 20, 1, 5, 2],
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "COMPLETE",
                  "COMPLETE"],
    })


def test_pareto_front_of_a_hand_made_frame() -> None:
    front = pareto_front(_frame())
    # C is dominated by B; E is PRUNED (would dominate everything); G has no accuracy;
    # F duplicates B exactly and stays on the front with it.
    assert sorted(front["name"]) == ["A", "B", "D", "F"]
    assert list(front["macs"]) == sorted(front["macs"])


def test_pruned_never_counts() -> None:
    df = _frame()
    assert "E" not in set(pareto_front(df)["name"])
    assert "E" in set(pareto_front(df, complete_only=False)["name"])


def test_pareto_three_objectives_agree_with_brute_force() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((300, 3))
    brute = np.array([not any((values[j] <= values[i]).all() and (values[j] < values[i]).any()
                              for j in range(len(values))) for i in range(len(values))])
    assert (pareto_mask(values) == brute).all()
    two = values[:, :2]
    brute2 = np.array([not any((two[j] <= two[i]).all() and (two[j] < two[i]).any()
                               for j in range(len(two))) for i in range(len(two))])
    assert (pareto_mask(two) == brute2).all()


def test_bad_objective_mode() -> None:
    with pytest.raises(ValueError, match="'max' or 'min'"):
        pareto_front(_frame(), (("val/acc1", "up"),))


def test_mean_ci_is_the_student_t_interval() -> None:
    units = np.array([0.61, 0.64, 0.59, 0.66, 0.62])
    low, high = mean_ci(units)
    half = 2.7764451 * units.std(ddof=1) / np.sqrt(5)  # t_{0.975, 4 dof}
    assert (low, high) == pytest.approx((units.mean() - half, units.mean() + half))
    assert mean_ci(np.array([0.5, 0.5, 0.5])) == (0.5, 0.5)
    assert all(math.isnan(v) for v in mean_ci(np.array([0.5])))


def _paired(n_seeds: int = 6, gap: float = 0.05) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 0.03, n_seeds)  # shared by both groups: pairing removes it
    rows = []
    for seed in range(n_seeds):
        for group, shift in (("bottom-heavy", gap), ("top-heavy", 0.0)):
            for arch in range(2):
                rows.append({"family": group, "seed": seed, "arch_id": f"{group}{arch}",
                             "state": "COMPLETE", "gmacs": 2.0 if shift else 1.0,
                             "val/acc1": 0.6 + shift + seed_effect[seed] + rng.normal(0, 0.002)})
    rows.append({"family": "top-heavy", "seed": 0, "arch_id": "x", "state": "PRUNED",
                 "gmacs": 1.0, "val/acc1": 0.0})
    return pd.DataFrame(rows)


def test_compare_effect_table() -> None:
    table = compare(_paired(), by="family", metric="val/acc1").set_index("group")
    assert table.loc["bottom-heavy", "n"] == 12  # the PRUNED trial does not count
    assert table.loc["top-heavy", "n"] == 12
    for group in table.index:
        row = table.loc[group]
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
        assert row["ci_unit"] == "seed" and row["n_seeds"] == 6
    assert table.loc["bottom-heavy", "reference"] == "bottom-heavy"  # the best by default
    top = table.loc["top-heavy"]
    assert top["delta"] == pytest.approx(-0.05, abs=0.005)
    assert top["n_pairs"] == 6
    assert top["p_paired_t"] < 1e-4  # the seed effect cancels in pairs
    assert top["p_wilcoxon"] == pytest.approx(2 / 2 ** 6)  # exact: all six differences agree
    assert top["p_welch"] > top["p_paired_t"]
    assert (table["ci_method"] == "student-t").all()
    assert table.loc["bottom-heavy", "gmacs"] == 2.0 and "acc_per_gmac" not in table


def test_compare_with_explicit_reference_and_single_seed() -> None:
    df = _paired(n_seeds=1)
    table = compare(df, reference="top-heavy").set_index("group")
    assert (table["reference"] == "top-heavy").all()
    assert table.loc["bottom-heavy", "ci_unit"] == "trial"
    assert math.isnan(table.loc["bottom-heavy", "p_paired_t"])  # one pair: no paired test


def test_compare_of_nothing_is_empty() -> None:
    df = _paired()
    assert compare(df[df["state"] == "PRUNED"]).empty


def test_arch_summary_and_marginal_effects() -> None:
    df = _paired()
    df["stage1.block1.kind"] = np.where(df["family"] == "bottom-heavy", "3d", "2d")
    summary = arch_summary(df)
    assert set(summary["arch_id"]) == {"bottom-heavy0", "bottom-heavy1", "top-heavy0",
                                       "top-heavy1"}
    assert (summary["n"] == 6).all()
    assert (summary["ci_low"] <= summary["mean"]).all()
    effects = marginal_effects(df).set_index("kind")
    assert effects.loc["3d", "delta"] == pytest.approx(0.025, abs=0.003)
    assert effects.loc["3d", "delta_gmacs"] == pytest.approx(0.5)


def test_curve_summary_band() -> None:
    curves = pd.DataFrame({"trial_id": [1, 1, 2, 2], "epoch": [1, 2, 1, 2], "seed": 0,
                           "name": "val/acc1", "value": [0.1, 0.5, 0.3, 0.7]})
    trials = pd.DataFrame({"trial_id": [1, 2], "family": ["2D", "2D"], "seed": [0, 1]})
    out = curve_summary(curves, trials, by="family")
    assert list(out["mean"]) == pytest.approx([0.2, 0.6])
    assert (out["ci_low"] < out["mean"]).all() and (out["mean"] < out["ci_high"]).all()
    assert not curve_summary(curves, trials, by="seed").empty


def test_curve_summary_holds_a_stopped_trials_result_not_the_survivors_mean() -> None:
    """A trial the stopper ended at epoch 2 (at 0.2) beside one that ran to epoch 4: without
    hold_last the late epochs average the survivor alone (0.9, survivorship); with it the stopped
    trial's reported result stays in, so epoch 4's mean is the mean of the two results."""
    curves = pd.DataFrame({"trial_id": [1, 1, 2, 2, 2, 2, 3, 3, 3], "epoch": [1, 2, 1, 2, 3, 4,
                                                                           1, 2, 3],
                           "name": "val/acc1",
                           "value": [0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 0.4, 0.6, 0.7]})
    trials = pd.DataFrame({"trial_id": [1, 2, 3], "arm": ["slow", "slow", "other"]})
    plain = curve_summary(curves, trials, by="arm").set_index(["arm", "epoch"])
    held = curve_summary(curves, trials, by="arm", hold_last=True).set_index(["arm", "epoch"])
    assert plain.loc[("slow", 4), "mean"] == pytest.approx(0.9) and plain.loc[("slow", 4), "n"] == 1
    assert held.loc[("slow", 4), "mean"] == pytest.approx((0.2 + 0.9) / 2)
    assert list(held.loc["slow", "n"]) == [2, 2, 2, 2]
    assert held.loc[("slow", 2), "mean"] == pytest.approx(0.35)  # before the stop: unchanged
    # every arm is held to the study's last epoch: "other" (all its trials ended at 3) too
    assert ("other", 4) not in plain.index and held.loc[("other", 4), "mean"] == pytest.approx(0.7)


def test_interval_of_very_many_units_is_normal_and_cheap() -> None:
    units = np.random.default_rng(2).normal(0.6, 0.05, 200_000)
    low, high = mean_ci(units)
    assert low < units.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * 0.05 / np.sqrt(units.size), rel=0.02)


def test_no_p_value_without_spread() -> None:
    # quantised accuracies (32 validation clips): the same difference on every seed
    rows = [{"family": f, "seed": s, "arch_id": f, "state": "COMPLETE", "gmacs": 1.0,
             "val/acc1": v} for s in (0, 1) for f, v in (("2D", 0.40625), ("top-heavy", 0.15625))]
    table = compare(pd.DataFrame(rows), reference="2D").set_index("group")
    assert math.isnan(table.loc["top-heavy", "p_paired_t"])
    assert math.isnan(table.loc["top-heavy", "p_welch"])


def test_an_accuracy_interval_stays_within_zero_and_one() -> None:
    """Seeds near 1.0 with one bad seed: the t interval's upper end passes 1.0 and is clipped;
    the mean is unchanged, and a loss's interval keeps its upper end (bounded below only)."""
    accs = [1.0, 1.0, 0.97, 1.0, 0.62, 1.0, 1.0, 0.99]
    rows = [{"family": "bottom-heavy", "seed": s, "arch_id": "mc3", "state": "COMPLETE",
             "gmacs": 1.0, "val/acc1": a, "val/loss": 0.05 + (1 - a)} for s, a in enumerate(accs)]
    df = pd.DataFrame(rows)
    raw_low, raw_high = mean_ci(accs)
    assert raw_high > 1.0  # the unclipped interval: a mean above 1 cannot be
    row = compare(df, by="family", metric="val/acc1").iloc[0]
    assert row["ci_high"] == 1.0 and row["ci_low"] == pytest.approx(raw_low)
    assert row["mean"] == pytest.approx(np.mean(accs))
    summary = arch_summary(df, metric="val/acc1").iloc[0]
    assert summary["ci_high"] == 1.0
    loss = compare(df, by="family", metric="val/loss").iloc[0]
    assert loss["ci_high"] == pytest.approx(mean_ci(df["val/loss"])[1]) and loss["ci_low"] >= 0
