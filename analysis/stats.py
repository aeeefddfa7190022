"""Pareto fronts and grouped comparisons with seed statistics.

Only COMPLETE trials count: a PRUNED trial stopped early with partial results and would look
cheaper and worse than it is; FAILED and RUNNING trials have no final metrics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.loading import spec_columns
from analysis.placement import FAMILIES

Objectives = Sequence[tuple[str, str]]  # (column, "max" | "min")
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (("val/acc1", "max"), ("macs", "min"))


def completed(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """COMPLETE trials (with a finite ``metric`` when given)."""
    out = df[df["state"] == "COMPLETE"] if "state" in df else df
    if metric is not None:
        if metric not in out:
            return out.iloc[0:0]
        out = out[np.isfinite(out[metric].to_numpy(dtype=float, na_value=np.nan))]
    return out


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of non-dominated rows of ``values`` (n, k), every column minimised.

    A row is dominated when another is no worse in every column and better in one; exact
    duplicates of a front point are all kept.
    """
    n, k = values.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    if k == 1:
        return values[:, 0] == values[:, 0].min()
    if k == 2:  # O(n log n): sort by the first objective, sweep the second
        order = np.lexsort((values[:, 1], values[:, 0]))
        first, second = values[order, 0], values[order, 1]
        keep = np.zeros(n, dtype=bool)
        best1, best0 = math.inf, math.nan
        for i in range(n):
            if second[i] < best1:
                keep[i], best1, best0 = True, second[i], first[i]
            elif second[i] == best1 and first[i] == best0:
                keep[i] = True
        mask = np.zeros(n, dtype=bool)
        mask[order] = keep
        return mask
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, 1024):  # O(n^2) in chunks for 3+ objectives
        block = values[start:start + 1024, None, :]
        no_worse = np.all(values[None, :, :] <= block, axis=2)  # (chunk, n): j no worse than i
        better = np.any(values[None, :, :] < block, axis=2)
        mask[start:start + 1024] = ~np.any(no_worse & better, axis=1)
    return mask


def pareto_front(df: pd.DataFrame, objectives: Objectives = DEFAULT_OBJECTIVES,
                 *, complete_only: bool = True) -> pd.DataFrame:
    """Rows of ``df`` on the Pareto front of ``objectives``, sorted by the last objective.

    Args:
        df: a ``load_trials`` frame (or ``arch_summary``, with ``complete_only=False``).
        objectives: ``(column, "max" | "min")`` pairs, e.g. accuracy up, MACs down.
        complete_only: keep COMPLETE trials only (PRUNED never counts).
    """
    cols = [c for c, _ in objectives]
    for col, mode in objectives:
        if mode not in ("max", "min"):
            raise ValueError(f"objective {col!r}: mode must be 'max' or 'min', got {mode!r}")
    if any(c not in df for c in cols):
        return df.iloc[0:0]
    data = completed(df) if complete_only else df
    values = data[cols].to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(values).all(axis=1)
    data, values = data[finite], values[finite]
    signs = np.array([-1.0 if mode == "max" else 1.0 for _, mode in objectives])
    front = data[pareto_mask(values * signs)]
    return front.sort_values(cols[-1], kind="stable")


BOOTSTRAP_MAX_DRAWS = 20_000_000  # n_boot x units above this: normal approximation (large n)


