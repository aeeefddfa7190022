"""Comparisons at matched cost: the best arm under a MAC budget, and the credible Pareto front.

A ratio such as "accuracy per GMAC" ranks a cheap network that guesses at chance above a good
one; these compare networks at the same cost instead, and only networks whose interval lies
above chance (for accuracy metrics) count as points of a trade-off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import pareto_front
from search.results import metrics


def credible(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of an ``arch_summary`` whose interval lies above chance (every row for a metric
    that is not an accuracy)."""
    if not metrics.is_accuracy(metric) or "above_chance" not in summary:
        return summary
    return summary[summary["above_chance"].map(lambda v: v is True)]


def credible_front(summary: pd.DataFrame, metric: str, cost: str = metrics.GMACS, *,
                   mode: str | None = None) -> pd.DataFrame:
    """The Pareto front (metric in its direction, ``cost`` down) of the credible arms."""
    mode = mode or metrics.direction(metric)
    return pareto_front(credible(summary, metric), (("mean", mode), (cost, metrics.MIN)),
                        complete_only=False)


def best_at_budget(summary: pd.DataFrame, budget: float, metric: str, *, cost: str = metrics.GMACS,
              by: str = "family", mode: str | None = None) -> pd.DataFrame:
    """Per group of ``by``, the best arm (mean over seeds, in the metric's direction) whose
    ``cost`` is within ``budget``: groups compared at matched cost. Groups with no arm that
    cheap are left out."""
    mode = mode or metrics.direction(metric)
    if summary.empty or by not in summary or cost not in summary:
        return summary.iloc[0:0]
    within = summary[summary[cost].to_numpy(dtype=float, na_value=np.inf) <= budget]
    if within.empty:
        return within
    pick = (within.groupby(by, sort=False)["mean"].idxmax() if mode == metrics.MAX
            else within.groupby(by, sort=False)["mean"].idxmin())
    best = within.loc[pick].sort_values("mean", ascending=mode == metrics.MIN, kind="stable")
    cols = [by, "label", "mean", "ci_low", "ci_high", "n", cost, "chance", "above_chance",
            "flags", "arch_id"]
    return best[[c for c in dict.fromkeys(cols) if c in best]].reset_index(drop=True)


def budget_levels(summary: pd.DataFrame, cost: str = metrics.GMACS) -> list[float]:
    """The distinct arm costs, cheapest first: the budgets at which the best arm changes."""
    if cost not in summary:
        return []
    values = summary[cost].to_numpy(dtype=float, na_value=np.nan)
    return sorted({float(v) for v in values if np.isfinite(v)})
