"""Tables of ``docs/findings.md``: each study's arm table, its matched compute, what it took.

- ``arm_table``: ``analysis.compare`` by arm, the arm's component columns in front, in the
  canonical order of families and kinds, without compare's after-the-fact tests.
- ``matched_markdown``: how far apart the arms are in GMACs and parameters (the protocol
  matches them within ±5%; the findings' acceptance is ±10%) and the fewest seeds of an arm.
- ``compute_summary`` / ``compute_markdown``: trials by state, trial and training time, span.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from analysis.findings_catalogue import METRIC
from analysis.loading import opened
from analysis.placement import FAMILIES
from analysis.stats import compare, completed
from arch_space import kinds
from search.results.schema import StudyRow, TrialRow

KIND_ORDER = kinds.KIND_ORDER  # kinds, each with its aliases, then mixes (a live view)
STATES = ("COMPLETE", "PRUNED", "FAILED", "RUNNING")
# compare's tests against the best arm: chosen after seeing the data, so not reported here
AFTER_THE_FACT = ("delta", "n_pairs", "p_paired_t", "p_wilcoxon", "p_welch", "reference")
MATCH_TOLERANCE = 0.10  # the findings' acceptance: every arm within ±10% of one MAC target

def _rank(column: str, value: Any) -> tuple[int, Any]:
    """Sort key of an arm component: families and kinds in their canonical order."""
    if column == "family" and value in FAMILIES:
        return (0, FAMILIES.index(value))
    if column == "kind" and value in KIND_ORDER:
        return (0, KIND_ORDER.index(value))
    if column == "init":
        return (0, 0 if value == "scratch" else 1)
    if isinstance(value, int | float | np.integer | np.floating):
        return (0, float(value))
    return (1, str(value))


def arm_table(df: pd.DataFrame, arms: Sequence[str], *, by: str = "arm",
              metric: str = METRIC) -> pd.DataFrame:
    """``compare`` by ``by`` with the arm's component columns in front, in canonical order."""
    table = compare(df, by=by, metric=metric).drop(columns=list(AFTER_THE_FACT))
    if table.empty:
        return table
    cols = [c for c in arms if c != by]
    if cols:
        parts = df.groupby(by, sort=False)[cols].first()
        table = table.merge(parts, left_on="group", right_index=True, how="left")
    if by in arms:
        table[by] = table["group"]
    keys = list(arms) or ["group"]
    order = sorted(range(len(table)), key=lambda i: tuple(
        _rank(c if c != "group" else by, table[c].iloc[i]) for c in keys))
    table = table.iloc[order].reset_index(drop=True)
    return table[[*arms, *[c for c in table.columns if c not in arms]]]


# --- compute ----------------------------------------------------------------------------------


def hms(seconds: float) -> str:
    """``h:mm:ss``, or ``–`` when not finite."""
    if not math.isfinite(seconds):
        return "–"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def resources(db: Any, study: str) -> list[dict[str, Any]]:
    """Distinct per-trial resource requests of a study (cpus, gpus, ray address)."""
    with opened(db) as engine, engine.connect() as conn:
        rows = conn.execute(select(TrialRow.resources_json).distinct()
                            .join(StudyRow, StudyRow.id == TrialRow.study_id)
                            .where(StudyRow.name == study)).scalars().all()
    out = []
    for text in sorted(r for r in rows if r):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and value not in out:
            out.append(value)
    return out


def compute_summary(df: pd.DataFrame, epoch_times: pd.Series,
                    resources: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """What a study took: trials by state, archs, seeds, trial and training time, span."""
    states = df["state"].value_counts()
    finished = df[df["finished_at"].notna()]
    span = math.nan
    first = df["started_at"].min() if len(df) else pd.NaT
    last = finished["finished_at"].max() if len(finished) else pd.NaT
    if pd.notna(first) and pd.notna(last):
        span = (last - first).total_seconds()
    trial_s = float(finished["duration_s"].fillna(0).sum())
    return {
        "trials": len(df), **{s: int(states.get(s, 0)) for s in STATES},
        "archs": int(df["arch_id"].nunique()),
        "seeds": sorted(int(s) for s in df["seed"].dropna().unique()),
        "trial_s": trial_s, "train_s": float(epoch_times.sum()), "epochs": len(epoch_times),
        "first_start": first, "last_finish": last, "span_s": span,
        "gpus": sorted({float(r.get("gpus") or 0) for r in resources if "cpus" in r}),
        "cpus": sorted({float(r["cpus"] or 0) for r in resources if "cpus" in r}),
    }


def _num(value: float) -> str:
    return f"{value:g}"


def compute_markdown(c: dict[str, Any]) -> str:
    """The compute paragraph of a study block."""
    states = ", ".join(f"{c[s]} {s}" for s in STATES if c[s] or s == "COMPLETE")
    seeds = ", ".join(map(str, c["seeds"]))
    text = (f"**Compute.** {c['trials']} trials ({states}): {c['archs']} networks × seeds "
            f"{{{seeds}}}. Trial time {hms(c['trial_s'])} (Σ finished − started), of which "
            f"training {hms(c['train_s'])} (Σ epoch_time_s over {c['epochs']} epochs).")
    if pd.notna(c["first_start"]):
        same_day = (pd.notna(c["last_finish"])
                    and c["last_finish"].date() == c["first_start"].date())
        end = ("still running" if pd.isna(c["last_finish"]) else
               f"{c['last_finish']:%H:%M:%S}" if same_day else
               f"{c['last_finish']:%Y-%m-%d %H:%M:%S}")
        text += (f" Wall clock {c['first_start']:%Y-%m-%d %H:%M:%S} → {end} UTC "
                 f"({hms(c['span_s'])})")
        if c["span_s"] and math.isfinite(c["span_s"]) and c["span_s"] > 0:
            text += f", {c['trial_s'] / c['span_s']:.1f} trials at a time on average"
        text += "."
    if c["cpus"]:
        text += (f" Each trial asked for {'/'.join(map(_num, c['cpus']))} CPU and "
                 f"{'/'.join(map(_num, c['gpus']))} GPU.")
    return text



def matched_markdown(df: pd.DataFrame, table: pd.DataFrame, config: dict[str, Any]) -> str:
    """How well the arms are matched in cost, and the fewest seeds of an arm, in one sentence.

    The spread is each arm's GMACs (parameters) relative to the median arm; the study's
    ``study.match`` says which of the two was matched.
    """
    data = completed(df, METRIC)
    match = str(((config or {}).get("study") or {}).get("match") or "none")
    matched = {"macs": "gmacs", "params": "params"}.get(match)
    parts = []
    for column, name in (("gmacs", "GMACs"), ("params", "parameters")):
        if column not in data or data[column].dropna().empty or "arm" not in data:
            continue
        per_arm = data.groupby("arm")[column].mean().astype(float)
        target = float(np.median(per_arm))
        if target <= 0:
            continue
        spread = float(np.max(np.abs(per_arm / target - 1)))
        if column == matched:
            within = "within" if spread <= MATCH_TOLERANCE else "**outside**"
            parts.append(f"{name} at most {spread:.1%} from the median arm ({within} ±10%)")
        else:
            parts.append(f"{name} not matched (max/min {per_arm.max() / per_arm.min():.2f}×)")
    seeds = int(table["n_seeds"].min()) if len(table) else 0
    text = f"**Matched compute** (`study.match: {match}`): " + ("; ".join(parts) or "no cost "
                                                                "recorded")
    return text + f". Fewest seeds of an arm: {seeds}."
