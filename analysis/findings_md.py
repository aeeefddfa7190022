"""Markdown of ``python -m analysis.findings``: effect tables, declared contrasts, the front.

Pure formatting of the frames ``analysis`` computes (``compare``, ``declared_contrasts``,
``credible_front``); no statistics are made here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.contrasts import wilcoxon_note
from search.results import metrics

METRIC = metrics.VAL_ACC1

BASELINE_KEY = "grey dashed: chance; dark dotted: majority class of the drawn val set"
CAPTIONS = {
    "pareto": (f"{METRIC} against GMACs per clip, one point per network: the mean over its seeds "
               f"with a Student-t 95% CI as error bars; black dotted, the Pareto front of the "
               f"means; {BASELINE_KEY}. The dashboard's *Pareto front* page."),
    "effects": (f"Each arm's mean with its 95% Student-t CI over seeds ({BASELINE_KEY}), beside "
                "its mean cost. The dashboard's forest plot."),
    "lines": ("Mean and 95% Student-t CI over seeds by temporal extent, one line per clip "
              f"length; {BASELINE_KEY}."),
    "families": ("Each placement family's mean with its 95% Student-t CI over seeds, beside its "
                 f"mean cost (the dashboard's *Overview*); {BASELINE_KEY}."),
    "curves": (f"Learning curves: each arm's mean {METRIC} by epoch with a 95% CI over its "
               "trials, every trial trained its full budget; the legend counts the trials whose "
               "validation curve plateaued (the protocol's convergence check, its rule under "
               "*Convergence* below: a flat end means converged, a rising one undertrained); "
               f"{BASELINE_KEY}."),
    "curves_stopped": (f"Learning curves: each arm's mean {METRIC} by epoch with a 95% CI over "
                       "its trials; the plateau stopper ended trials early, and a stopped trial "
                       "keeps its last value (the result it reported) at the later epochs; the "
                       "legend counts the trials whose validation curve plateaued; "
                       f"{BASELINE_KEY}."),
    "knob": (f"Left: the declared differences (A − B) of {METRIC} with their paired 95% CI "
             "against the knob, one point per variant study; black, zero (no difference). "
             f"Right: each arm's {METRIC} against the knob; {BASELINE_KEY}."),
}


def fmt(value: Any, spec: str = ".3f") -> str:
    """A number, or ``–`` when missing."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return format(x, spec) if math.isfinite(x) else "–"


def fmt_p(value: Any) -> str:
    """A p-value to two digits (``<1e-4`` below)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(x):
        return "–"
    return "<1e-4" if x < 1e-4 else f"{x:.2g}"


def fmt_ci(low: Any, high: Any, spec: str = ".3f") -> str:
    """``[low, high]``, or ``–`` without an interval."""
    if not (math.isfinite(float(low)) and math.isfinite(float(high))):
        return "–"
    return f"[{format(float(low), spec)}, {format(float(high), spec)}]"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]],
             right: Sequence[bool]) -> str:
    """A GitHub markdown table (cells must not contain ``|``)."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _chance_cell(row: pd.Series) -> str:
    above = row.get("above_chance")
    return "above" if above is True else "includes chance" if above is False else "–"


def baseline_text(table: pd.DataFrame) -> str:
    """``chance 0.250, majority class 0.312`` from a ``compare`` table."""
    chance = table["chance"].mean() if "chance" in table else math.nan
    majority = table["majority"].mean() if "majority" in table else math.nan
    return (f"chance {fmt(chance)}, majority class "
            + (fmt(majority) if math.isfinite(majority) else "not recorded"))


def effect_markdown(table: pd.DataFrame, arms: Sequence[str], metric: str = METRIC) -> str:
    """An ``arm_table`` as markdown: arm, trials, seeds, mean, CI, vs chance, cost, flags.

    No test against the best arm: that comparison is chosen after seeing the data; the study's
    declared contrasts are reported apart, Holm-adjusted.
    """
    cols = [c for c in arms if c in table] or ["group"]
    header = [*cols, "trials", "seeds", f"mean {metric}", "95% CI", "vs chance", "GMACs",
              "train−val gap", "flags"]
    rows = [[*(str(r[c]) for c in cols), str(int(r["n"])), str(int(r["n_seeds"])),
             fmt(r["mean"]), fmt_ci(r["ci_low"], r["ci_high"]), _chance_cell(r),
             fmt(r["gmacs"], ".4g"), fmt(r["train_val_gap"], ".2f"), str(r["flags"] or "")]
            for _, r in table.iterrows()]
    right = [False] * len(cols) + [True] * (len(header) - len(cols) - 1) + [False]
    text = md_table(header, rows, right)
    notes = []
    if (table["ci_unit"] == "trial").any():
        notes.append("Rows with one seed: mean and CI are over trials, not seeds — too few "
                     "seeds to trust small differences.")
    return "\n\n".join([text, *notes])


def contrast_markdown(table: pd.DataFrame, metric: str = METRIC) -> str:
    """A ``declared_contrasts`` table as markdown, with the Wilcoxon floor where it bites."""
    header = ["contrast", "A", "B", f"Δ {metric} (A − B)", "95% CI of Δ", "seeds", "p paired t",
              "p Holm", "p Wilcoxon", "favours", "note"]
    rows = [[str(r["contrast"]), str(r["a"]), str(r["b"]), fmt(r["delta"], "+.3f"),
             fmt_ci(r["ci_low"], r["ci_high"], "+.3f"), str(int(r["n_pairs"])),
             fmt_p(r["p_t"]), fmt_p(r["p_holm"]), fmt_p(r["p_wilcoxon"]), str(r["favours"]),
             str(r["note"])] for _, r in table.iterrows()]
    text = md_table(header, rows, [False] * 3 + [True] * 6 + [False] * 2)
    note = wilcoxon_note(table)
    return "\n\n".join([text, note] if note else [text])


def front_markdown(front: pd.DataFrame, metric: str = METRIC) -> str:
    """The credible Pareto front (``credible_front``) as markdown, cheapest first."""
    if front.empty:
        return ("No network's interval lies above chance: there is no trade-off to read "
                "(train longer, or on more clips).")
    rows = [[str(r.get("label") or str(r["arch_id"])[:8]), str(r.get("family", "")),
             fmt(r["mean"]), fmt_ci(r["ci_low"], r["ci_high"]), fmt(r["gmacs"], ".4g")]
            for _, r in front.sort_values("gmacs").iterrows()]
    return md_table(["network", "family", f"mean {metric}", "95% CI", "GMACs"], rows,
                    [False, False, True, True, True])
