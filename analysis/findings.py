"""Regenerate ``docs/findings.md`` from the results database: figures, effect tables, compute.

``python -m analysis.findings [--db studies.db] [--out docs]`` (``make findings``) reads every
study of the catalogue (``analysis.findings_catalogue``) in the database and writes, into
``<out>/findings/`` and into the blocks of ``<out>/findings.md`` between
``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``:

- at the top, the **summary** (per claim and task: holds / does not hold / undecided, from the
  declared contrasts' intervals and Holm p, ``analysis.findings_claims``), the **published
  orderings** with Spearman's ρ (``analysis.findings_published``), the **compute** table and
  **the plateau stopper, measured** (each claim read in a study's ``<study>_stopped`` run and at
  full budget, ``analysis.findings_stopper``);
- per study (and per variant, ``placement_crossover.scale1`` ...): PNG figures (Pareto, forest,
  learning curves, each with chance and majority-class lines), the effect table by arm, matched
  compute, the declared contrasts (paired, Holm-adjusted), the claims' verdicts, the published
  orderings side by side, the credible Pareto front (``analysis.findings_study``);
- per study run at several knob values, the knob section: the declared differences against the
  knob with a zero line, and whether they cross over (``analysis.findings_knob``).

A renamed run of a catalogue study (``placement_crossover_earlystop.scale1``: a first run kept
beside its rerun, ``search.results.renaming``) gets its own section, read with the study's arms,
and stays out of the summary and the orderings.

Everything outside the markers is hand-written prose and is kept. The output depends on the
database only, so a second run changes nothing. A study or variant missing from the database
is listed as *not yet run* (not an error): the page works on a partial database.
``<out>/findings/`` is generated: a file there named after a catalogue study that this run did
not write is removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analysis.findings_catalogue import STUDIES, Study
from analysis.findings_claims import Verdict, orderings_markdown, summary_markdown
from analysis.findings_figures import ensure_browser, export_pngs
from analysis.findings_knob import knob_section
from analysis.findings_render import (
    BLOCK_RE,
    begin,
    check_markers,
    end,
    missing_note,
    overview_markdown,
    render,
)
from analysis.findings_setup import preset_configs
from analysis.findings_stopper import machines_note, same_cells, shipped_twin, stopper_markdown
from analysis.findings_study import FIG_DIR, StudyOutput, build_study
from analysis.findings_tables import arm_table
from analysis.loading import NoDataError, list_studies
from search.design import variants

__all__ = ["STUDIES", "Study", "arm_table", "begin", "build_study", "end", "ensure_browser",
           "generate", "main", "plans"]
STUDY, KNOB = "study", "knob"


@dataclass(frozen=True)
class Plan:
    """One section to write: a study (or variant) section, or a knob study's knob section."""

    study: Study
    role: str = STUDY  # STUDY or KNOB
    expected: bool = True  # listed as "not yet run" when absent (False: no section then)


def _variant_labels(preset: dict[str, Any] | None) -> list[str]:
    """The labels of a preset's ``study.variants`` (empty when none or unreadable)."""
    listed = ((preset or {}).get("study") or {}).get("variants") or []
    try:
        return variants.check(list(listed))
    except variants.VariantError:
        return []


def _owner(name: str) -> Study | None:
    """The catalogue study a database study belongs to: itself, a variant (``S.label``) or a
    renamed run (``S_suffix``); the longest catalogue name wins (bottom_vs_top_data)."""
    for study in sorted(STUDIES, key=lambda s: -len(s.name)):
        if name == study.name or name.startswith((f"{study.name}{variants.SEPARATOR}",
                                                  f"{study.name}_")):
            return study
    return None


def plans(names: set[str], presets: dict[str, dict[str, Any] | None] | None = None) -> list[Plan]:
    """Every section to write, in page order.

    Per catalogue study: its own section when the database holds it under its name (or it has
    no variants and is not optional); a knob section when it runs as variants, followed by one
    section per variant (expected from its preset, or found in the database); then renamed runs
    (``study=inflation study.name=inflation_small``), read with the study's arms.
    """
    presets = presets or {}
    out: list[Plan] = []
    for study in STUDIES:
        mine = sorted(n for n in names if n != study.name and _owner(n) is study)
        dotted = [n for n in mine if n.startswith(f"{study.name}{variants.SEPARATOR}")]
        expected = [f"{study.name}{variants.SEPARATOR}{label}"
                    for label in _variant_labels(presets.get(study.name))]
        found = list(dict.fromkeys([*expected, *dotted]))
        if study.name in names or not (found or study.optional):
            out.append(Plan(study, expected=not study.optional))
        if found and study.knob is not None:
            knob_name = study.name if study.name not in names else f"{study.name}-knob"
            out.append(Plan(dataclasses.replace(study, name=knob_name, preset=study.name),
                            KNOB, expected=not study.optional))
        for name in [*found, *(n for n in mine if n not in found)]:
            label = name[len(study.name) + 1:]
            out.append(Plan(dataclasses.replace(
                study, name=name, preset=study.name, variant_of=study.name,
                title=f"{study.title} — {label}"), expected=name in expected))
    return out


def _renamed(study: Study) -> bool:
    """A renamed run of a catalogue study (``inflation_small``), not the study or a variant."""
    return bool(study.variant_of) and not study.name.startswith(
        f"{study.variant_of}{variants.SEPARATOR}")


