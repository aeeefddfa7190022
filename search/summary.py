"""The end-of-run summary of ``python -m search.run``: what the study found, read from the database.

Torch- and Ray-free. It ranks by the study's first objective in that metric's direction
(``search.results.metrics``), shows the task's chance and majority-class baselines, gives every network
a Student-t interval over its seeds and flags undertrained and memorising ones, and reports the
study's declared contrasts (``search.results.contrasts``) with Holm-adjusted p-values. The statistics
are the ones ``analysis`` uses (``search.results.seed_stats``), not a copy.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from typing import Any, TextIO

import numpy as np
from sqlalchemy import Engine, select

from arch_space.naming import HASH_LABEL, placement_family, placement_name
from arch_space.spec import ArchSpec, SpecError
from search.results import metrics
from search.results.contrasts import Groups, evaluate, floor_note
from search.results.fidelity import epoch_fidelity, fidelity_lines
from search.results.loopback import dashboard_command
from search.results.schema import (
    ArchRow,
    EpochMetricRow,
    StudyRow,
    TrialRow,
    TrialState,
    decode_value,
)
from search.results.seed_stats import CI_METHOD, mean_ci, pareto_mask
from search.results.store import session_scope, study_trials


def fmt_duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour."""
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _num_classes(spec_json: str | None) -> int | None:
    try:
        value = json.loads(spec_json or "{}").get("num_classes")
    except (TypeError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


LEGACY_SEARCH_FAMILY = "search"  # every searched network's family in older databases


def _names(label: str | None, family: str | None, arch_id: str,
           spec_json: str | None) -> tuple[str, str]:
    """``(label, family)`` as stored; searched networks of older databases (hash labels, one
    family "search") get their placement's name and family (``arch_space.naming``)."""
    legacy_label = not label or bool(HASH_LABEL.fullmatch(label))
    if not legacy_label and family and family != LEGACY_SEARCH_FAMILY:
        return label or arch_id[:8], family
    try:
        spec = ArchSpec.from_json(spec_json or "")
    except (SpecError, ValueError, TypeError):
        return label or arch_id[:8], family or "-"
    return (placement_name(spec) if legacy_label else str(label),
            placement_family(spec) if family in (None, "", LEGACY_SEARCH_FAMILY) else family)


def study_table(engine: Engine, study_id: int) -> list[dict[str, Any]]:
    """One dict per trial of the study: label, family, seed, state, final metrics, cost,
    error, and the protocol facts (plateaued, train-val gap, chance and majority accuracy)."""
    out = []
    with session_scope(engine) as s:
        for row in study_trials(s, study_id):
            arch = s.get(ArchRow, row.arch_id)
            results = {r.name: decode_value(r.value, r.value_type) for r in row.results}
            classes = _num_classes(arch.spec_json if arch else None)
            label, family = _names(row.label, row.family, row.arch_id,
                                   arch.spec_json if arch else None)
            out.append({
                "trial_id": row.id, "label": label, "family": family,
                "arch_id": row.arch_id, "seed": row.seed, "state": row.state.value,
                "results": results, "macs": arch.macs if arch else 0,
                "params": arch.params if arch else 0, "error": row.error,
                "plateaued": getattr(row, metrics.PLATEAUED, None),
                "train_val_gap": getattr(row, metrics.TRAIN_VAL_GAP, None),
                "chance_recorded": getattr(row, metrics.CHANCE_ACC, None) is not None,
                "chance_acc": getattr(row, metrics.CHANCE_ACC, None)
                or (1.0 / classes if classes else None),
                "majority_acc": getattr(row, metrics.MAJORITY_ACC, None)})
    return out


def epoch_values(engine: Engine, study_id: int, metric: str) -> dict[int, dict[int, float]]:
    """``{trial_id: {epoch: value}}`` of ``metric`` for the study's COMPLETE trials."""
    query = (select(EpochMetricRow.trial_id, EpochMetricRow.epoch, EpochMetricRow.value,
                    EpochMetricRow.value_type)
             .join(TrialRow, TrialRow.id == EpochMetricRow.trial_id)
             .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.COMPLETE,
                    EpochMetricRow.name == metric))
    out: dict[int, dict[int, float]] = {}
    with session_scope(engine) as s:
        for trial_id, epoch, value, value_type in s.execute(query):
            out.setdefault(trial_id, {})[int(epoch)] = decode_value(value, value_type)
    return out


