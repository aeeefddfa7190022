"""Seed statistics from per-network aggregates (``analysis.aggregates.ArchTable``).

The same tables as ``analysis.stats.arch_summary`` and ``analysis.stats.compare`` compute from
trial rows — means, standard deviations, Student-t intervals over seeds (``search.results.seed_stats``),
paired tests against a reference group, the protocol's checks and flags — but from one row per
network with its per-seed values, which the database grouped. Tests check both give the same
numbers on the same trials.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregates import ArchTable
from analysis.budget import (
    HASH_LABEL,
    BudgetAnswer,
    answer_at_budget,
    higher_is_better,
    network_name,
)
from analysis.checks import FLAG_COLUMNS, add_flags
from analysis.stats import COMPARE_COLUMNS, _order, against_reference, t_interval
from analysis.summary import verdict_of
from search.results import metrics
from search.results.seed_stats import CI_METHOD, mean_ci

FACT_COLUMNS = ("family", "label", "gmacs", "macs", "params", "latency_ms", "t_com",
                "t_share_bottom", "temporal_mac_frac")


def _check_sums(archs: pd.DataFrame) -> pd.DataFrame:
    """Per network: summed per-trial chance (stored, else 1 / classes), majority and gap, with
    the number of trials each sum is over (``analysis.checks.group_checks``' averages)."""
    n = archs["n"].to_numpy(dtype=float)
    classes = pd.to_numeric(archs.get("num_classes"), errors="coerce") if "num_classes" in archs \
        else pd.Series(np.nan, index=archs.index)
    inv = (1.0 / classes.where(classes > 0)).to_numpy(dtype=float)
    chance_n = archs["chance_n"].to_numpy(dtype=float)
    chance_sum = np.nan_to_num(archs["chance_sum"].to_numpy(dtype=float))
    known = np.isfinite(inv)
    return pd.DataFrame({
        "chance_tot": np.where(known, chance_sum + (n - chance_n) * np.nan_to_num(inv), chance_sum),
        "chance_cnt": np.where(known, n, chance_n),
        "majority_tot": np.nan_to_num(archs["majority_sum"].to_numpy(dtype=float)),
        "majority_cnt": archs["majority_n"].to_numpy(dtype=float),
        "gap_tot": np.nan_to_num(archs["gap_sum"].to_numpy(dtype=float)),
        "gap_cnt": archs["gap_n"].to_numpy(dtype=float),
        "n_undertrained": archs["n_undertrained"].to_numpy(dtype=float),
    }, index=archs.index)


def _checks(sums: pd.DataFrame) -> pd.DataFrame:
    """``group_checks`` columns from summed checks."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({
            "chance": sums["chance_tot"] / sums["chance_cnt"].where(sums["chance_cnt"] > 0),
            "majority": sums["majority_tot"] / sums["majority_cnt"].where(sums["majority_cnt"] > 0),
            "train_val_gap": sums["gap_tot"] / sums["gap_cnt"].where(sums["gap_cnt"] > 0),
            "n_undertrained": sums["n_undertrained"].astype(int)}, index=sums.index)
    out["memorising"] = out["train_val_gap"].map(metrics.is_memorising)
    return out


def _row_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and sample std (ddof 1; NaN below two) of each row's finite values."""
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    total = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        dev = np.where(finite, values - mean[:, None], 0.0)
        std = np.sqrt((dev ** 2).sum(axis=1) / (n - 1))
    std[n < 2] = np.nan
    return n, mean, std


def arch_summary(table: ArchTable, confidence: float = metrics.CONFIDENCE, *,
                 mode: str | None = None) -> pd.DataFrame:
    """``analysis.stats.arch_summary`` from aggregates (without the spec kind columns: see
    ``analysis.placements.spec_fields`` for the rows a page shows)."""
    metric = table.metric
    mode = mode or metrics.direction(metric)
    archs = table.archs
    keep = [c for c in FACT_COLUMNS if c in archs]
    if archs.empty:
        return pd.DataFrame(columns=["arch_id", *keep, "n", "mean", "std", "ci_low", "ci_high",
                                     *FLAG_COLUMNS])
    out = archs[keep].copy()
    n, mean, std = _row_stats(table.values)
    out["n"], out["mean"], out["std"] = n, mean, std
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"], confidence,
                                               metrics.bounds(metric))
    seeds = table.seeds.astype(str)
    present = np.isfinite(table.values)
    if len(present):  # one "0,1,2" text per distinct pattern of seeds present, not per row
        patterns, inverse = np.unique(present, axis=0, return_inverse=True)
        texts = np.array([",".join(seeds[p]) for p in patterns], dtype=object)
        out["seeds"] = texts[inverse.reshape(-1)]
    else:
        out["seeds"] = pd.Series(dtype=object)
    out = add_flags(out.join(_checks(_check_sums(archs))), metric)
    out.index.name = "arch_id"
    return out.reset_index().sort_values("mean", ascending=mode == metrics.MIN, kind="stable")


