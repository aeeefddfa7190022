"""A study's declared contrasts over its trials: paired differences, t intervals, Holm.

A study declares its contrasts in its config before it runs (``study.contrasts``, grammar in
``search.results.contrasts``: ``"A - B"`` or ``"each vs C"`` over network labels and families). Each
comparison is paired over the seeds both groups completed (a group's value at a seed is the
mean over its networks, counted only where every one of them completed), with a Student-t
interval of the mean difference, the paired t-test's p adjusted by Holm over every comparison
of the study, and the exact Wilcoxon p with its floor: with n seeds the smallest two-sided p
the signed-rank test can give is 2 / 2^n (0.25 at 3 seeds, 0.0625 at 5), so below 6 seeds it
can never reach 0.05 — read the t-test and the interval there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from analysis.stats import completed
from search.results import metrics
from search.results.contrasts import COLUMNS, Groups, evaluate, floor_note


def study_contrasts(config: Mapping[str, Any] | None) -> list[str]:
    """The contrasts declared in a stored study config (empty when none)."""
    study = (config or {}).get("study")
    declared = study.get("contrasts") if isinstance(study, Mapping) else None
    return [str(c) for c in declared] if isinstance(declared, list | tuple) else []


def groups_of(df: pd.DataFrame) -> Groups:
    """The networks (labels) and families a study's trials belong to, as designed."""
    if "label" not in df:
        return Groups({})
    family = df["design_family"] if "design_family" in df else pd.Series(None, index=df.index)
    return Groups.of(zip(df["label"], family, strict=True))


def declared_contrasts(df: pd.DataFrame, contrasts: Sequence[str],
                       metric: str = metrics.VAL_ACC1, *, mode: str | None = None,
                       confidence: float = metrics.CONFIDENCE) -> pd.DataFrame:
    """One row per comparison of the declared ``contrasts`` on ``metric`` (COMPLETE trials).

    Columns (``search.results.contrasts.COLUMNS``): ``contrast`` (as declared), ``a``, ``b``,
    ``n_pairs`` (shared seeds), ``mean_a``, ``mean_b``, ``delta`` (mean of a - b over them),
    ``ci_low``/``ci_high`` and ``ci_method`` (Student-t), ``p_t`` (paired t), ``p_holm`` (Holm
    over the study's comparisons), ``p_wilcoxon``, ``wilcoxon_floor`` (2 / 2^n),
    ``favours`` (the group the difference favours in the metric's direction) and ``note``.
    """
    mode = mode or metrics.direction(metric)
    data = completed(df, metric)
    if not contrasts:
        return pd.DataFrame(columns=list(COLUMNS))
    values = {}
    if not data.empty and "label" in data:
        for label, seed, value in zip(data["label"], data["seed"], data[metric], strict=True):
            if isinstance(label, str):
                values[(label, int(seed))] = float(value)
    rows = evaluate(list(contrasts), values, groups_of(df), mode, confidence)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def wilcoxon_note(table: pd.DataFrame) -> str:
    """Where the Wilcoxon floor bites, one sentence saying so (empty when it does not)."""
    return floor_note(table["n_pairs"]) if "n_pairs" in table else ""
