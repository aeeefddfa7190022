"""The study at a glance: best network per family, the bottom- vs top-heavy verdict, budget used.

These answer the overview's question — which placement wins, at what cost, how sure are we —
as small frames and dicts; the dashboard only lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis.checks import baselines
from analysis.stats import arch_summary, compare
from search.results import metrics


def best_per_group(df: pd.DataFrame, metric: str = metrics.VAL_ACC1, by: str = "family", *,
                   mode: str | None = None) -> pd.DataFrame:
    """The best arch (by mean over its seeds, in the metric's direction) of each group, with
    its CI, cost, chance, train-val gap and flags; best group first."""
    mode = mode or metrics.direction(metric)
    return _best_rows(arch_summary(df, metric, mode=mode), by, mode)


def _best_rows(summary: pd.DataFrame, by: str, mode: str) -> pd.DataFrame:
    """``best_per_group`` of an ``arch_summary`` already computed."""
    if summary.empty or by not in summary:
        return summary
    grouped = summary.groupby(by, sort=False)["mean"]
    best = summary.loc[grouped.idxmax() if mode == metrics.MAX else grouped.idxmin()]
    best = best.sort_values("mean", ascending=mode == metrics.MIN, kind="stable")
    cols = [by, "label", "arch_id", "mean", "ci_low", "ci_high", "n", "gmacs", "params",
            "latency_ms", "chance", "above_chance", "train_val_gap", "flags"]
    return best[[c for c in cols if c in best]].reset_index(drop=True)


def fmt_macs(gmacs: float) -> str:
    """``40.7 GMACs`` / ``19.8 MMACs`` / ``350 kMACs``: the unit that keeps 3 digits readable."""
    if not math.isfinite(gmacs):
        return "? MACs"
    for scale, unit in ((1.0, "GMACs"), (1e-3, "MMACs"), (1e-6, "kMACs")):
        if abs(gmacs) >= scale:
            return f"{gmacs / scale:.3g} {unit}"
    return f"{gmacs * 1e9:.3g} MACs"


def _fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "no p-value"
    return f"p = {p:.3g}" if p >= 1e-4 else "p < 1e-4"


def _ci_text(row: Mapping[str, Any]) -> str:
    if not math.isfinite(row["ci_low"]):
        return "no interval"
    return f"95% CI {row['ci_low']:.4f}–{row['ci_high']:.4f}"


def baseline_sentence(base: Mapping[str, Any] | pd.DataFrame) -> str:
    """``Baselines: chance 0.250 (1/classes), majority class 0.312 (recorded).`` from
    ``analysis.checks.baselines`` (or the trials to compute them from)."""
    base = baselines(base) if isinstance(base, pd.DataFrame) else base
    chance = (f"chance {base['chance']:.3f} ({base['chance_source']})"
              if math.isfinite(base["chance"]) else "chance unknown")
    majority = (f"majority class {base['majority']:.3f}" if math.isfinite(base["majority"])
                else "majority class not recorded for this study")
    return f"Baselines: {chance}, {majority}."


def _flag_sentence(summary: pd.DataFrame) -> str | None:
    if summary.empty:
        return None
    under = int((summary["n_undertrained"] > 0).sum())
    memo = int(summary["memorising"].fillna(False).astype(bool).sum())
    at_chance = int(summary["above_chance"].map(lambda v: v is False).sum())
    parts = []
    if at_chance:
        parts.append(f"{at_chance} network(s) have an interval that includes chance")
    if under:
        parts.append(f"{under} did not plateau (undertrained)")
    if memo:
        parts.append(f"{memo} memorise (train–val gap above {metrics.MEMORISING_GAP:g})")
    return ("Flags: " + "; ".join(parts) + " — see the tables.") if parts else None


def verdict(df: pd.DataFrame, metric: str = metrics.VAL_ACC1, *, mode: str | None = None,
            tolerance: float = 0.01) -> dict[str, Any]:
    """Headline facts: the best family and arch, and bottom-heavy vs top-heavy.

    "Best" follows the metric's direction (``mode``; None: from its name), so with ``val/loss``
    the lowest loss wins. Returns a dict with ``winner`` (row of ``compare`` as dict),
    ``best_arch`` (row of ``best_per_group``), ``cheapest_near_best`` (the cheapest arch within
    ``tolerance`` of the best, when it is another), ``bottom_vs_top`` (dict with ``delta``,
    ``p``, ``test``, ``better``, or None when the study lacks one of them), ``mode`` and
    ``sentences`` (plain-language lines, with the baselines and flags).
    """
    mode = mode or metrics.direction(metric)
    table = compare(df, by="family", metric=metric, mode=mode)
    bt = None
    if {"bottom-heavy", "top-heavy"} <= set(table["group"]):
        bt = compare(df[df["family"].isin(["bottom-heavy", "top-heavy"])], by="family",
                     metric=metric, reference="top-heavy", mode=mode)
    return verdict_of(table, arch_summary(df, metric, mode=mode), bt, baselines(df), metric,
                      mode=mode, tolerance=tolerance)


def verdict_of(table: pd.DataFrame, summary: pd.DataFrame, bt: pd.DataFrame | None,
               base: Mapping[str, Any], metric: str, *, mode: str,
               tolerance: float = 0.01) -> dict[str, Any]:
    """``verdict`` from its parts, however computed (trial rows or SQL aggregates): the family
    ``compare`` table, the ``arch_summary``, the bottom- vs top-heavy ``compare`` (reference
    top-heavy; None when the study lacks one) and the ``baselines``."""
    sign = metrics.sign(mode)
    out: dict[str, Any] = {"table": table, "winner": None, "best_arch": None, "mode": mode,
                           "cheapest_near_best": None, "bottom_vs_top": None, "sentences": []}
    if table.empty:
        return out
    winner = table.loc[(table["mean"] * sign).idxmax()].to_dict()
    out["winner"] = winner
    chance_note = (f" — an interval that includes chance ({winner['chance']:.3f})"
                   if winner["above_chance"] is False else "")
    sentences = [
        f"**{winner['group']}** placements score the best mean {metric} "
        f"({metrics.wording(mode)}): {winner['mean']:.4f} ({_ci_text(winner)}, "
        f"{winner['n']} trials over {winner['n_seeds']} seeds) at {fmt_macs(winner['gmacs'])} "
        f"on average{chance_note}.",
        baseline_sentence(base),
    ]
    best = _best_rows(summary, "family", mode)
    if not best.empty:
        top = best.iloc[0].to_dict()
        out["best_arch"] = top
        name = top.get("label") or top["arch_id"]
        sentences.append(f"The best single network is **{name}** ({top['family']}): "
                         f"{top['mean']:.4f} at {fmt_macs(top['gmacs'])}.")
        near = summary[sign * summary["mean"] >= sign * top["mean"] - tolerance]
        cheap = near.loc[near["gmacs"].idxmin()].to_dict()
        if cheap["arch_id"] != top["arch_id"]:
            out["cheapest_near_best"] = cheap
            sentences.append(
                f"Within {tolerance:g} of it, the cheapest is **{cheap.get('label') or cheap['arch_id']}** "
                f"({cheap['family']}): {cheap['mean']:.4f} at {fmt_macs(cheap['gmacs'])} "
                f"({cheap['gmacs'] / top['gmacs']:.0%} of the cost).")
    if bt is not None:
        row = bt.set_index("group").loc["bottom-heavy"]
        top_row = bt.set_index("group").loc["top-heavy"]
        paired = int(row["n_pairs"]) >= 2 and math.isfinite(row["p_paired_t"])
        p = row["p_paired_t"] if paired else row["p_welch"]
        test = (f"paired t-test over {int(row['n_pairs'])} seeds" if paired
                else f"Welch t-test, {int(row['n_pairs'])} paired seeds"
                if int(row["n_pairs"]) < 2 else "differences identical across seeds")
        better = "bottom-heavy" if sign * row["delta"] > 0 else "top-heavy"
        out["bottom_vs_top"] = {"delta": float(row["delta"]), "p": float(p), "test": test,
                                "better": better, "gmacs_bottom": float(row["gmacs"]),
                                "gmacs_top": float(top_row["gmacs"]),
                                "p_wilcoxon": float(row["p_wilcoxon"])}
        sentences.append(
            f"Bottom-heavy vs top-heavy: **{better}** by {abs(row['delta']):.4f} {metric} "
            f"({test}, {_fmt_p(p)}); mean cost {fmt_macs(row['gmacs'])} vs "
            f"{fmt_macs(top_row['gmacs'])}.")
    flags = _flag_sentence(summary)
    if flags:
        sentences.append(flags)
    if table["n"].sum() and table["n_seeds"].max() < 2:
        sentences.append("Only one seed per group: the intervals are over trials, not seeds — "
                         "run more seeds before trusting small differences.")
    out["sentences"] = sentences
    return out


def _find(config: Mapping[str, Any], key: str) -> Any:
    """First value of ``key`` anywhere in a nested config."""
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, Mapping):
            found = _find(value, key)
            if found is not None:
                return found
    return None


def budget(df: pd.DataFrame, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Compute used so far: finished trials, trial-hours, GMAC-epochs; the plan when known."""
    finished = df[df["state"].isin(["COMPLETE", "PRUNED", "FAILED"])]
    seconds = float(finished["duration_s"].fillna(0).sum()) if "duration_s" in df else 0.0
    return budget_of(len(finished), int((df["state"] == "RUNNING").sum()), seconds,
                     float(finished["gmacs"].sum()) if "gmacs" in df else math.nan, config)


def budget_of(finished: int, running: int, seconds: float, gmacs_total: float,
              config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``budget`` from counts and sums (however computed: trial rows or SQL)."""
    config = config or {}
    planned = _find(config, "num_trials")
    samples, seeds = _find(config, "num_samples"), _find(config, "seeds")
    if planned is None and samples and isinstance(seeds, list | tuple):
        planned = int(samples) * len(seeds)
    return {"finished": finished, "running": running,
            "planned": int(planned) if planned else None, "trial_hours": seconds / 3600,
            "epochs_per_trial": _find(config, "epochs"), "gmacs_total": gmacs_total}