def early_ranking(rows: list[dict[str, Any]], curves: dict[int, dict[int, float]], metric: str,
                  mode: str, grace_epochs: int | None = None,
                  n_boot: int = 1000) -> list[dict[str, Any]]:
    """``search.results.fidelity`` rows of the networks' ranking at an early epoch against their final
    one (each a mean over COMPLETE seeds): ASHA's first cut (``grace_epochs``) if it has a
    correlation, else the first epoch that has one. Empty with one epoch."""
    complete = [r for r in rows if r["state"] == TrialState.COMPLETE.value
                and r["trial_id"] in curves and math.isfinite(r["results"].get(metric, math.nan))]
    final: dict[str, list[float]] = {}
    early: dict[int, dict[str, list[float]]] = {}
    last = max((max(curves[r["trial_id"]]) for r in complete), default=0)
    for r in complete:
        final.setdefault(r["arch_id"], []).append(r["results"][metric])
        for epoch, value in curves[r["trial_id"]].items():
            if epoch < last:
                early.setdefault(epoch, {}).setdefault(r["arch_id"], []).append(value)
    means = {a: statistics.fmean(v) for a, v in final.items()}
    order = sorted(early, key=lambda e: (e != grace_epochs, e))
    for epoch in order:
        at = {a: statistics.fmean(v) for a, v in early[epoch].items()}
        row = epoch_fidelity({epoch: at}, means, mode == metrics.MAX, n_boot=n_boot)[0]
        if math.isfinite(row["spearman"]):
            return [row]
    return []


def study_settings(engine: Engine, study_id: int) -> dict[str, Any]:
    """The stored ``study`` section of the config (objectives, directions, contrasts)."""
    with session_scope(engine) as s:
        row = s.get(StudyRow, study_id)
        try:
            config = json.loads(row.config_json) if row else {}
        except (TypeError, ValueError):
            config = {}
    study = config.get("study") if isinstance(config, dict) else None
    return study if isinstance(study, dict) else {}


def _gap(r: dict[str, Any]) -> float:
    """The stored train-val gap, else final train/acc1 - val/acc1 (databases before 0003)."""
    if r["train_val_gap"] is not None:
        return float(r["train_val_gap"])
    res = r["results"]
    return res.get(metrics.TRAIN_ACC1, math.nan) - res.get(metrics.VAL_ACC1, math.nan)