def _units(values: np.ndarray) -> tuple[np.ndarray, str, pd.Series]:
    """A group's units (per-seed means with 2+ seeds, else its trials) and its seed means."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = np.where(finite, values, 0.0).sum(axis=0) / counts
    have = counts > 0
    if have.sum() >= 2:
        return per_seed[have], "seed", pd.Series(per_seed[have], index=np.flatnonzero(have))
    return values[finite], "trial", pd.Series(per_seed[have], index=np.flatnonzero(have))


def compare(table: ArchTable, by: str = "family", *, reference: str | None = None,
            mode: str | None = None, confidence: float = metrics.CONFIDENCE) -> pd.DataFrame:
    """``analysis.stats.compare`` from aggregates: ``by`` is a per-network column (family,
    label, design_family)."""
    metric = table.metric
    mode = mode or metrics.direction(metric)
    archs = table.archs
    if archs.empty or by not in archs or archs[by].isna().all():
        return pd.DataFrame(columns=list(COMPARE_COLUMNS))
    sums = _check_sums(archs)
    keys = archs[by]
    rows, units_of, seed_means, check_rows = [], {}, {}, {}
    for group in pd.unique(keys.dropna()):
        mask = (keys == group).to_numpy()
        values, g = table.values[mask], archs[mask]
        units, unit, seed_means[group] = _units(values)
        units_of[group] = units
        low, high = mean_ci(units, confidence, metrics.bounds(metric))
        n = g["n"].to_numpy(dtype=float)
        lat = g["latency_ms"].to_numpy(dtype=float) if "latency_ms" in g else np.full(len(g), np.nan)
        has_lat = np.isfinite(lat)
        rows.append({
            "group": group, "n": int(n.sum()), "n_seeds": int(np.isfinite(values).any(axis=0).sum()),
            "n_archs": len(g), "mean": float(units.mean()), "ci_low": low, "ci_high": high,
            "ci_method": CI_METHOD, "ci_unit": unit,
            "best": float(np.nanmax(values) if mode == metrics.MAX else np.nanmin(values)),
            "gmacs": float((g["gmacs"] * n).sum() / n.sum()) if "gmacs" in g else math.nan,
            "latency_ms": float((lat[has_lat] * n[has_lat]).sum() / n[has_lat].sum())
            if has_lat.any() else math.nan,
        })
        check_rows[group] = sums[mask].sum()
    out = pd.DataFrame(rows)
    out = out.set_index("group").loc[_order(list(out["group"]), by)]
    checks = _checks(pd.DataFrame(check_rows).T)
    out = add_flags(out.join(checks), metric).reset_index()
    return against_reference(out, units_of, seed_means, mode, reference)


def baselines(table: ArchTable) -> dict[str, Any]:
    """``analysis.checks.baselines`` over the COMPLETE trials the table holds."""
    sums = _check_sums(table.archs).sum()
    chance = sums["chance_tot"] / sums["chance_cnt"] if sums["chance_cnt"] else math.nan
    majority = sums["majority_tot"] / sums["majority_cnt"] if sums["majority_cnt"] else math.nan
    recorded = bool(table.archs["chance_n"].sum() > 0) if len(table.archs) else False
    return {"chance": float(chance), "majority": float(majority),
            "chance_source": "recorded" if recorded else "1/classes"}


def seed_long(table: ArchTable) -> pd.DataFrame:
    """``analysis.budget.seed_means`` from aggregates: arch_id, seed, value."""
    rows, cols = np.nonzero(np.isfinite(table.values))
    return pd.DataFrame({"arch_id": table.archs.index.to_numpy()[rows],
                         "seed": table.seeds[cols], "value": table.values[rows, cols]})


def network_table(table: ArchTable, confidence: float = 0.95) -> pd.DataFrame:
    """``analysis.budget.network_table`` from aggregates (names: label, else the stored
    placement name)."""
    cols = ["arch_id", "name", "family", "label", "macs", "params", "latency_ms", "n_seeds",
            "mean", "ci_low", "ci_high"]
    archs = table.archs
    if archs.empty:
        return pd.DataFrame(columns=cols)
    n, mean, std = _row_stats(table.values)
    out = archs.reindex(columns=["family", "label", "macs", "params", "latency_ms"]).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = t_interval(mean, std, n, confidence, metrics.bounds(table.metric))
    out["n_seeds"], out["mean"], out["ci_low"], out["ci_high"] = n, mean, low, high
    names = archs["name"] if "name" in archs else pd.Series(None, index=archs.index)
    out["name"] = [network_name(lbl, a) if isinstance(lbl, str) and lbl
                   and not HASH_LABEL.fullmatch(lbl) else (nm if isinstance(nm, str) else a[:12])
                   for lbl, a, nm in zip(out["label"].to_numpy(dtype=object),
                                         out.index.to_numpy(dtype=object),
                                         names.to_numpy(dtype=object), strict=True)]
    out.index.name = "arch_id"
    out = out.reset_index().sort_values("mean", ascending=not higher_is_better(table.metric),
                                        kind="stable")
    return out[cols].reset_index(drop=True)


def at_budget(table: ArchTable, *, confidence: float = 0.95, **budget: float) -> BudgetAnswer:
    """``analysis.budget.at_budget`` from aggregates (``macs=``, ``params=`` or
    ``latency_ms=``)."""
    return answer_at_budget(network_table(table, confidence), seed_long(table),
                            metric=table.metric, confidence=confidence, **budget)


def verdict(table: ArchTable, *, mode: str | None = None, tolerance: float = 0.01,
            summary: pd.DataFrame | None = None) -> dict[str, Any]:
    """``analysis.summary.verdict`` from aggregates (``summary``: this table's
    ``arch_summary`` when the caller has it already)."""
    mode = mode or metrics.direction(table.metric)
    fam = compare(table, "family", mode=mode)
    bt = None
    if {"bottom-heavy", "top-heavy"} <= set(fam["group"]):
        two = table.subset(table.archs["family"].isin(["bottom-heavy", "top-heavy"]))
        bt = compare(two, "family", reference="top-heavy", mode=mode)
    if summary is None:
        summary = arch_summary(table, mode=mode)
    return verdict_of(fam, summary, bt, baselines(table), table.metric,
                      mode=mode, tolerance=tolerance)


def marginal_effects(table: ArchTable, fields: pd.DataFrame) -> pd.DataFrame:
    """``analysis.stats.marginal_effects`` from aggregates: ``fields`` holds every network's
    flattened spec (``analysis.placements.spec_fields``), indexed by arch_id."""
    cols = [c for c in fields.columns if c.endswith(".kind")]
    empty = pd.DataFrame(columns=["position", "kind", "n", "mean", "delta", "sem", "gmacs",
                                  "delta_gmacs"])
    if table.archs.empty or not cols:
        return empty
    finite = np.isfinite(table.values)
    per = pd.DataFrame({"n": finite.sum(axis=1),
                        "s1": np.where(finite, table.values, 0.0).sum(axis=1),
                        "s2": np.where(finite, table.values ** 2, 0.0).sum(axis=1)},
                       index=table.archs.index)
    per["g1"] = per["n"] * table.archs["gmacs"].to_numpy(dtype=float)
    per = per.join(fields.reindex(per.index)[cols])
    n_all = per["n"].sum()
    overall, overall_gmacs = per["s1"].sum() / n_all, per["g1"].sum() / n_all
    parts = []
    for col in cols:
        g = per.groupby(col)[["n", "s1", "s2", "g1"]].sum()
        g = g[g["n"] > 0]
        mean = g["s1"] / g["n"]
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (g["s2"] - g["n"] * mean ** 2) / (g["n"] - 1)
            sem = np.sqrt(var.clip(lower=0).where(g["n"] > 1)) / np.sqrt(g["n"])
        parts.append(pd.DataFrame({
            "position": col.removesuffix(".kind"), "kind": g.index.astype(str),
            "n": g["n"].to_numpy(), "mean": mean.to_numpy(), "sem": sem.to_numpy(),
            "gmacs": (g["g1"] / g["n"]).to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    out["delta"] = out["mean"] - overall
    out["delta_gmacs"] = out["gmacs"] - overall_gmacs
    return out


def declared_contrasts(db: Any, study: str, contrasts: list[str], metric: str, *,
                       mode: str | None = None,
                       confidence: float = metrics.CONFIDENCE) -> pd.DataFrame:
    """``analysis.contrasts.declared_contrasts`` with the (label, seed) means grouped in SQL."""
    from analysis.aggregates import label_values
    from search.results.contrasts import COLUMNS, Groups, evaluate

    if not contrasts:
        return pd.DataFrame(columns=list(COLUMNS))
    values, pairs = label_values(db, study, metric)
    rows = evaluate(list(contrasts), values, Groups.of(pairs),
                    mode or metrics.direction(metric), confidence)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def plotted(frame: pd.DataFrame, limit: int = 5000, keep: Any = None) -> pd.DataFrame:
    """At most about ``limit`` rows of a best-first table for a plot: every row of ``keep``
    (e.g. the Pareto front), the best half of ``limit``, and an even sample of the rest."""
    if len(frame) <= limit:
        return frame
    mask = np.zeros(len(frame), dtype=bool)
    if keep is not None:
        mask |= np.asarray(keep, dtype=bool)
    mask[: limit // 2] = True
    step = max(1, (len(frame) - limit // 2) // (limit - limit // 2))
    mask[limit // 2::step] = True
    return frame[mask]
