"""The study protocol in analysis: honest intervals, metric direction, baselines, flags, cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import checks
from search.results import metrics

COVERAGE_REPS = 3000  # simulated studies per seed count: coverage known to about ±0.004


def _coverage(intervals: np.ndarray, truth: float) -> float:
    """Share of (low, high) rows that contain ``truth``."""
    return float(np.mean((intervals[:, 0] <= truth) & (truth <= intervals[:, 1])))


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_reported_95_intervals_cover_the_true_mean(n_seeds: int) -> None:
    """Per-seed means drawn around a known accuracy: ``mean_ci`` (what ``compare`` reports)
    covers it at least 93% of the time; a percentile bootstrap over the same means does not."""
    rng = np.random.default_rng(20_240 + n_seeds)
    truth, spread = 0.62, 0.03
    draws = rng.normal(truth, spread, size=(COVERAGE_REPS, n_seeds))  # (study, seed)
    reported = np.array([analysis.mean_ci(row) for row in draws])
    assert _coverage(reported, truth) >= 0.93
    # the old percentile bootstrap: resample the seed means, take the 2.5/97.5% quantiles
    picks = rng.integers(0, n_seeds, size=(COVERAGE_REPS, 300, n_seeds))
    boot = np.take_along_axis(draws[:, None, :], picks, axis=2).mean(axis=2)  # (study, boot)
    bootstrap = np.quantile(boot, [0.025, 0.975], axis=1).T
    assert _coverage(bootstrap, truth) < 0.90  # the simulation can tell a too-narrow interval


def test_compare_reports_the_t_interval_of_per_seed_means() -> None:
    rng = np.random.default_rng(3)
    rows = [{"family": f, "seed": s, "arch_id": f"{f}{a}", "state": "COMPLETE", "gmacs": 1.0,
             "val/acc1": 0.5 + 0.1 * (f == "b") + rng.normal(0, 0.02)}
            for f in ("a", "b") for s in range(4) for a in range(2)]
    df = pd.DataFrame(rows)
    table = analysis.compare(df, by="family").set_index("group")
    seed_means = df[df["family"] == "a"].groupby("seed")["val/acc1"].mean()
    assert (table.loc["a", "ci_low"], table.loc["a", "ci_high"]) == pytest.approx(
        analysis.mean_ci(seed_means.to_numpy()))
    assert table.loc["a", "ci_method"] == "student-t" and table.loc["a", "ci_unit"] == "seed"


# --- direction ---------------------------------------------------------------------------------


def _family_means(df: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over seeds of each family's per-seed mean, from the raw frame."""
    done = df[(df["state"] == "COMPLETE") & df[metric].notna()]
    return done.groupby(["family", "seed"])[metric].mean().groupby("family").mean()