def _mean(values: list[Any]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.fmean(finite) if finite else math.nan


def summarize(rows: list[dict[str, Any]], metric: str = metrics.VAL_ACC1, mode: str | None = None,
              contrasts: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-network intervals over COMPLETE seeds, best per family, the front, contrasts.

    Returns ``metric``, ``mode``, ``baselines`` (``chance``, ``majority``), ``archs`` (one dict
    per network: ``mean``, ``ci_low``, ``ci_high``, ``n``, ``gap``, ``above_chance``,
    ``undertrained``, ``memorising``, ``flags``), ``best`` (family -> arch, by direction),
    ``front`` (Pareto front of metric and MACs over the networks whose interval is above
    chance; every network for a metric that is not an accuracy), ``contrasts`` (rows of
    ``search.results.contrasts.evaluate``), ``constant`` (every trial has the same value: the metric
    ranks nothing), ``failures`` and ``counts``.
    """
    mode = mode or metrics.direction(metric)
    complete = [r for r in rows if r["state"] == TrialState.COMPLETE.value
                and math.isfinite(r["results"].get(metric, math.nan))]
    chance, majority = (_mean([r["chance_acc"] for r in complete]),
                        _mean([r["majority_acc"] for r in complete]))
    recorded = any(r.get("chance_recorded") for r in complete)
    accuracy = metrics.is_accuracy(metric)
    by_arch: dict[str, list[dict[str, Any]]] = {}
    for r in complete:
        by_arch.setdefault(r["arch_id"], []).append(r)
    archs = []
    for arch_id, trials in by_arch.items():
        values = [t["results"][metric] for t in trials]
        low, high = mean_ci(values, bounds=metrics.bounds(metric))
        gap = _mean([_gap(t) for t in trials])
        above = (low > chance) if accuracy and math.isfinite(low) and math.isfinite(chance) \
            else None
        undertrained = any(t["plateaued"] is False for t in trials)
        flags = [text for on, text in ((above is False, "interval includes chance"),
                                       (undertrained, "undertrained"),
                                       (metrics.is_memorising(gap), "memorising")) if on]
        first = trials[0]
        archs.append({"arch_id": arch_id, "label": first["label"], "family": first["family"],
                      "macs": first["macs"], "params": first["params"],
                      "mean": statistics.fmean(values), "ci_low": low, "ci_high": high,
                      "n": len(values), "gap": gap, "above_chance": above,
                      "undertrained": undertrained, "memorising": metrics.is_memorising(gap),
                      "flags": flags})
    best: dict[str, dict[str, Any]] = {}
    for a in archs:
        if a["family"] not in best or metrics.better(a["mean"], best[a["family"]]["mean"], mode):
            best[a["family"]] = a
    credible = [a for a in archs if a["above_chance"]] if accuracy else archs
    front: list[dict[str, Any]] = []
    if credible:
        points = np.array([[-metrics.sign(mode) * a["mean"], a["macs"]] for a in credible],
                          dtype=float)  # (n, 2), both minimised
        front = sorted((a for a, keep in zip(credible, pareto_mask(points), strict=True) if keep),
                       key=lambda a: a["macs"])
    groups = Groups.of((r["label"], r["family"]) for r in rows)
    values_by_cell = {(r["label"], int(r["seed"])): r["results"][metric] for r in complete}
    table = evaluate(list(contrasts), values_by_cell, groups, mode) if contrasts else []
    counts = {s.value: sum(r["state"] == s.value for r in rows) for s in TrialState}
    return {"metric": metric, "mode": mode,
            "baselines": {"chance": chance, "majority": majority,
                          "chance_source": "recorded" if recorded else "1/classes"},
            "constant": metrics.is_constant(r["results"][metric] for r in complete),
            "archs": archs, "best": best, "front": front, "contrasts": table,
            "failures": [r for r in rows if r["state"] == "FAILED"], "counts": counts}


def _f(value: float, spec: str = ".3f") -> str:
    return format(value, spec) if value is not None and math.isfinite(value) else "-"


def _ci(a: dict[str, Any]) -> str:
    return f"[{_f(a['ci_low'])}, {_f(a['ci_high'])}]" if math.isfinite(a["ci_low"]) else "-"


def _p(value: float) -> str:
    return "-" if not math.isfinite(value) else ("<1e-4" if value < 1e-4 else f"{value:.3g}")


def baseline_line(baselines: dict[str, float]) -> str:
    """``chance 0.250 (recorded), majority class 0.312`` (or that they were not recorded)."""
    chance = baselines["chance"]
    majority = baselines["majority"]
    text = (f"chance {_f(chance)} ({baselines.get('chance_source', 'recorded')})"
            if math.isfinite(chance) else "chance unknown")
    return text + (f", majority class {_f(majority)}" if math.isfinite(majority)
                   else ", majority class not recorded")


def choose_metric(settings: dict[str, Any]) -> tuple[str, str]:
    """The metric the summary ranks by (the study's first objective) and its direction."""
    objectives = settings.get("objectives") or [metrics.VAL_ACC1]
    metric = str(objectives[0])
    declared = metrics.parse_directions(settings.get("directions") or ())
    return metric, metrics.direction(metric, declared)


def print_summary(engine: Engine, study_id: int, study_name: str, outcome: Any, storage: str,
                  stream: TextIO | None = None) -> dict[str, Any]:
    """Print the end-of-run tables and the next command; return the summary data.

    ``outcome`` is the driver's ``Outcome`` (counts, wall time, skips, interruption);
    ``stream`` defaults to the ``sys.stdout`` of the moment of the call.
    """
    from rich.console import Console
    from rich.table import Table

    settings = study_settings(engine, study_id)
    metric, mode = choose_metric(settings)
    table = study_table(engine, study_id)
    data = summarize(table, metric, mode,
                     tuple(settings.get("contrasts") or ()))
    console = Console(file=stream if stream is not None else sys.stdout, width=120, force_terminal=False, highlight=False)
    counts = data["counts"]
    console.print(f"\nStudy [bold]{study_name}[/bold]: {counts['COMPLETE']} complete, "
                  f"{counts['PRUNED']} pruned, {counts['FAILED']} failed, "
                  f"{counts['RUNNING']} running · this run: {outcome.completed} completed, "
                  f"{outcome.failed} failed in {fmt_duration(outcome.wall_s)}"
                  + (" · INTERRUPTED: rerun the same command to resume"
                     if outcome.interrupted else ""), soft_wrap=True)  # one line, as grep sees it
    console.print(f"Ranked by {metric} ({metrics.wording(mode)}). Baselines: "
                  f"{baseline_line(data['baselines'])}.")
    if data["constant"]:
        console.print(f"Every COMPLETE trial has the same {metric}: it ranks nothing here "
                      "(train longer or on more clips, or rank by another objective).")

    def section(title: str, columns: list[str], rows: list[list[str]]) -> None:
        console.print(f"\n[bold]{title}[/bold]")
        table = Table(show_edge=False, pad_edge=False)
        for i, col in enumerate(columns):
            text = i < 2 or col in ("flags", "note", "favours", "declared as")
            # names stay on one line ("3d:s0 | 2d:s1-s2", "bottom-heavy"); notes wrap
            table.add_column(col, justify="left" if text else "right",
                             no_wrap=not text or col in ("network", "family"))
        for row in rows:
            table.add_row(*row)
        console.print(table)

    sign = metrics.sign(mode)
    archs = sorted(data["archs"], key=lambda a: (a["family"], -sign * a["mean"]))
    section(f"All networks ({metric}: mean and 95% {CI_METHOD} interval over COMPLETE seeds)",
            ["network", "family", metric, "95% CI", "seeds", "MMACs", "params (k)",
             "train-val gap", "flags"],
            [[a["label"], a["family"], _f(a["mean"]), _ci(a), str(a["n"]),
              f"{a['macs'] / 1e6:.2f}", f"{a['params'] / 1e3:.1f}", _f(a["gap"]),
              ", ".join(a["flags"])] for a in archs])
    section(f"Best per placement family ({metrics.wording(mode)})",
            ["family", "network", metric, "95% CI", "seeds", "MMACs"],
            [[family, a["label"], _f(a["mean"]), _ci(a), str(a["n"]), f"{a['macs'] / 1e6:.2f}"]
             for family, a in sorted(data["best"].items(), key=lambda kv: -sign * kv[1]["mean"])])
    accuracy = metrics.is_accuracy(metric)
    title = ("Pareto front of networks whose interval is above chance"
             if accuracy else "Pareto front of COMPLETE networks")
    if data["front"]:
        section(f"{title} ({'higher' if mode == metrics.MAX else 'lower'} {metric}, fewer MACs)",
                ["network", "family", metric, "95% CI", "MMACs"],
                [[a["label"], a["family"], _f(a["mean"]), _ci(a), f"{a['macs'] / 1e6:.2f}"]
                 for a in data["front"]])
    else:
        console.print(f"\n[bold]{title}[/bold]: none — no network's interval lies above chance "
                      "(two or more seeds give an interval); compare nothing at this budget.")
    if data["contrasts"]:
        n = sum(math.isfinite(r["p_t"]) for r in data["contrasts"])
        section(f"Declared contrasts (A - B in {metric}, paired over seeds; p Holm-adjusted over "
                f"{n} test(s))",
                ["comparison (A - B)", "declared as", "delta", "95% CI", "seeds", "p (t)",
                 "p Holm", "favours", "note"],
                [[f"{r['a']} - {r['b']}" if r["a"] else "", "" if r["contrast"] == (
                    f"{r['a']} - {r['b']}") else r["contrast"], _f(r["delta"], "+.3f"),
                  f"[{_f(r['ci_low'], '+.3f')}, {_f(r['ci_high'], '+.3f')}]"
                  if math.isfinite(r["ci_low"]) else "-", str(r["n_pairs"]), _p(r["p_t"]),
                  _p(r["p_holm"]), r["favours"], r["note"]] for r in data["contrasts"]])
        note = floor_note(r["n_pairs"] for r in data["contrasts"])
        if note:
            console.print(note)
    scheduler = settings.get("scheduler") or {}
    grace = scheduler.get("grace_epochs") if scheduler.get("kind") == "asha" else None
    data["fidelity"] = early_ranking(table, epoch_values(engine, study_id, metric), metric, mode,
                                     grace)
    console.print(f"\n[bold]Early ranking check[/bold] ({metric}, networks' means over COMPLETE "
                  f"seeds; 95% bootstrap intervals)")
    for line in fidelity_lines(data["fidelity"], grace_epochs=grace):
        console.print(line, soft_wrap=True)
    if data["failures"]:
        section(f"{len(data['failures'])} FAILED trial(s): they run again when you rerun",
                ["network", "seed", "reason"],
                [[r["label"], str(r["seed"]), (r["error"] or "")[:80]]
                 for r in data["failures"]])
    if outcome.skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(outcome.skip_reasons.items()))
        console.print(f"\n{outcome.skipped} proposal(s) answered without training ({reasons}).")
    # One line, as typed: no wrapping at the console width, no rich markup in paths.
    console.print(f"\nNext: {dashboard_command(storage)}", soft_wrap=True, markup=False)
    return data
