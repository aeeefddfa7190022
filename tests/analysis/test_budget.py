"""``analysis.at_budget``: the best network, family and bottom- vs top-heavy under a budget."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

import analysis


@pytest.fixture(scope="module")
def grid(demo_db: Path) -> pd.DataFrame:
    return analysis.load_trials(demo_db, "bottom_vs_top")


def _per_seed(df: pd.DataFrame, metric: str = "val/acc1") -> pd.DataFrame:
    """(arch, seed) means of COMPLETE trials, computed here independently of analysis."""
    done = df[(df["state"] == "COMPLETE") & df[metric].notna()]
    return done.groupby(["arch_id", "seed"])[metric].mean().unstack("arch_id")


def test_best_network_under_the_budget_with_a_t_interval_over_seeds(grid: pd.DataFrame) -> None:
    budget = float(grid["macs"].quantile(0.4))
    answer = analysis.at_budget(grid, macs=budget)
    per_seed = _per_seed(grid)
    cost = grid.groupby("arch_id")["macs"].first()
    under = [a for a in per_seed if cost[a] <= budget]
    assert len(under) < per_seed.shape[1]  # the budget excludes some networks
    expected = max(under, key=lambda a: per_seed[a].mean())
    assert answer.best is not None and answer.best["arch_id"] == expected
    values = per_seed[expected].dropna()
    low, high = sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))
    assert answer.best["mean"] == pytest.approx(values.mean())
    assert (answer.best["ci_low"], answer.best["ci_high"]) == pytest.approx((low, high))
    assert answer.best["cost"] <= budget
    assert set(answer.within["arch_id"]) == set(under)
    assert "Under" in answer.sentences[0] and answer.best["name"] in answer.sentences[0]


def test_best_family_is_the_highest_mean_of_per_seed_means(grid: pd.DataFrame) -> None:
    answer = analysis.at_budget(grid, macs=float(grid["macs"].max()))
    per_seed = _per_seed(grid)
    family = grid.groupby("arch_id")["family"].first()
    means = {f: per_seed[[a for a in per_seed if family[a] == f]].mean(axis=1).mean()
             for f in set(family)}
    assert answer.best_family is not None
    assert answer.best_family["family"] == max(means, key=means.get)
    assert answer.families["mean"].is_monotonic_decreasing
    assert set(answer.families["family"]) == set(family)


def test_bottom_vs_top_pairs_the_best_of_each_over_shared_seeds(grid: pd.DataFrame) -> None:
    budget = float(grid["macs"].max())
    answer = analysis.at_budget(grid, macs=budget)
    bt = answer.bottom_vs_top
    assert bt is not None
    per_seed = _per_seed(grid)
    nets = answer.networks
    best_of = {f: nets[nets["family"] == f].iloc[0]["arch_id"]
               for f in ("bottom-heavy", "top-heavy")}
    assert (bt["bottom_arch_id"], bt["top_arch_id"]) == (best_of["bottom-heavy"],
                                                         best_of["top-heavy"])
    diff = (per_seed[best_of["bottom-heavy"]] - per_seed[best_of["top-heavy"]]).dropna()
    assert bt["n_pairs"] == len(diff) >= 2
    assert bt["delta"] == pytest.approx(diff.mean())
    low, high = sps.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=sps.sem(diff))
    assert (bt["ci_low"], bt["ci_high"]) == pytest.approx((low, high))
    assert bt["p"] == pytest.approx(sps.ttest_rel(per_seed.loc[diff.index, best_of[
        "bottom-heavy"]], per_seed.loc[diff.index, best_of["top-heavy"]]).pvalue)
    assert any(s.startswith("Bottom- vs top-heavy") for s in answer.sentences)


def test_matched_cost_pairs_the_most_expensive_equal_cost_pair(grid: pd.DataFrame) -> None:
    budget = 15e9  # the best bottom-heavy (MC2) and top-heavy (rMC3) differ by 14% here
    answer = analysis.at_budget(grid, macs=budget)
    assert answer.bottom_vs_top is not None and not answer.bottom_vs_top["matched"]
    m = answer.matched
    assert m is not None and m["matched"]
    assert abs(m["bottom_cost"] / m["top_cost"] - 1) <= 0.05
    nets = answer.within
    pairs = [(min(b, t), b, t) for b in nets.loc[nets["family"] == "bottom-heavy", "cost"]
             for t in nets.loc[nets["family"] == "top-heavy", "cost"] if abs(b / t - 1) <= 0.05]
    assert min(m["bottom_cost"], m["top_cost"]) == max(pairs)[0]
    assert any(s.startswith("Bottom- vs top-heavy, at matched cost") for s in answer.sentences)
    alone = analysis.at_budget(grid[grid["label"].isin(["mc2", "rmc3"])], macs=budget)
    assert alone.matched is None
    assert any("cost the same" in s for s in alone.sentences)


def test_pareto_flags_exactly_the_non_dominated_networks(grid: pd.DataFrame) -> None:
    nets = analysis.at_budget(grid, macs=1e12).networks
    for _, row in nets.iterrows():
        dominated = ((nets["mean"] >= row["mean"]) & (nets["cost"] <= row["cost"])
                     & ((nets["mean"] > row["mean"]) | (nets["cost"] < row["cost"]))).any()
        assert row["pareto"] == (not dominated), row["name"]


def test_a_budget_below_every_network_says_so(grid: pd.DataFrame) -> None:
    answer = analysis.at_budget(grid, macs=1.0)
    assert answer.best is None and answer.best_family is None and answer.bottom_vs_top is None
    assert answer.within.empty
    assert answer.sentences[0].startswith("No network fits under")


def test_params_axis_and_a_loss_metric_pick_the_lowest(grid: pd.DataFrame) -> None:
    answer = analysis.at_budget(grid, params=float(grid["params"].max()), metric="val/loss")
    per_seed = _per_seed(grid, "val/loss")
    assert answer.axis == "params" and not answer.higher_is_better
    assert answer.best is not None
    assert answer.best["arch_id"] == per_seed.mean().idxmin()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one budget"),
    ({"macs": 1e9, "params": 1e6}, "give exactly one budget"),
    ({"macs": 0}, "macs: a budget must be a positive number"),
    ({"macs": math.nan}, "macs: a budget must be a positive number"),
])
def test_bad_budgets_are_refused(grid: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        analysis.at_budget(grid, **kwargs)


def test_a_cost_axis_the_study_lacks_is_refused(grid: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="latency_ms: no network of this study has that cost"):
        analysis.at_budget(grid.assign(latency_ms=math.nan), latency_ms=5.0)


def test_chance_from_the_trials_or_the_class_count(grid: pd.DataFrame) -> None:
    assert analysis.chance_level(grid) == pytest.approx(0.1)  # recorded by every trial
    assert analysis.chance_level(grid.assign(chance_acc=0.25), 10) == pytest.approx(0.25)
    unrecorded = grid.assign(chance_acc=math.nan)  # rows written before schema 0003
    assert analysis.chance_level(unrecorded, 10) == pytest.approx(0.1)
    assert math.isnan(analysis.chance_level(unrecorded))


def test_an_undecided_pair_is_not_called_better() -> None:
    """The Budget page said "top-heavy is better (the interval includes 0: undecided)" on
    placement_crossover.scale4: a point estimate is not a finding."""
    from analysis.budget import BudgetAnswer, _pair_sentence

    answer = BudgetAnswer(axis="macs", budget=19e6, metric="val/acc1", higher_is_better=True,
                          networks=pd.DataFrame(), families=pd.DataFrame(), best=None,
                          best_family=None, bottom_vs_top=None, matched=None)
    pair = {"bottom": "mc3", "top": "rmc4", "bottom_cost": 19e6, "top_cost": 19e6,
            "matched": True, "cost_ratio": 1.0, "n_pairs": 8, "delta": -0.1001,
            "ci_low": -0.2917, "ci_high": 0.0915}
    undecided = _pair_sentence(pair, "best of each under the budget", answer)
    assert "**undecided**" in undecided and "is better" not in undecided
    assert "top-heavy is ahead on the means only" in undecided
    decided = _pair_sentence({**pair, "ci_high": -0.01}, "at matched cost", answer)
    assert "**top-heavy** is better" in decided and "undecided" not in decided


def _brute_matched(b_cost: list[float], t_cost: list[float]) -> tuple[int, int] | None:
    """The pairing rule written out: every pair, in order; the first with the largest smaller
    cost wins."""
    from analysis.budget import MATCHED_COST

    best = None
    for i, b in enumerate(b_cost):
        for j, t in enumerate(t_cost):
            if t > 0 and abs(b / t - 1) <= MATCHED_COST:
                cost = min(b, t)
                if best is None or cost > best[0]:
                    best = (cost, i, j)
    return None if best is None else (best[1], best[2])


def test_the_matched_pair_is_the_rule_written_out() -> None:
    """Vectorised (a million-trial study: 10 s -> well under 1 s) and exact: on random costs
    with ties, duplicates, zeros and pairs exactly 5% apart."""
    import numpy as np

    from analysis.budget import matched_pair

    rng = np.random.default_rng(0)
    for trial in range(400):
        nb, nt = rng.integers(0, 12, size=2)
        grid = rng.choice([0.0, 95.0, 100.0, 105.0, 100 / 0.95, 100 / 1.05, 110.0, 50.0],
                          size=nb + nt) if trial % 2 else rng.uniform(0, 200, size=nb + nt)
        b, t = grid[:nb], grid[nb:]
        assert matched_pair(b, t) == _brute_matched(list(b), list(t)), (b, t)
    assert matched_pair(np.array([100.0]), np.array([105.0, 106.0])) == (0, 0)
    assert matched_pair(np.array([100.0]), np.array([94.0, 106.0])) is None