def test_val_loss_picks_the_lowest_loss_family(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    means = _family_means(df, "val/loss")
    lowest, highest = means.idxmin(), means.idxmax()
    table = analysis.compare(df, by="family", metric="val/loss")
    assert (table["reference"] == lowest).all()  # the best group is the reference
    best = table.set_index("group")
    assert best.loc[highest, "delta"] > 0 and best.loc[highest, "best"] == pytest.approx(
        df.loc[(df["family"] == highest) & (df["state"] == "COMPLETE"), "val/loss"].min())
    per_group = analysis.best_per_group(df, "val/loss")
    assert per_group["mean"].is_monotonic_increasing  # the lowest loss first
    arch_means = df[df["state"] == "COMPLETE"].groupby(["family", "label"])["val/loss"].mean()
    assert per_group["label"].iloc[0] == arch_means.idxmin()[1]
    for _, row in per_group.iterrows():
        assert row["label"] == arch_means.loc[row["family"]].idxmin()
    result = analysis.verdict(df, "val/loss")
    assert result["winner"]["group"] == lowest
    assert f"**{lowest}** placements score the best mean val/loss (lower is better)" in \
        result["sentences"][0]
    summary = analysis.arch_summary(df, "val/loss")
    assert summary["mean"].is_monotonic_increasing  # best (lowest) first


def test_pareto_front_takes_objective_directions_from_names() -> None:
    df = pd.DataFrame({"val/loss": [0.5, 0.4, 0.6, 0.45], "macs": [10, 20, 5, 30],
                       "state": "COMPLETE", "name": list("abcd")})
    front = analysis.pareto_front(df, ("val/loss", "macs"))
    assert list(front["name"]) == ["c", "a", "b"]  # d: costlier and worse than b
    with pytest.raises(metrics.DirectionError):
        analysis.pareto_front(df.rename(columns={"val/loss": "score"}), ("score", "macs"))


def test_constant_metrics_are_not_offered() -> None:
    df = pd.DataFrame({"state": "COMPLETE", "val/acc1": [0.3, 0.4, 0.35],
                       "val/acc5": [1.0, 1.0, 1.0], "val/loss": [1.2, 1.1, 1.3],
                       "grad/norm": [1.0, 2.0, 3.0]})
    assert checks.informative_metrics(df) == ["val/acc1", "val/loss"]  # no acc5, no direction
    assert checks.informative_metrics(df, {"grad/norm": "min"})[-1] == "grad/norm"
    flat = df.assign(**{"val/acc1": 0.25})
    assert checks.default_metric(flat) == "val/loss"


# --- baselines and flags -----------------------------------------------------------------------


def _arms() -> pd.DataFrame:
    """Three networks x 3 seeds on 4 classes: one at chance, one undertrained, one memorising."""
    rows = []
    for seed in range(3):
        for arch, acc, train, plateaued in (("guess", 0.25, 0.27, True), ("slow", 0.55, 0.6, False),
                                            ("memo", 0.50, 0.99, True)):
            rows.append({"arch_id": arch, "label": arch, "family": arch, "seed": seed,
                         "state": "COMPLETE", "gmacs": {"guess": 0.1, "slow": 1.0,
                                                        "memo": 2.0}[arch],
                         "num_classes": 4, "plateaued": plateaued,
                         "val/acc1": acc + 0.01 * (seed - 1), "train/acc1": train})
    return pd.DataFrame(rows)


def test_chance_falls_back_to_one_over_classes_and_arms_are_flagged() -> None:
    df = _arms()
    base = checks.baselines(df)
    assert base["chance"] == pytest.approx(0.25) and base["chance_source"] == "1/classes"
    assert np.isnan(base["majority"])  # not recorded: unknown, not guessed
    table = analysis.compare(df, by="family").set_index("group")
    assert table.loc["guess", "above_chance"] is False
    assert "interval includes chance" in table.loc["guess", "flags"]
    assert table.loc["slow", "above_chance"] is True
    assert table.loc["slow", "n_undertrained"] == 3 and "undertrained" in table.loc["slow", "flags"]
    assert table.loc["memo", "memorising"] and "memorising" in table.loc["memo", "flags"]
    assert table.loc["memo", "train_val_gap"] == pytest.approx(0.49)  # from train/acc1 - val/acc1
    recorded = df.assign(chance_acc=0.2, majority_acc=0.3, train_val_gap=0.0)
    table = analysis.compare(recorded, by="family").set_index("group")
    assert table.loc["guess", ["chance", "majority"]].tolist() == pytest.approx([0.2, 0.3])
    assert not table["memorising"].any()  # the recorded gap wins over the derived one


def test_flags_on_a_database_before_the_protocol_columns(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    old = df.drop(columns=["chance_acc", "majority_acc", "plateaued", "train_val_gap"])
    summary = analysis.arch_summary(old)
    assert summary["chance"].tolist() == pytest.approx([0.1] * len(summary))  # 1/10 classes
    assert (summary["n_undertrained"] == 0).all() and summary["train_val_gap"].notna().all()
    new = analysis.arch_summary(df)
    assert new.set_index("label").loc["mc2", "n_undertrained"] == 1


# --- matched cost ------------------------------------------------------------------------------


def test_matched_cost_replaces_accuracy_per_gmac() -> None:
    summary = analysis.arch_summary(_arms())
    ratio = summary["mean"] / summary["gmacs"]
    assert summary.loc[ratio.idxmax(), "label"] == "guess"  # what "per GMAC" would have ranked
    front = analysis.credible_front(summary, "val/acc1")
    assert "guess" not in set(front["label"]) and "slow" in set(front["label"])
    plain = analysis.pareto_front(summary, (("mean", "max"), ("gmacs", "min")),
                                  complete_only=False)
    assert "guess" in set(plain["label"])
    assert analysis.budget_levels(summary) == [0.1, 1.0, 2.0]
    at = analysis.best_at_budget(summary, 1.0, "val/acc1", by="family")
    assert list(at["family"]) == ["slow", "guess"]  # "memo" costs 2 GMACs: over budget
    assert analysis.best_at_budget(summary, 0.05, "val/acc1").empty
