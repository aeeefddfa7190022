"""The plateau stopper, measured: each claim read with the stopper on and at the full budget.

A shipped study first run with ``train.plateau_stop: true`` and then rerun with every trial
training its full budget keeps the first run as ``<study>_stopped`` (``<study>_stopped.<label>``
for a variant; ``search.results.renaming``). For every claim both runs decide, the table puts the
two readings side by side: what stopping slow learners early did to the verdict. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.findings_catalogue import METRIC
from analysis.findings_claims import Verdict
from analysis.findings_md import fmt, fmt_ci, fmt_p, md_table
from search.design import variants
from search.design.config import PLATEAU_KEYS
from search.design.resuming import DESIGN_KEYS, EXTENDABLE_KEYS, IDENTITY_KEYS

STOPPED_TAG = "stopped"  # <study>_stopped[.<label>]: the run with the stopper on


def shipped_twin(name: str, study: str) -> str | None:
    """The shipped study that renamed run ``name`` of catalogue study ``study`` was rerun as
    (``bottom_vs_top_data_stopped.n1024`` -> ``bottom_vs_top_data.n1024``), or None when ``name``
    is not a stopped run of ``study``."""
    prefix = f"{study}_{STOPPED_TAG}"
    if name == prefix:
        return study
    if name.startswith(prefix + variants.SEPARATOR):
        return study + name[len(prefix):]
    return None


def same_cells(stopped: Mapping[str, Any], shipped: Mapping[str, Any]) -> bool:
    """Whether two stored configs differ in the stopper only: the same study, data and train
    sections once the plateau settings, the names and what only extends a study are set aside
    (a run whose budget also changed is another comparison)."""
    ignore = {f"train.{k}" for k in PLATEAU_KEYS} | EXTENDABLE_KEYS | IDENTITY_KEYS

    def flat(config: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for section in DESIGN_KEYS:
            for key, value in (config.get(section) or {}).items():
                if f"{section}.{key}" not in ignore:
                    out[f"{section}.{key}"] = value
        return out

    return flat(stopped) == flat(shipped)


def machines_note(stopped_cpus: Sequence[str], full_cpus: Sequence[str],
                  stopped_curves: Mapping[tuple[str, int], Mapping[int, float]],
                  full_curves: Mapping[tuple[str, int], Mapping[int, float]]) -> str:
    """Where the two runs ran and whether their trials are the same trajectories: the CPU
    models (stopped → full budget), and in how many cells (network × seed) the two curves are
    bit-identical at every epoch both ran (up to where the stopper ended the trial)."""
    def cpus(models: Sequence[str]) -> str:
        return " + ".join(sorted(models)) or "CPU not recorded"

    where = (f"{cpus(full_cpus)}, both" if sorted(stopped_cpus) == sorted(full_cpus)
             else f"{cpus(stopped_cpus)} → {cpus(full_cpus)}")
    cells = set(stopped_curves) & set(full_curves)
    same = sum(all(stopped_curves[c][e] == full_curves[c][e]
                   for e in set(stopped_curves[c]) & set(full_curves[c])) for c in cells)
    return f"{where}; identical to the stop in {same} of {len(cells)}"


def _reading(v: Verdict) -> str:
    return (f"{fmt(v.delta, '+.3f')} {fmt_ci(v.ci_low, v.ci_high, '+.3f')}, p {fmt_p(v.p_holm)}: "
            f"**{v.verdict}**")


def stopper_markdown(shipped: Sequence[Verdict], stopped: Mapping[str, Sequence[Verdict]],
                     early: Mapping[str, tuple[int, int]],
                     machines: Mapping[str, str] | None = None) -> str:
    """The side-by-side table.

    Args:
        shipped: the verdicts of the shipped (full-budget) studies.
        stopped: the verdicts of each stopped run, by the shipped study it was rerun as.
        early: (trials the stopper ended before their budget, COMPLETE trials) per stopped run,
            by the same key.
        machines: ``machines_note`` per stopped run, by the same key (``–`` where absent).
    """
    machines = machines or {}
    rows = []
    for v in shipped:
        twin = next((s for s in stopped.get(v.study, ()) if s.claim == v.claim), None)
        if twin is None or min(twin.n_pairs, v.n_pairs) < 2:  # not (yet) comparable
            continue
        ended, done = early.get(v.study, (0, 0))
        rows.append([v.claim.text, f"`{v.study}`", f"{v.comparison} ({v.claim.metric})",
                     f"{_reading(twin)} ({ended} of {done} ended early)", _reading(v),
                     machines.get(v.study, "–"), "yes" if twin.verdict != v.verdict else "no"])
    if not rows:
        return ("No shipped study has a run with the plateau stopper on beside it in this "
                f"database (`<study>_{STOPPED_TAG}`): nothing to compare.")
    table = md_table(["claim (source)", "study", "comparison", "stopper on: Δ [95% CI], Holm p",
                      "full budget: Δ [95% CI], Holm p", "CPUs (stopped → full); trials",
                      "verdict moved"], rows, [False, False, False, True, True, False, False])
    return (table + "\n\nThe same cells (networks × seeds, data draws) run twice: once with the "
            "plateau stopper on (`train.plateau_stop: true`, kept as `<study>_stopped`), once "
            "with every trial training its full budget, the plateau test only recorded. Each "
            "reading is the declared contrast, paired over the seeds, Holm-adjusted within its "
            "study. *Ended early*: COMPLETE trials of the stopped run whose curve stops before "
            "the epoch budget. *CPUs; trials*: the CPU models each run trained on, and in how many "
            f"cells (network × seed) the two {METRIC} curves are identical at every epoch both "
            "ran. Where every cell is identical to the stop, a move is the stopper's alone; "
            "across CPU models float rounding differs from the first step and the trajectories "
            "part, so a move there may also hold run-to-run noise.")