def generate(db: Any, out: Path, *, write_figures: bool = True,
             log: Callable[[str], None] = print) -> Path:
    """Regenerate ``out/findings.md`` and ``out/findings/`` from ``db``; returns the .md path.

    Raises:
        NoDataError: the database is missing, not vidarch, or holds no catalogue study.
        ValueError: findings.md has broken markers.
        RuntimeError: PNG export failed.
    """
    names = set(list_studies(db)["name"])
    if not any(_owner(n) for n in names):
        raise NoDataError(f"none of the shipped studies ({', '.join(s.name for s in STUDIES)}) "
                          f"is in this database")
    md_path = out / "findings.md"
    text = md_path.read_text() if md_path.is_file() else None
    if text is not None:
        check_markers(text)
    has_block = {m.group("name") for m in BLOCK_RE.finditer(text or "")}
    presets = preset_configs([s.name for s in STUDIES
                              if not s.optional or any(_owner(n) is s for n in names)])
    blocks: dict[str, str] = {}
    computes: dict[str, dict[str, Any] | None] = {}
    tables: dict[str, pd.DataFrame] = {}
    figs: dict[str, go.Figure] = {}
    outputs: dict[str, StudyOutput] = {}
    verdicts: list[Verdict] = []
    orderings: list[dict[str, Any]] = []
    not_run: list[str] = []
    others: list[str] = []  # renamed runs: own sections, not in the summary or the orderings
    stopped: dict[str, StudyOutput] = {}  # <study>_stopped runs, by shipped twin
    sections = plans(names, presets)
    for plan in (p for p in sections if p.role == STUDY):
        study = plan.study
        if study.name not in names:
            if not plan.expected and study.name not in has_block:
                continue
            log(f"note: study {study.name!r} is not in the database yet; its section says so")
            blocks[study.name] = missing_note(study.name, study.study_preset)
            computes[study.name] = None
            not_run.append(study.name)
            continue
        result = build_study(db, study, presets.get(study.study_preset))
        outputs[study.name] = result
        blocks[study.name] = result.block
        computes[study.name] = result.tables[f"{study.name}_compute.csv"].iloc[0].to_dict()
        tables.update(result.tables)
        figs.update(result.figures)
        if _renamed(study):
            others.append(study.name)
            twin = shipped_twin(study.name, study.study_preset)
            if twin is not None:
                stopped[twin] = result
            continue
        verdicts += result.verdicts
        orderings += result.orderings
    for plan in (p for p in sections if p.role == KNOB):
        family = plan.study.preset
        members = [p.study.name for p in sections
                   if p.role == STUDY and p.study.variant_of == family
                   and p.study.name.startswith(f"{family}{variants.SEPARATOR}")]
        knob = knob_section(dataclasses.replace(plan.study, name=family),
                            [(n, outputs[n]) for n in members if n in outputs],
                            [n for n in members if n not in outputs])
        blocks[plan.study.name] = knob.block
        tables.update(knob.tables)
        figs.update(knob.figures)
    blocks["summary"] = summary_markdown(verdicts, not_run, others)
    blocks["orderings"] = orderings_markdown(orderings)
    blocks["overview"] = overview_markdown(computes)
    twins = {name: run for name, run in stopped.items()  # the stopper alone
             if name in outputs and same_cells(run.config, outputs[name].config)}
    blocks["stopper"] = stopper_markdown(
        verdicts, {name: run.verdicts for name, run in twins.items()},
        {name: run.ended_early or (0, 0) for name, run in twins.items()},
        {name: machines_note(run.cpu_models, outputs[name].cpu_models, run.cells,
                             outputs[name].cells) for name, run in twins.items()})
    fig_dir = out / FIG_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    if write_figures:
        export_pngs({fig_dir / name: fig for name, fig in figs.items()})
    for name, table in tables.items():
        table.to_csv(fig_dir / name, index=False, float_format="%.6g", lineterminator="\n")
    _remove_stale(fig_dir, set(figs) | set(tables), write_figures)
    md_path.write_text(render(text, blocks, [p.study for p in sections]))
    log(f"wrote {md_path} ({len(tables)} tables, "
        f"{len(figs) if write_figures else 0} figures in {fig_dir})")
    return md_path


def _remove_stale(fig_dir: Path, keep: set[str], figures_written: bool) -> None:
    """Delete a shipped study's old PNG/CSV files that this run did not produce."""
    prefixes = tuple(f"{s.name}{sep}" for s in STUDIES for sep in ("_", variants.SEPARATOR))
    for path in fig_dir.iterdir():
        if path.name in keep or not path.name.startswith(prefixes):
            continue
        if path.suffix == ".csv" or (path.suffix == ".png" and figures_written):
            path.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.findings``: exit 0 on success, 1 with a one-line error otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.findings",
        description="Regenerate docs/findings.md (figures, effect tables, compute) from the "
                    "results database.")
    parser.add_argument("--db", default="studies.db", help="results database: path or "
                        "SQLAlchemy URL (default: studies.db)")
    parser.add_argument("--out", default="docs", type=Path,
                        help="folder of findings.md; figures and CSVs go to OUT/findings/")
    parser.add_argument("--no-figures", action="store_true",
                        help="write the tables only (no PNG export, no browser needed)")
    args = parser.parse_args(argv)
    try:
        generate(args.db, args.out, write_figures=not args.no_figures)
    except NoDataError as exc:
        print(f"error: {exc} (to fill it: {exc.hint})", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
