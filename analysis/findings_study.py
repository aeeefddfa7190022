"""One study's section of ``docs/findings.md``: its figures, tables, claims and orderings.

``build_study`` reads one study (or variant) from the database and returns a ``StudyOutput``:
the markdown block, the CSV tables and figures by file name, and what the page's top sections
gather from it (the verdicts of its claims, its Spearman comparisons, its point on a knob).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analysis import figures
from analysis.checks import baselines
from analysis.contrasts import declared_contrasts, study_contrasts
from analysis.findings_catalogue import METRIC, Study
from analysis.findings_claims import Verdict, decide, is_declared
from analysis.findings_figures import (
    NO_CHANCE,
    add_baselines,
    learning_curves_figure,
    widen_y,
)
from analysis.findings_md import (
    CAPTIONS,
    baseline_text,
    contrast_markdown,
    effect_markdown,
    fmt,
    fmt_ci,
    front_markdown,
    md_table,
)
from analysis.findings_published import PUBLISHED, Ordering, spearman, spearman_sentence
from analysis.findings_setup import config_value, run_command, setup_markdown, variant_config
from analysis.findings_tables import (
    arm_table,
    compute_markdown,
    compute_summary,
    matched_markdown,
    resources,
)
from analysis.loading import load_curves, load_trials, study_config
from analysis.matched import credible_front
from analysis.stats import arch_summary, compare, completed, curve_summary
from search.design import variants
from search.results import metrics

FIG_DIR = "findings"  # PNG and CSV files, beside findings.md


@dataclass
class StudyOutput:
    """What one study produces: the markdown block, CSV tables and figures by file name."""

    block: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)  # its claims, decided
    orderings: list[dict[str, Any]] = field(default_factory=list)  # Spearman rows
    contrasts: dict[str, pd.DataFrame] = field(default_factory=dict)  # metric -> declared
    declared: list[str] = field(default_factory=list)  # the declared contrasts, as written
    arms: pd.DataFrame | None = None  # the arm table (compare by arm)
    family_table: pd.DataFrame | None = None  # compare by design family (as designed)
    config: dict[str, Any] = field(default_factory=dict)  # the stored config
    ended_early: tuple[int, int] | None = None  # (COMPLETE trials short of the budget, COMPLETE)
    cpu_models: tuple[str, ...] = ()  # the CPU models its trials ran on
    cells: dict[tuple[str, int], dict[int, float]] = field(default_factory=dict)  # curves by cell


def link(name: str) -> str:
    """The path of a generated file as findings.md links it."""
    return f"{FIG_DIR}/{name}"


def csv_note(name: str) -> str:
    """``CSV: [findings/x.csv](findings/x.csv)``."""
    return f"CSV: [{link(name)}]({link(name)})"


def _figure_part(study: str, name: str, stopped: bool = False) -> str:
    kind = name.removesuffix(".png").rsplit("_", 1)[-1]
    caption = CAPTIONS["curves_stopped" if kind == "curves" and stopped else kind]
    return f"![{study}: {kind}]({link(name)})\n\n{caption}"


def _cell_curves(df: pd.DataFrame, curves: pd.DataFrame) -> dict[tuple[str, int], dict[int, float]]:
    """Each trial's ``METRIC`` by epoch, keyed by (network label, seed): where two runs of the
    same cells part (bit-identical on one CPU model; float rounding differs across models)."""
    if not len(curves):
        return {}
    val = curves[(curves["name"] == METRIC) & curves["seed"].notna()] \
        .merge(df[["trial_id", "label"]], on="trial_id")
    return {(str(label), int(seed)): dict(zip(g["epoch"].astype(int), g["value"].astype(float),
                                              strict=True))
            for (label, seed), g in val.groupby(["label", "seed"])}


def _made_as_variant(stored: dict[str, Any], name: str) -> bool:
    """Whether study ``name`` (``<study>.<label>``) was made by its preset's ``study.variants``:
    its stored variants list that label (or predates storing them), unlike a run made by hand
    under a dotted name with ``study.variants=[]``."""
    listed = (stored.get("study") or {}).get("variants")
    if listed is None:
        return True
    try:
        labels = variants.check(list(listed))  # a label given, or made from the knob's value
    except variants.VariantError:
        return False
    return name.rsplit(variants.SEPARATOR, 1)[-1] in labels


def build_study(db: Any, study: Study,
                preset_config: dict[str, Any] | None = None) -> StudyOutput:
    """Figures, tables and the markdown block of one study present in the database.

    ``preset_config`` is the effective config of the study's preset (``preset_configs``), to
    write the command that reproduces the study and to read contrasts an older stored config
    lacks; without it the command has no overrides.
    """
    df = study.add_arms(load_trials(db, study.name))
    curves = load_curves(db, study.name)
    times = curves.loc[curves["name"] == metrics.EPOCH_TIME_S, "value"].dropna() \
        if len(curves) else pd.Series(dtype=float)
    c = compute_summary(df, times, resources(db, study.name))
    config = study_config(db, study.name)
    out = StudyOutput("", config=config, cells=_cell_curves(df, curves),
                      cpu_models=tuple(sorted(df["cpu_model"].dropna().astype(str).unique())))
    variant = variant_config(preset_config, study.name) \
        if study.variant_of and _made_as_variant(config, study.name) else None
    command = run_command(config, study.study_preset, variant or preset_config)
    which = (f", which runs variant `{study.name.rsplit('.', 1)[-1]}` among its "
             "`study.variants`" if variant is not None else "")
    parts = [p for p in (setup_markdown(config), compute_markdown(c)) if p]
    parts.append(f"**Produced by** `{command}`{which} (plus `storage=` where the database "
                 "lives).")
    out.tables[f"{study.name}_compute.csv"] = pd.DataFrame([{
        "study": study.name, **{k: v for k, v in c.items() if k not in ("cpus", "gpus", "seeds")},
        "seeds": " ".join(map(str, c["seeds"]))}])
    if completed(df, METRIC).empty:
        parts.append(f"No COMPLETE trial with `{METRIC}` yet: nothing to compare.")
        out.block = "\n\n".join(parts)
        return out

    table = arm_table(df, study.arms)
    out.arms = table
    if "design_family" in df:
        out.family_table = compare(df, by="design_family", metric=METRIC)
    base = baselines(df)
    chance, majority = base["chance"], base["majority"]
    summary = arch_summary(df, METRIC)
    extra = [c for c in dict.fromkeys(["arm", *study.arms]) if c not in summary]
    summary = summary.merge(df.groupby("arch_id")[extra].first(), left_on="arch_id",
                            right_index=True, how="left")
    front = credible_front(summary, METRIC)
    pareto = figures.pareto_figure(summary, front, metric=METRIC, color=study.color,
                                   chance=NO_CHANCE)
    pareto.update_layout(title=f"{study.name}: {pareto.layout.title.text}")
    if study.color == "arm":
        pareto.update_layout(legend_title=" × ".join(study.arms))
    gmacs = summary["gmacs"].dropna()
    if len(gmacs):
        add_baselines(pareto, chance, majority, [float(gmacs.min()), float(gmacs.max())])
        widen_y(pareto, chance, majority)
    out.figures[f"{study.name}_pareto.png"] = pareto
    forest = figures.compare_figure(table, metric=METRIC, chance=NO_CHANCE,
                                    color="family" if "family" in table else "group")
    groups = table["group"].astype(str).tolist()
    add_baselines(forest, chance, majority, [groups[0], groups[-1]], vertical=True, row=1, col=1)
    forest.update_layout(title=f"{study.name}: effect of each arm", height=200 + 40 * len(table),
                         margin={"t": 90})
    out.figures[f"{study.name}_effects.png"] = forest
    if study.lines:
        x, line = study.lines
        lines = figures.effect_lines_figure(table, x, line, metric=METRIC, chance=NO_CHANCE)
        xs = sorted(table[x].dropna().unique().tolist())
        add_baselines(lines, chance, majority, [xs[0], xs[-1]])
        lines.update_layout(title=f"{study.name}: {lines.layout.title.text}")
        out.figures[f"{study.name}_lines.png"] = lines
    done = completed(df, METRIC).assign(chance=chance, majority=majority)
    stopped = bool(config_value(config, "train", "plateau_stop"))  # the stopper was on
    out.ended_early = _ended_early(curves, done, config_value(config, "train", "epochs"))
    learning = learning_curves_figure(
        curve_summary(curves, done, METRIC, by="arm", hold_last=stopped), done)
    learning.update_layout(title=f"{study.name}: {learning.layout.title.text}")
    out.figures[f"{study.name}_curves.png"] = learning
    parts += [_figure_part(study.name, name, stopped) for name in out.figures]
    parts.append(_plateau_sentence(done, stopped, config_value(config, "train") or {}))
    arms_csv = f"{study.name}_arms.csv"
    out.tables[arms_csv] = table
    parts.append(
        f"**Effect table by {' × '.join(study.arms)}.** Mean of `{METRIC}` over COMPLETE trials "
        f"(of per-seed means), 95% Student-t interval over seeds; {baseline_text(table)}. "
        f"{csv_note(arms_csv)}\n\n" + effect_markdown(table, study.arms))
    parts.append(matched_markdown(df, table, config))
    if study.by_family:
        parts.append(_family_part(df, study, out, chance, majority))
    parts.append(_contrasts_part(df, study, config, preset_config, out))
    task = str(config_value(config, "data", "task") or "?")
    converged = _plateau_counts(done)
    for claim in study.claims:
        declared = out.contrasts.get(claim.metric)
        if declared is not None and is_declared(claim, out.declared):
            out.verdicts.append(replace(
                decide(claim, declared, study.name, task), plateaued=converged))
    if out.verdicts:
        parts.append("**Claims on this task.**\n\n" + "\n".join(
            f"- {v.sentence()}" for v in out.verdicts))
    if study.published:
        parts.append(_published_part(df, study, out))
    front_csv = f"{study.name}_front.csv"
    out.tables[front_csv] = front
    parts.append(f"**Matched cost: the Pareto front of networks whose interval lies above "
                 f"chance** (higher `{METRIC}`, fewer GMACs). {csv_note(front_csv)}\n\n"
                 + front_markdown(front))
    out.block = "\n\n".join(parts)
    return out


def _plateau_counts(done: pd.DataFrame) -> tuple[int, int] | None:
    """(plateaued, COMPLETE) trials, or None when the database predates the plateau check."""
    if "plateaued" not in done or done["plateaued"].isna().all():
        return None
    return int(done["plateaued"].fillna(False).astype(bool).sum()), len(done)


def _ended_early(curves: pd.DataFrame, done: pd.DataFrame, budget: Any) -> tuple[int, int]:
    """(COMPLETE trials whose curve ends before the epoch budget, COMPLETE trials)."""
    if budget is None or not len(curves):
        return 0, len(done)
    ids = set(done["trial_id"])
    last = curves[(curves["name"] == METRIC) & curves["trial_id"].isin(ids)].groupby(
        "trial_id")["epoch"].max()
    return int((last < int(budget)).sum()), len(done)


def _plateau_sentence(done: pd.DataFrame, stopped: bool = False,
                      train: dict[str, Any] | None = None) -> str:
    """How many trials plateaued, and the arms with trials that did not. ``stopped``: the
    plateau stopper was on (a plateaued trial ended there), else every trial ran its budget;
    ``train``: the stored train settings (the rule's patience and min_delta)."""
    if "plateaued" not in done or done["plateaued"].isna().all():
        return "**Convergence.** Not recorded (the database predates the plateau check)."
    flags = done["plateaued"].fillna(False).astype(bool)
    late = done.loc[~flags].groupby("arm").size()
    patience = (train or {}).get("plateau_patience", 2)
    delta = float((train or {}).get("plateau_min_delta", 0.01))
    when = ("(the stopper ended each where it plateaued)" if stopped else
            f"by the end of their full budget (their last {patience} epochs gained at most "
            f"{delta:g} on the best before them)")
    text = f"**Convergence.** {int(flags.sum())} of {len(done)} COMPLETE trials plateaued {when}"
    if late.empty:
        return text + "."
    return (text + "; not plateaued (still rising or still moving at the last epoch): "
            + ", ".join(f"{arm} {n}" for arm, n in late.items()) + ".")


def _family_part(df: pd.DataFrame, study: Study, out: StudyOutput, chance: float,
                 majority: float) -> str:
    fam = arm_table(df, ("family",), by="family")
    fam_csv = f"{study.name}_families.csv"
    out.tables[fam_csv] = fam
    forest = figures.compare_figure(fam, metric=METRIC, chance=NO_CHANCE)
    groups = fam["group"].astype(str).tolist()
    add_baselines(forest, chance, majority, [groups[0], groups[-1]], vertical=True, row=1, col=1)
    forest.update_layout(title=f"{study.name}: effect of each placement family",
                         height=200 + 40 * len(fam), margin={"t": 90})
    name = f"{study.name}_families.png"
    out.figures[name] = forest
    return (f"**By placement family.** {csv_note(fam_csv)}\n\n"
            f"{_figure_part(study.name, name)}\n\n" + effect_markdown(fam, ("family",)))


def _contrasts_part(df: pd.DataFrame, study: Study, config: dict[str, Any],
                    preset_config: dict[str, Any] | None, out: StudyOutput) -> str:
    """The declared contrasts of a study: from its stored config, else from its preset."""
    declared, source = study_contrasts(config), "its stored config"
    if not declared:
        declared = study_contrasts(preset_config)
        source = f"the preset `study={study.study_preset}` (the stored config predates them)"
    if not declared:
        return ("**Declared contrasts.** None: the study declares no contrasts "
                "(`study.contrasts`), so no difference is tested.")
    out.declared = list(declared)
    parts = []
    for metric in (METRIC, *study.extra_metrics):
        table = declared_contrasts(df, declared, metric)
        out.contrasts[metric] = table
        name = (f"{study.name}_contrasts.csv" if metric == METRIC else
                f"{study.name}_contrasts_{metric.replace('/', '_')}.csv")
        out.tables[name] = table
        parts.append(f"On `{metric}` ({metrics.direction(metric)}imise): {csv_note(name)}\n\n"
                     + contrast_markdown(table, metric))
    return (f"**Declared contrasts** (from {source}: {', '.join(f'`{c}`' for c in declared)}). "
            "Δ = A − B, the mean over the seeds both groups completed of the per-seed "
            "difference, with a Student-t 95% CI; p-values from the paired t-test, "
            f"Holm-adjusted over the {len(out.contrasts[METRIC])} comparison(s) of the study. "
            + "\n\n".join(parts))


def _means(df: pd.DataFrame, ordering: Ordering) -> pd.DataFrame:
    """``compare`` by the column an ordering names: network labels or design families."""
    column = "label" if ordering.column == "network" else "design_family"
    if column not in df:
        return pd.DataFrame(columns=["group", "mean", "ci_low", "ci_high", "n_seeds"])
    return compare(df, by=column, metric=METRIC).set_index("group")


def _published_part(df: pd.DataFrame, study: Study, out: StudyOutput) -> str:
    """Each published ordering beside vidarch's, with Spearman's ρ over the shared arms."""
    parts = []
    for key in study.published:
        ordering = PUBLISHED[key]
        table = _means(df, ordering)
        means = {str(g): float(m) for g, m in table["mean"].items()}
        result = spearman(means, ordering)
        arms = result["arms"]
        ranks = pd.Series({a: means[a] for a in arms}).rank(ascending=False, method="average")
        rows = [[f"`{a}`", ordering.names.get(a, a), f"{ordering.ranks[a]:g}",
                 fmt(table.loc[a, "mean"]), fmt_ci(table.loc[a, "ci_low"], table.loc[a, "ci_high"]),
                 str(int(table.loc[a, "n_seeds"])), f"{ranks[a]:g}"] for a in arms]
        sentence = spearman_sentence(result, ordering)
        text = (f"From {ordering.source} ({ordering.setting}; ordering only"
                + (f", {ordering.note}" if ordering.note else "") + ").")
        if rows:
            text += "\n\n" + md_table(["arm", "published as", "published rank", f"{METRIC}",
                                       "95% CI", "seeds", "vidarch rank"], rows,
                                      [False, False, True, True, True, True, True])
        parts.append(text + "\n\n" + sentence)
        out.orderings.append({"study": study.name, "source": ordering.source, "n": result["n"],
                              "rho": result["rho"], "p": result["p"],
                              "reading": sentence.split(": ", 1)[-1] if math.isfinite(
                                  result["rho"]) else "not computable"})
    return "**Published orderings side by side** (rank 1 = best).\n\n" + "\n\n".join(parts)
