"""The protocol's checks on a study's trials: baselines, training flags, informative metrics.

- **Baselines.** Each trial's chance accuracy (``chance_acc``, else 1 / the spec's
  ``num_classes``) and majority-class accuracy of its drawn val set (``majority_acc``; unknown
  on databases before it was recorded). An arm whose interval reaches down to chance is said to
  be indistinguishable from guessing.
- **Flags.** An arm is *undertrained* when one of its trials did not plateau (``plateaued`` is
  False) and *memorising* when its mean final train-val accuracy gap exceeds
  ``search.results.metrics.MEMORISING_GAP`` (the gap is ``train_val_gap``, else train/acc1 - val/acc1).
- **Informative metrics.** A metric offered as a choice has a direction and varies over the
  COMPLETE trials (``val/acc5`` = 1.0 on a 4-class task does not).

Columns that older databases lack are handled: the checks say "unknown" rather than fail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.loading import metric_names
from search.results import metrics

FLAG_COLUMNS: tuple[str, ...] = ("chance", "majority", "above_chance", "train_val_gap",
                                 "n_undertrained", "memorising", "flags")


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df:
        return pd.to_numeric(df[name], errors="coerce").astype(float)
    return pd.Series(np.nan, index=df.index, dtype=float)


def trial_chance(df: pd.DataFrame) -> pd.Series:
    """Chance accuracy of each trial: ``chance_acc``, else 1 / ``num_classes`` of its spec."""
    from_spec = 1.0 / _column(df, "num_classes").where(lambda n: n > 0)
    return _column(df, metrics.CHANCE_ACC).fillna(from_spec)


def trial_majority(df: pd.DataFrame) -> pd.Series:
    """Majority-class accuracy of each trial's drawn val set (NaN where not recorded)."""
    return _column(df, metrics.MAJORITY_ACC)


def trial_gap(df: pd.DataFrame) -> pd.Series:
    """Final train - val accuracy of each trial: ``train_val_gap``, else from the results."""
    derived = _column(df, metrics.TRAIN_ACC1) - _column(df, metrics.VAL_ACC1)
    return _column(df, metrics.TRAIN_VAL_GAP).fillna(derived)


def trial_undertrained(df: pd.DataFrame) -> pd.Series:
    """True where a trial's curve did not plateau; False where it did or is unknown."""
    if metrics.PLATEAUED not in df:
        return pd.Series(False, index=df.index)
    return df[metrics.PLATEAUED].map(lambda v: not pd.isna(v) and not bool(v)).astype(bool)


def baselines(df: pd.DataFrame) -> dict[str, Any]:
    """The study's chance and majority-class accuracy (means over its COMPLETE trials).

    Returns ``chance``, ``majority`` (NaN when unknown) and ``chance_source``:
    ``"recorded"`` (per trial) or ``"1/classes"`` (from the spec).
    """
    data = df[df["state"] == "COMPLETE"] if "state" in df else df
    data = data if len(data) else df
    chance = trial_chance(data)
    recorded = metrics.CHANCE_ACC in data and data[metrics.CHANCE_ACC].notna().any()
    return {"chance": float(chance.mean()) if chance.notna().any() else math.nan,
            "majority": float(trial_majority(data).mean())
            if trial_majority(data).notna().any() else math.nan,
            "chance_source": "recorded" if recorded else "1/classes"}


def group_checks(data: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group of ``by``: chance, majority, mean train-val gap, trials that did not plateau,
    and whether the group memorises."""
    frame = pd.DataFrame({by: data[by], "chance": trial_chance(data),
                          "majority": trial_majority(data), "train_val_gap": trial_gap(data),
                          "n_undertrained": trial_undertrained(data).astype(int)},
                         index=data.index)
    out = frame.groupby(by, sort=False).agg(
        {"chance": "mean", "majority": "mean", "train_val_gap": "mean", "n_undertrained": "sum"})
    out["memorising"] = out["train_val_gap"].map(metrics.is_memorising)
    return out


def add_flags(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``above_chance`` (accuracy metrics: the interval's low end above chance; None when there
    is no interval) and a readable ``flags`` column, on a table with ``ci_low``, ``chance``,
    ``train_val_gap``, ``n_undertrained``, ``memorising``."""
    out = table.copy()
    low, chance = (out["ci_low"].to_numpy(dtype=float, na_value=np.nan),
                   out["chance"].to_numpy(dtype=float, na_value=np.nan))
    known = np.isfinite(low) & np.isfinite(chance) & metrics.is_accuracy(metric)
    above = low > chance
    out["above_chance"] = pd.Series(np.where(known, above, None), index=out.index, dtype=object)
    undertrained = out["n_undertrained"].fillna(0).astype(int).to_numpy()
    memorising = out["memorising"].fillna(False).astype(bool).to_numpy()
    gap = out["train_val_gap"].to_numpy(dtype=float, na_value=np.nan)
    flags = []
    for includes, n_under, mem, g in zip(known & ~above, undertrained, memorising, gap,
                                         strict=True):
        parts = ["interval includes chance"] if includes else []
        if n_under:
            parts.append(f"undertrained ({n_under} not plateaued)")
        if mem:
            parts.append(f"memorising (train-val gap {g:.2f})")
        flags.append(", ".join(parts))
    out["flags"] = flags
    return out


def informative_metrics(df: pd.DataFrame, declared: Mapping[str, str] | None = None) -> list[str]:
    """Final metrics worth ranking by: a known (or declared) direction, and not constant over
    the COMPLETE trials. Preferred metrics (``val/acc1`` first) lead."""
    data = df[df["state"] == "COMPLETE"] if "state" in df else df
    names = [m for m in metric_names(df) if metrics.has_direction(m, declared)
             and not metrics.is_constant(data[m].to_numpy(dtype=float, na_value=np.nan))]
    preferred = [m for m in metrics.PREFERRED if m in names]
    return preferred + [m for m in names if m not in preferred]


def default_metric(df: pd.DataFrame, declared: Mapping[str, str] | None = None) -> str:
    """The metric analysis ranks by when none is given: the first informative one."""
    names = informative_metrics(df, declared)
    return names[0] if names else metrics.VAL_ACC1