def bootstrap_ci(units: np.ndarray, *, n_boot: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``units``; NaNs when fewer than two units.

    With very many units (a one-seed search of 100k trials) the bootstrap distribution of the
    mean is normal to good accuracy, so the CI is ``mean ± z·sd/√n`` instead of 2000 resamples.
    """
    units = np.asarray(units, dtype=float)
    if units.size < 2:
        return math.nan, math.nan
    if units.size * n_boot > BOOTSTRAP_MAX_DRAWS:
        half = sps.norm.ppf(0.5 + confidence / 2) * units.std(ddof=1) / math.sqrt(units.size)
        return float(units.mean() - half), float(units.mean() + half)
    rng = np.random.default_rng(seed)
    means = units[rng.integers(0, units.size, size=(n_boot, units.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def t_interval(mean: pd.Series, std: pd.Series, n: pd.Series,
               confidence: float = 0.95) -> tuple[pd.Series, pd.Series]:
    """Student-t CI of a mean per row (NaN where n < 2); cheap for thousands of groups."""
    dof = (n - 1).where(n > 1)
    half = sps.t.ppf(0.5 + confidence / 2, dof) * std / np.sqrt(n)
    return mean - half, mean + half


def _seed_units(group: pd.DataFrame, metric: str) -> tuple[pd.Series, str]:
    """Per-seed means when a group has 2+ seeds (the unit of replication), else its trials."""
    if "seed" in group and group["seed"].nunique() >= 2:
        return group.groupby("seed")[metric].mean(), "seed"
    return group[metric].reset_index(drop=True), "trial"


def _order(groups: list, by: str) -> list:
    if by == "family":
        return sorted(groups, key=lambda g: FAMILIES.index(g) if g in FAMILIES else len(FAMILIES))
    return sorted(groups, key=str)


def compare(df: pd.DataFrame, by: str = "family", metric: str = "val/acc1", *,
            reference: str | None = None, n_boot: int = 2000, confidence: float = 0.95,
            seed: int = 0) -> pd.DataFrame:
    """Effect table of ``metric`` by group over COMPLETE trials.

    Columns: ``n`` trials, ``n_seeds``, ``n_archs``, ``mean`` (of per-seed means when the group
    has two or more seeds, else of trials), ``ci_low``/``ci_high`` (percentile bootstrap over
    those units), ``ci_unit``, ``best``, ``gmacs`` (mean), ``acc_per_gmac`` (mean of
    metric/GMAC per trial), ``latency_ms``; against ``reference`` (default: the best group):
    ``delta``, ``n_pairs`` (seeds both groups ran), ``p_paired_t`` and ``p_wilcoxon`` (paired
    over seeds, when there are 2+ pairs), ``p_welch`` (unpaired, over units).
    """
    data = completed(df, metric)
    if data.empty or by not in data:
        return pd.DataFrame(columns=["group", "n", "n_seeds", "n_archs", "mean", "ci_low",
                                     "ci_high", "ci_unit", "best", "gmacs", "acc_per_gmac",
                                     "latency_ms", "delta", "n_pairs", "p_paired_t",
                                     "p_wilcoxon", "p_welch", "reference"])
    rows, units_of, seed_means = [], {}, {}
    for group, g in data.groupby(by, sort=False):
        units, unit = _seed_units(g, metric)
        units_of[group] = units.to_numpy(dtype=float)
        seed_means[group] = g.groupby("seed")[metric].mean() if "seed" in g else pd.Series()
        low, high = bootstrap_ci(units_of[group], n_boot=n_boot, confidence=confidence,
                                 seed=seed)
        gmacs = g["gmacs"] if "gmacs" in g else pd.Series(dtype=float)
        rows.append({
            "group": group, "n": len(g), "n_seeds": g["seed"].nunique() if "seed" in g else 1,
            "n_archs": g["arch_id"].nunique() if "arch_id" in g else len(g),
            "mean": float(units_of[group].mean()), "ci_low": low, "ci_high": high,
            "ci_unit": unit, "best": float(g[metric].max()),
            "gmacs": float(gmacs.mean()) if len(gmacs) else math.nan,
            "acc_per_gmac": float((g[metric] / gmacs).mean()) if len(gmacs) else math.nan,
            "latency_ms": float(g["latency_ms"].mean()) if "latency_ms" in g else math.nan,
        })
    table = pd.DataFrame(rows)
    table = table.set_index("group").loc[_order(list(table["group"]), by)].reset_index()
    ref = reference if reference in units_of else table.loc[table["mean"].idxmax(), "group"]
    deltas, pairs, p_t, p_w, p_welch = [], [], [], [], []
    for group in table["group"]:
        deltas.append(float(units_of[group].mean() - units_of[ref].mean()))
        a, b = seed_means[group], seed_means[ref]
        common = a.index.intersection(b.index)
        pairs.append(len(common) if group != ref else 0)
        t_p = w_p = welch = math.nan
        if group != ref:
            diff = (a.loc[common] - b.loc[common]).to_numpy(dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # a test needs spread: with identical differences (or values) it is undefined
                if len(common) >= 2 and np.any(diff != 0):
                    w_p = float(sps.wilcoxon(diff).pvalue)
                    if np.ptp(diff) > 0:
                        t_p = float(sps.ttest_rel(a.loc[common], b.loc[common]).pvalue)
                if (len(units_of[group]) >= 2 and len(units_of[ref]) >= 2
                        and np.ptp(units_of[group]) + np.ptp(units_of[ref]) > 0):
                    welch = float(sps.ttest_ind(units_of[group], units_of[ref],
                                                equal_var=False).pvalue)
        p_t.append(t_p)
        p_w.append(w_p)
        p_welch.append(welch)
    table["delta"], table["n_pairs"] = deltas, pairs
    table["p_paired_t"], table["p_wilcoxon"], table["p_welch"] = p_t, p_w, p_welch
    table["reference"] = ref
    return table


def arch_summary(df: pd.DataFrame, metric: str = "val/acc1",
                 confidence: float = 0.95) -> pd.DataFrame:
    """One row per arch over its COMPLETE seeds: mean, std, t-CI of ``metric``, cost, family.

    Also carries the arch's label and spec kind columns (the same for every seed of an arch).
    """
    data = completed(df, metric)
    keep = [c for c in ("family", "label", "gmacs", "macs", "params", "latency_ms", "t_com",
                        "t_share_bottom", "temporal_mac_frac") if c in data]
    keep += spec_columns(data, "kind")
    if data.empty:
        return pd.DataFrame(columns=["arch_id", *keep, "n", "mean", "std", "ci_low", "ci_high"])
    grouped = data.groupby("arch_id", sort=False)
    out = grouped[keep].first()
    stats = grouped[metric].agg(["count", "mean", "std"]).rename(columns={"count": "n"})
    out = out.join(stats)
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"], confidence)
    if "seed" in data:
        out["seeds"] = grouped["seed"].agg(lambda s: ",".join(map(str, sorted(s))))
    return out.reset_index().sort_values("mean", ascending=False, kind="stable")


def marginal_effects(df: pd.DataFrame, metric: str = "val/acc1") -> pd.DataFrame:
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


def curve_summary(curves: pd.DataFrame, trials: pd.DataFrame, metric: str = "val/acc1",
                  by: str = "family", confidence: float = 0.95) -> pd.DataFrame:
    """Mean learning curve of ``metric`` per group and epoch with a t-CI band over trials.

    Args:
        curves: a long ``load_curves`` frame.
        trials: the ``load_trials`` frame that gives each trial its group.
    """
    sub = curves[curves["name"] == metric]
    if sub.empty or by not in trials:
        return pd.DataFrame(columns=[by, "epoch", "n", "mean", "std", "ci_low", "ci_high"])
    sub = sub.drop(columns=[by], errors="ignore").merge(trials[["trial_id", by]],
                                                         on="trial_id", how="inner")
    sub = sub[np.isfinite(sub["value"].to_numpy(dtype=float))]
    out = sub.groupby([by, "epoch"])["value"].agg(["count", "mean", "std"]).reset_index()
    out = out.rename(columns={"count": "n"})
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"], confidence)
    return out


def state_counts(df: pd.DataFrame) -> dict[str, int]:
    """Trials per state, every state present (0 when none)."""
    counts = df["state"].value_counts() if "state" in df else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in ("COMPLETE", "PRUNED", "FAILED", "RUNNING")}
