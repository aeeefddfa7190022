"""Pareto fronts and grouped comparisons with seed statistics.

Intervals are Student-t over per-seed means (``search.results.seed_stats``, shared with the CLI
summary); "best" follows each metric's direction (``search.results.metrics``: the lowest loss, the
highest accuracy); every table carries the protocol's checks (``analysis.checks``: chance,
train-val gap, flags). Only COMPLETE trials count: a PRUNED trial stopped early with partial results and would look
cheaper and worse than it is; FAILED and RUNNING trials have no final metrics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.checks import FLAG_COLUMNS, add_flags, group_checks
from analysis.loading import spec_columns
from analysis.placement import FAMILIES
from search.results import metrics
from search.results.metrics import VAL_ACC1
from search.results.seed_stats import (
    CI_METHOD,
    UNBOUNDED,
    clip_interval,
    mean_ci,
    paired_contrast,
    pareto_mask,
    t_half_width,
)

# (column, "max" | "min"), or a metric name whose direction search.results.metrics knows
Objectives = Sequence[tuple[str, str] | str]
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = ((metrics.VAL_ACC1, metrics.MAX),
                                                   (metrics.MACS, metrics.MIN))


def completed(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """COMPLETE trials (with a finite ``metric`` when given)."""
    out = df[df["state"] == "COMPLETE"] if "state" in df else df
    if metric is not None:
        if metric not in out:
            return out.iloc[0:0]
        out = out[np.isfinite(out[metric].to_numpy(dtype=float, na_value=np.nan))]
    return out


def pareto_front(df: pd.DataFrame, objectives: Objectives = DEFAULT_OBJECTIVES,
                 *, complete_only: bool = True) -> pd.DataFrame:
    """Rows of ``df`` on the Pareto front of ``objectives``, sorted by the last objective.

    Args:
        df: a ``load_trials`` frame (or ``arch_summary``, with ``complete_only=False``).
        objectives: ``(column, "max" | "min")`` pairs, e.g. accuracy up, MACs down, or metric
            names (``"val/loss"``, ``"macs"``) that take their direction from
            ``search.results.metrics``.
        complete_only: keep COMPLETE trials only (PRUNED never counts).
    """
    pairs: list[tuple[str, str]] = [(o, metrics.direction(o)) if isinstance(o, str) else o
                                     for o in objectives]
    cols = [c for c, _ in pairs]
    for col, mode in pairs:
        if mode not in (metrics.MAX, metrics.MIN):
            raise ValueError(f"objective {col!r}: mode must be 'max' or 'min', got {mode!r}")
    if any(c not in df for c in cols):
        return df.iloc[0:0]
    data = completed(df) if complete_only else df
    values = data[cols].to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(values).all(axis=1)
    data, values = data[finite], values[finite]
    signs = np.array([-metrics.sign(mode) for _, mode in pairs])
    front = data[pareto_mask(values * signs)]
    return front.sort_values(cols[-1], kind="stable")


def t_interval(mean: pd.Series, std: pd.Series, n: pd.Series,
               confidence: float = metrics.CONFIDENCE,
               bounds: tuple[float, float] = UNBOUNDED) -> tuple[pd.Series, pd.Series]:
    """Student-t CI of a mean per row (NaN where n < 2), clipped to ``bounds`` (the metric's
    range, ``metrics.bounds``); cheap for thousands of groups."""
    half = t_half_width(std, n, confidence)
    return clip_interval(mean - half, mean + half, bounds)


def _seed_units(group: pd.DataFrame, metric: str) -> tuple[pd.Series, str]:
    """Per-seed means when a group has 2+ seeds (the unit of replication), else its trials."""
    if "seed" in group and group["seed"].nunique() >= 2:
        return group.groupby("seed")[metric].mean(), "seed"
    return group[metric].reset_index(drop=True), "trial"


def _order(groups: list, by: str) -> list:
    if by == "family":
        return sorted(groups, key=lambda g: FAMILIES.index(g) if g in FAMILIES else len(FAMILIES))
    return sorted(groups, key=str)


COMPARE_COLUMNS: tuple[str, ...] = (
    "group", "n", "n_seeds", "n_archs", "mean", "ci_low", "ci_high", "ci_method", "ci_unit",
    "best", "gmacs", "latency_ms", *FLAG_COLUMNS, "delta", "n_pairs", "p_paired_t",
    "p_wilcoxon", "p_welch", "reference")


def compare(df: pd.DataFrame, by: str = "family", metric: str = metrics.VAL_ACC1, *,
            reference: str | None = None, mode: str | None = None,
            confidence: float = metrics.CONFIDENCE) -> pd.DataFrame:
    """Effect table of ``metric`` by group over COMPLETE trials.

    Columns: ``n`` trials, ``n_seeds``, ``n_archs``, ``mean`` (of per-seed means when the group
    has two or more seeds, else of trials), ``ci_low``/``ci_high`` (Student-t interval over
    those units, named in ``ci_method``; ``ci_unit`` says which units), ``best`` (the best trial
    in the metric's direction), ``gmacs`` (mean), ``latency_ms``; the protocol's checks
    (``chance``, ``majority``, ``above_chance``, ``train_val_gap``, ``n_undertrained``,
    ``memorising``, ``flags``: see ``analysis.checks``); and against ``reference`` (default: the
    best group in the metric's direction): ``delta``, ``n_pairs`` (seeds both groups ran),
    ``p_paired_t`` and ``p_wilcoxon`` (paired over seeds, when there are 2+ pairs), ``p_welch``
    (unpaired, over units). These tests are chosen after the fact (against the best group) and
    not adjusted: the study's declared contrasts (``analysis.contrasts``) are the answer.

    Args:
        mode: ``"max"`` or ``"min"``; None takes the metric's direction from its name.
    """
    mode = mode or metrics.direction(metric)
    data = completed(df, metric)
    if data.empty or by not in data:
        return pd.DataFrame(columns=list(COMPARE_COLUMNS))
    rows, units_of, seed_means = [], {}, {}
    for group, g in data.groupby(by, sort=False):
        units, unit = _seed_units(g, metric)
        units_of[group] = units.to_numpy(dtype=float)
        seed_means[group] = g.groupby("seed")[metric].mean() if "seed" in g else pd.Series()
        low, high = mean_ci(units_of[group], confidence, metrics.bounds(metric))
        rows.append({
            "group": group, "n": len(g), "n_seeds": g["seed"].nunique() if "seed" in g else 1,
            "n_archs": g["arch_id"].nunique() if "arch_id" in g else len(g),
            "mean": float(units_of[group].mean()), "ci_low": low, "ci_high": high,
            "ci_method": CI_METHOD, "ci_unit": unit,
            "best": float(g[metric].max() if mode == metrics.MAX else g[metric].min()),
            "gmacs": float(g["gmacs"].mean()) if "gmacs" in g else math.nan,
            "latency_ms": float(g["latency_ms"].mean()) if "latency_ms" in g else math.nan,
        })
    table = pd.DataFrame(rows)
    table = table.set_index("group").loc[_order(list(table["group"]), by)]
    table = add_flags(table.join(group_checks(data, by)), metric).reset_index()
    return against_reference(table, units_of, seed_means, mode, reference)


def against_reference(table: pd.DataFrame, units_of: Mapping[str, np.ndarray],
                      seed_means: Mapping[str, pd.Series], mode: str,
                      reference: str | None = None) -> pd.DataFrame:
    """``table`` (one row per ``group`` with its ``mean``) with each group tested against the
    reference (``reference``, else the best mean): Δ, paired t and Wilcoxon over the seeds both
    ran, Welch unpaired over the units; the ``COMPARE_COLUMNS``."""
    best = table["mean"].idxmax() if mode == metrics.MAX else table["mean"].idxmin()
    ref = reference if reference in units_of else table.loc[best, "group"]
    deltas, pairs, p_t, p_w, p_welch = [], [], [], [], []
    for group in table["group"]:
        deltas.append(float(units_of[group].mean() - units_of[ref].mean()))
        a, b = seed_means[group], seed_means[ref]
        common = a.index.intersection(b.index)
        pairs.append(len(common) if group != ref else 0)
        t_p = w_p = welch = math.nan
        if group != ref:
            paired = paired_contrast((a.loc[common] - b.loc[common]).to_numpy(dtype=float))
            t_p, w_p = paired["p_t"], paired["p_wilcoxon"]
            ua, ub = units_of[group], units_of[ref]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if len(ua) >= 2 and len(ub) >= 2 and np.ptp(ua) + np.ptp(ub) > 0:
                    welch = float(sps.ttest_ind(ua, ub, equal_var=False).pvalue)
        p_t.append(t_p)
        p_w.append(w_p)
        p_welch.append(welch)
    table["delta"], table["n_pairs"] = deltas, pairs
    table["p_paired_t"], table["p_wilcoxon"], table["p_welch"] = p_t, p_w, p_welch
    table["reference"] = ref
    return table[list(COMPARE_COLUMNS)]


def arch_summary(df: pd.DataFrame, metric: str = metrics.VAL_ACC1,
                 confidence: float = metrics.CONFIDENCE, *, mode: str | None = None) -> pd.DataFrame:
    """One row per arch over its COMPLETE seeds: mean, std, t-CI of ``metric``, cost, family.

    Also carries the arch's label and spec kind columns (the same for every seed of an arch)
    and the protocol's checks (``analysis.checks``: chance, gap, flags). Sorted best first in
    the metric's direction (``mode``; None: from its name).
    """
    mode = mode or metrics.direction(metric)
    data = completed(df, metric)
    keep = [c for c in ("family", "label", "gmacs", "macs", "params", "latency_ms", "t_com",
                        "t_share_bottom", "temporal_mac_frac") if c in data]
    keep += spec_columns(data, "kind")
    if data.empty:
        return pd.DataFrame(columns=["arch_id", *keep, "n", "mean", "std", "ci_low", "ci_high",
                                     *FLAG_COLUMNS])
    grouped = data.groupby("arch_id", sort=False)
    out = grouped[keep].first()
    stats = grouped[metric].agg(["count", "mean", "std"]).rename(columns={"count": "n"})
    out = out.join(stats)
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"], confidence,
                                               metrics.bounds(metric))
    if "seed" in data:
        out["seeds"] = grouped["seed"].agg(lambda s: ",".join(map(str, sorted(s))))
    out = add_flags(out.join(group_checks(data, "arch_id")), metric)
    return out.reset_index().sort_values("mean", ascending=mode == metrics.MIN, kind="stable")


def marginal_effects(df: pd.DataFrame, metric: str = VAL_ACC1) -> pd.DataFrame:
    """Each (position, kind)'s marginal effect on ``metric`` and on GMACs over COMPLETE trials.

    Columns: ``position`` (``stem``, ``stage1.block1``, ...), ``kind``, ``n``, ``mean``,
    ``delta`` (mean minus the mean of all trials), ``sem``, ``gmacs``, ``delta_gmacs``.
    Marginal, not causal: in a random search other positions vary too.
    """
    data = completed(df, metric)
    cols = spec_columns(data, "kind")
    if data.empty or not cols:
        return pd.DataFrame(columns=["position", "kind", "n", "mean", "delta", "sem", "gmacs",
                                     "delta_gmacs"])
    overall, overall_gmacs = data[metric].mean(), data["gmacs"].mean()
    parts = []
    for col in cols:
        agg = data.groupby(col)[[metric, "gmacs"]].agg(["count", "mean", "std"])
        part = pd.DataFrame({
            "position": col.removesuffix(".kind"), "kind": agg.index.astype(str),
            "n": agg[(metric, "count")].to_numpy(), "mean": agg[(metric, "mean")].to_numpy(),
            "sem": (agg[(metric, "std")] / np.sqrt(agg[(metric, "count")])).to_numpy(),
            "gmacs": agg[("gmacs", "mean")].to_numpy(),
        })
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["delta"] = out["mean"] - overall
    out["delta_gmacs"] = out["gmacs"] - overall_gmacs
    return out


def curve_summary(curves: pd.DataFrame, trials: pd.DataFrame, metric: str = VAL_ACC1,
                  by: str = "family", confidence: float = 0.95,
                  hold_last: bool = False) -> pd.DataFrame:
    """Mean learning curve of ``metric`` per group and epoch with a t-CI band over trials.

    Args:
        curves: a long ``load_curves`` frame.
        trials: the ``load_trials`` frame that gives each trial its group.
        hold_last: a trial that ended before the last epoch any trial reached (a plateau
            stopper ended it) keeps its last value at the later epochs -- the result it reported -- so every
            epoch's mean is over the same trials, not over the survivors. For COMPLETE trials
            only: a pruned trial's last value is not a result.
    """
    sub = curves[curves["name"] == metric]
    if sub.empty or by not in trials:
        return pd.DataFrame(columns=[by, "epoch", "n", "mean", "std", "ci_low", "ci_high"])
    sub = sub.drop(columns=[by], errors="ignore").merge(trials[["trial_id", by]],
                                                         on="trial_id", how="inner")
    sub = sub[np.isfinite(sub["value"].to_numpy(dtype=float))]
    if hold_last and len(sub):
        sub = _held(sub, by)
    out = sub.groupby([by, "epoch"])["value"].agg(["count", "mean", "std"]).reset_index()
    out = out.rename(columns={"count": "n"})
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"], confidence,
                                               metrics.bounds(metric))
    return out


def _held(sub: pd.DataFrame, by: str) -> pd.DataFrame:
    """``sub`` (trial_id, by, epoch, value) with each trial's last value carried to the last
    epoch any trial reached (one study's trials share one budget)."""
    wide = sub.pivot_table(index=["trial_id", by], columns="epoch", values="value",
                           aggfunc="last")  # (trial, group) x epoch
    wide = wide.ffill(axis=1)
    return wide.stack().rename("value").reset_index().dropna(subset=["value"])  # trial x epoch


def state_counts(df: pd.DataFrame) -> dict[str, int]:
    """Trials per state, every state present (0 when none)."""
    counts = df["state"].value_counts() if "state" in df else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in ("COMPLETE", "PRUNED", "FAILED", "RUNNING")}
