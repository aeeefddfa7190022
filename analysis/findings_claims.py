"""Verdicts of ``docs/findings.md``: does a published claim hold, per task; does a knob cross over.

A claim is decided by one row of its study's declared contrasts (``analysis.contrasts``: the
paired difference over seeds, its Student-t 95% interval and the Holm-adjusted p within the
study):

- **holds**: the interval excludes 0, Holm p < 0.05, and the difference favours the group the
  claim says wins;
- **does not hold**: the same, but it favours the other group;
- **undecided**: the interval includes 0, or Holm p ≥ 0.05, or fewer than 2 paired seeds (a
  null result is not evidence of no difference: the interval says how large one could be).

Every sentence carries the difference, its interval and the number of seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.findings_catalogue import Claim, Knob
from analysis.findings_md import fmt, fmt_ci, fmt_p, md_table
from search.results.contrasts import ContrastError, parse

ALPHA = 0.05
HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"


@dataclass(frozen=True)
class Verdict:
    """A claim on one task (study or variant), as its declared contrast decides it."""

    claim: Claim
    study: str  # the study (variant) name
    task: str  # the data task it ran on
    verdict: str  # HOLDS, FAILS or UNDECIDED
    why: str  # the reason when undecided
    comparison: str  # "A − B" as the table orients it
    delta: float
    ci_low: float
    ci_high: float
    n_pairs: int
    p_holm: float
    plateaued: tuple[int, int] | None = None  # (plateaued, COMPLETE) trials of the study

    def converged_text(self) -> str:
        """``45 of 88`` trials of the study plateaued, or ``not recorded``."""
        return "not recorded" if self.plateaued is None else \
            f"{self.plateaued[0]} of {self.plateaued[1]}"

    def sentence(self) -> str:
        """The claim, its verdict, and the numbers behind it, in one sentence."""
        numbers = (f"{self.comparison} = {fmt(self.delta, '+.3f')} "
                   f"{fmt_ci(self.ci_low, self.ci_high, '+.3f')} {self.claim.metric}, "
                   f"{self.n_pairs} seeds, Holm p {fmt_p(self.p_holm)}")
        if self.plateaued is not None:
            numbers += f"; {self.converged_text()} trials of the study plateaued"
        tail = f" ({self.why})" if self.verdict == UNDECIDED and self.why else ""
        return (f"{self.claim.text}: **{self.verdict}** on `{self.task}` (`{self.study}`): "
                f"{numbers}{tail}.")


def _row(table: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    """The contrast row comparing ``a`` and ``b`` (either orientation), or None."""
    if table is None or table.empty:
        return None
    match = table[((table["a"] == a) & (table["b"] == b)) | ((table["a"] == b) & (table["b"] == a))]
    return None if match.empty else match.iloc[0]


def is_declared(claim: Claim, declared: Sequence[str]) -> bool:
    """Whether a study's declared contrasts compare the claim's two groups (``A - B`` either
    way round, or ``each vs`` one of them): a variant that declares other contrasts (a control
    arm's) does not speak to the claim and gets no verdict on it."""
    pair = {claim.winner, claim.loser}
    for text in declared:
        try:
            contrast = parse(text)
        except ContrastError:
            continue
        if contrast.is_each and contrast.second in pair:
            return True
        if {contrast.first, contrast.second} == pair:
            return True
    return False


def decide(claim: Claim, table: pd.DataFrame, study: str, task: str) -> Verdict:
    """The verdict of ``claim`` from a study's ``declared_contrasts`` table on its metric."""
    row = _row(table, claim.winner, claim.loser)
    if row is None:
        return Verdict(claim, study, task, UNDECIDED, f"{claim.winner} vs {claim.loser} has no "
                       "completed paired seeds", f"{claim.winner} − {claim.loser}", math.nan,
                       math.nan, math.nan, 0, math.nan)
    delta, low, high = (float(row[k]) for k in ("delta", "ci_low", "ci_high"))
    n, p = int(row["n_pairs"]), float(row["p_holm"])
    excludes = math.isfinite(low) and math.isfinite(high) and (low > 0 or high < 0)
    if n < 2:
        verdict, why = UNDECIDED, "fewer than 2 paired seeds"
    elif not excludes:
        verdict, why = UNDECIDED, "the interval includes 0"
    elif not (math.isfinite(p) and p < ALPHA):
        verdict, why = UNDECIDED, f"Holm p = {fmt_p(p)} ≥ {ALPHA}"
    else:
        verdict, why = (HOLDS if str(row["favours"]) == claim.winner else FAILS), ""
    return Verdict(claim, study, task, verdict, why, f"{row['a']} − {row['b']}", delta, low,
                   high, n, p)


def summary_markdown(verdicts: Sequence[Verdict], not_run: Sequence[str],
                     others: Sequence[str] = ()) -> str:
    """The summary table: per claim and task, the verdict with the comparison behind it.

    ``others``: renamed runs in the database (``study.name=...``), read in their own sections
    but not summarised beside the shipped studies."""
    rows = [[v.claim.text, f"`{v.task}` (`{v.study}`)", f"{v.comparison} ({v.claim.metric})",
             fmt(v.delta, "+.3f"), fmt_ci(v.ci_low, v.ci_high, "+.3f"), str(v.n_pairs),
             fmt_p(v.p_holm), v.converged_text(),
             f"**{v.verdict}**" + (f": {v.why}" if v.why else "")]
            for v in verdicts]
    parts = []
    if rows:
        parts.append(md_table(["claim (source)", "task (study)", "comparison", "Δ",
                               "95% CI of Δ", "seeds", "p Holm", "plateaued", "here"], rows,
                              [False, False, False, True, True, True, True, True, False]))
    else:
        parts.append("No claim can be decided yet: no study with declared claims has "
                     "completed trials in this database.")
    parts.append("*Holds*: the paired 95% interval of Δ excludes 0 and the Holm-adjusted p "
                 f"(within the study) is below {ALPHA}, in the claim's direction; *does not "
                 "hold*: the same in the other direction; *undecided*: otherwise. All on the "
                 "built-in synthetic tasks and tiny ResNets: what vidarch measures on its own "
                 "data, not what holds on Kinetics. *Plateaued*: the study's COMPLETE trials "
                 "whose validation curve had flattened by their last epoch (the plateau rule, "
                 "*Convergence* in each study's section); where few did, the verdict is read at "
                 "the budget, not at convergence, and could still move.")
    if not_run:
        parts.append("Not yet run (no trials in this database): "
                     + ", ".join(f"`{n}`" for n in not_run) + ".")
    if others:
        parts.append("Other runs in this database, each read in its own section below and not "
                     "summarised here: " + ", ".join(f"`{n}`" for n in others) + ".")
    return "\n\n".join(parts)


def crossover_text(points: pd.DataFrame, knob: Knob, a: str, b: str) -> str:
    """Plain words on one knob comparison: a crossover or not, and what that implies.

    ``points``: one row per knob value (``knob``, ``delta``, ``ci_low``, ``ci_high``,
    ``n_pairs``, ``p_holm``) of the difference ``a − b``.
    """
    if points.empty:
        return f"**{a} − {b}:** no knob value has completed paired seeds yet."
    points = points.sort_values("knob")
    cells, ahead, behind, open_ = [], [], [], []
    for _, r in points.iterrows():
        value = _knob_text(r["knob"])
        cells.append(f"{value}: {fmt(r['delta'], '+.3f')} {fmt_ci(r['ci_low'], r['ci_high'], '+.3f')}"
                     f", {int(r['n_pairs'])} seeds, Holm p {fmt_p(r['p_holm'])}")
        decided = float(r["p_holm"]) < ALPHA if math.isfinite(float(r["p_holm"])) else False
        if decided and float(r["ci_low"]) > 0:
            ahead.append(value)
        elif decided and float(r["ci_high"]) < 0:
            behind.append(value)
        else:
            open_.append(value)
    head = f"**{a} − {b}** by {knob.label} (" + "; ".join(cells) + ")."
    if ahead and behind:
        body = (f" **A crossover:** {a} is ahead at {', '.join(ahead)} and {b} at "
                f"{', '.join(behind)}. Where temporal modelling should live depends on the "
                f"data here: {knob.meaning} moves the answer, so neither ordering holds "
                "everywhere and a study that fixes one setting reports only one side.")
    elif ahead or behind:
        lead, where = (a, ahead) if ahead else (b, behind)
        body = (f" **No crossover:** {lead} is ahead wherever the difference is decided "
                f"({', '.join(where)})")
        body += (f"; at {', '.join(open_)} the interval includes 0 or Holm p ≥ {ALPHA}."
                 if open_ else ", at every value tested.")
        other = b if lead == a else a
        body += (f" Over this range, {knob.meaning} does not reverse the ordering: on this "
                 f"task the knob alone does not make {other} the better choice.")
    else:
        body = (" **Undecided at every value:** each interval includes 0 (or Holm p ≥ "
                f"{ALPHA}), so neither a lead nor a crossover can be claimed.")
    return head + body


def _knob_text(value: Any) -> str:
    x = float(value)
    return f"{x:g}"


def orderings_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The Spearman comparisons of every study with its published orderings, one table."""
    if not rows:
        return "No study with a published ordering has completed trials yet."
    body = [[f"`{r['study']}`", r["source"], str(r["n"]), fmt(r["rho"], "+.2f"), fmt_p(r["p"]),
             r["reading"]] for r in rows]
    return md_table(["study", "published ordering (source)", "arms", "Spearman ρ", "p",
                     "reading"], body, [False, False, True, True, True, False])
