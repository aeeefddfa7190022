"""Regenerate ``docs/findings.md`` from the results database: figures, effect tables, compute.

``python -m analysis.findings [--db studies.db] [--out docs]`` (``make findings``) reads every
shipped study in the database and, for each, writes

- PNG figures exported from the same plotly figures the dashboard shows (``analysis.figures``),
- the effect table of ``analysis.compare`` grouped by the study's natural arm (Student-t
  intervals over seeds, chance, flags), the contrasts the study declared in its config
  (``analysis.contrasts``: paired over seeds, Holm-adjusted) and the Pareto front of the
  networks whose interval lies above chance, as markdown and as CSV,
- the compute the study took (trials by state, trial time, wall-clock span),

into ``<out>/findings/`` and into the blocks of ``<out>/findings.md`` between
``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``. Everything outside the
markers is hand-written prose and is kept. The output depends on the database only (no
resampling, no timestamps but the database's), so a second run changes nothing.

A study named ``<shipped>_<suffix>`` (``study=inflation study.name=inflation_small``) gets its own
section, read with the shipped study's arms; a shipped study missing from the database keeps its
section with a one-line note. ``<out>/findings/`` is generated: a file there named after a
shipped study (``bottom_vs_top_*.png|csv``) that this run did not write is removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import select

from analysis import figures
from analysis.contrasts import declared_contrasts, study_contrasts
from analysis.findings_md import (
    CAPTIONS,
    METRIC,
    baseline_text,
    contrast_markdown,
    effect_markdown,
    front_markdown,
    md_table,
)
from analysis.loading import (
    NoDataError,
    list_studies,
    load_curves,
    load_trials,
    opened,
    study_config,
)
from analysis.matched import credible_front
from analysis.placement import FAMILIES
from analysis.stats import arch_summary, compare, completed
from arch_space import kinds
from search.results.schema import StudyRow, TrialRow

FIG_DIR = "findings"  # PNG and CSV files, beside findings.md
FIG_WIDTH = 900  # px of the exported PNGs
DEFAULT_BROWSER = "/usr/bin/chromium"  # Debian's chromium, for kaleido when nothing else is found
KIND_ORDER = kinds.KIND_ORDER  # kinds, each with its aliases, then mixes (a live view)
STATES = ("COMPLETE", "PRUNED", "FAILED", "RUNNING")
# compare's tests against the best arm: chosen after seeing the data, so not reported here
AFTER_THE_FACT = ("delta", "n_pairs", "p_paired_t", "p_wilcoxon", "p_welch", "reference")


@dataclass(frozen=True)
class Study:
    """A shipped study: its arms, extra tables and figures, and the claim it tests."""

    name: str
    title: str  # section heading
    claim: str  # the published claim under test (template prose, written once)
    arms: tuple[str, ...]  # columns naming an arm, in display order
    add_arms: Callable[[pd.DataFrame], pd.DataFrame]  # adds the ``arms`` columns to trials
    color: str = "arm"  # Pareto-plot colour column ("family" uses the dashboard's colours)
    by_family: bool = False  # also an effect table by placement family
    lines: tuple[str, str] | None = None  # (x, line) for effect_lines_figure
    optional: bool = False  # no section unless the database (or the file) has it
    preset: str = ""  # the search.run preset it was run from, when not ``name`` (variants)

    @property
    def study_preset(self) -> str:
        """The ``study=`` preset of ``python -m search.run`` for this study."""
        return self.preset or self.name


# --- arms of each study -----------------------------------------------------------------------


def _network(df: pd.DataFrame) -> pd.Series:
    labels = df["label"] if "label" in df else pd.Series(None, index=df.index, dtype=object)
    return labels.where(labels.notna() & (labels != ""), df["arch_id"].astype(str).str[:8])


def _block_cols(df: pd.DataFrame, field_name: str) -> list[str]:
    return [c for c in df.columns if c.startswith("stage") and c.endswith(f".{field_name}")]


def _temporal_blocks(df: pd.DataFrame) -> pd.Series:
    """Blocks (stem excluded) that mix frames: kind other than 2D and t_kernel > 1."""
    count = pd.Series(0, index=df.index)
    for col in _block_cols(df, "kind"):
        t_col = col.removesuffix(".kind") + ".t_kernel"
        t = df[t_col] if t_col in df else pd.Series(1, index=df.index)
        count += ((df[col].astype(str) != "2d") & (t.fillna(1) > 1)).astype(int)
    return count


def _arms_bottom_vs_top(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(network=_network(df))
    df["arm"] = df["network"]
    df["3D blocks"] = _temporal_blocks(df)
    return df


def _arms_conv_kinds(df: pd.DataFrame) -> pd.DataFrame:
    kind = _network(df)
    if "stage1.block1.kind" in df:  # a network without a label: its first block's kind
        kind = kind.where(df["label"].notna(), df["stage1.block1.kind"].astype(str))
    return df.assign(kind=kind, arm=kind)


def _arms_temporal_extent(df: pd.DataFrame) -> pd.DataFrame:
    t_cols = _block_cols(df, "t_kernel")
    t = df[t_cols].max(axis=1).fillna(1).astype(int) if t_cols else pd.Series(1, index=df.index)
    clip = df["clip_len"].astype(int) if "clip_len" in df else pd.Series(0, index=df.index)
    df = df.assign(t_kernel=t, clip_len=clip)
    df["arm"] = "t=" + t.astype(str) + ", T=" + clip.astype(str)
    return df


def _arms_inflation(df: pd.DataFrame) -> pd.DataFrame:
    infl_cols = [c for c in df.columns if c.endswith(".inflate")]
    from_spec = (df[infl_cols].fillna(False).astype(bool).any(axis=1) if infl_cols
                 else pd.Series(False, index=df.index))
    design = df["design_family"] if "design_family" in df else pd.Series(None, index=df.index)
    init = design.where(design.isin(["inflated", "scratch"]),
                        from_spec.map({True: "inflated", False: "scratch"}))
    network = _network(df)
    kind = network.str.replace(r"_(inflated|scratch)$", "", regex=True)
    return df.assign(kind=kind, init=init, arm=kind + " " + init)


def _arms_family(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(arm=df["family"].astype(str))


STUDIES: tuple[Study, ...] = (
    Study("bottom_vs_top", "Where should 3D convolution live? (bottom- vs top-heavy)",
          "Tran et al. 2018 (R(2+1)D): bottom-heavy mixed convolutions (MCx) are more accurate "
          "than top-heavy ones (rMCx) at equal depth. Xie et al. 2018 (S3D): top-heavy is the "
          "better speed–accuracy trade-off, because 3D convolutions on downsampled maps are "
          "cheap.",
          arms=("family", "network"), add_arms=_arms_bottom_vs_top, color="family",
          by_family=True),
    Study("conv_kinds", "Which temporal convolution? (2D, 3D, P3D-A/B/C, mix)",
          "Qiu et al. 2017 (P3D): a mix of sequential (A), parallel (B) and hybrid (C) "
          "factorized blocks is best.",
          arms=("kind",), add_arms=_arms_conv_kinds),
    Study("temporal_extent", "How far in time? (temporal extent × clip length)",
          "Varol et al. 2018 (long-term temporal convolutions): longer temporal extents help "
          "tasks with long-range structure.",
          arms=("clip_len", "t_kernel"), add_arms=_arms_temporal_extent,
          lines=("t_kernel", "clip_len")),
    Study("inflation", "Does inflating 2D weights help? (inflated vs scratch)",
          "Carreira & Zisserman 2017 (I3D): inflating 2D-pretrained weights helps when video "
          "data is scarce.",
          arms=("kind", "init"), add_arms=_arms_inflation),
    Study("free_search", "Free search (NSGA-II under a MAC budget)",
          "What a free multi-objective search over per-block conv choices finds.",
          arms=("family",), add_arms=_arms_family, color="family", optional=True),
)


# --- tables -----------------------------------------------------------------------------------


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


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _resources(db: Any, study: str) -> list[dict[str, Any]]:
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
            f"{{{seeds}}}. Trial time {_hms(c['trial_s'])} (Σ finished − started), of which "
            f"training {_hms(c['train_s'])} (Σ epoch_time_s over {c['epochs']} epochs).")
    if pd.notna(c["first_start"]):
        same_day = (pd.notna(c["last_finish"])
                    and c["last_finish"].date() == c["first_start"].date())
        end = ("still running" if pd.isna(c["last_finish"]) else
               f"{c['last_finish']:%H:%M:%S}" if same_day else
               f"{c['last_finish']:%Y-%m-%d %H:%M:%S}")
        text += (f" Wall clock {c['first_start']:%Y-%m-%d %H:%M:%S} → {end} UTC "
                 f"({_hms(c['span_s'])})")
        if c["span_s"] and math.isfinite(c["span_s"]) and c["span_s"] > 0:
            text += f", {c['trial_s'] / c['span_s']:.1f} trials at a time on average"
        text += "."
    if c["cpus"]:
        text += (f" Each trial asked for {'/'.join(map(_num, c['cpus']))} CPU and "
                 f"{'/'.join(map(_num, c['gpus']))} GPU.")
    return text


def _find(config: dict[str, Any], *path: str) -> Any:
    value: Any = config
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _join(*items: str | None) -> str:
    return ", ".join(i for i in items if i)


def _if(value: Any, text: str) -> str | None:
    """``text`` formatted with ``value``, or None when the config lacks it."""
    return None if value is None or value == [] else text.format(value)


def setup_markdown(config: dict[str, Any]) -> str:
    """The setup paragraph: task, data, training budget, from the stored config snapshot."""
    data, train, study = (config.get(k) or {} for k in ("data", "train", "study"))
    parts = []
    if data:
        clips = "/".join(map(str, study.get("clip_lens") or [data.get("clip_len", "?")]))
        size = data.get("size", "?")
        inner = _join(_if(data.get("num_classes"), "{} classes"),
                      _if(data.get("n_train"), "{} train"), _if(data.get("n_val"), "{} val"))
        parts.append(f"task `{data.get('task', '?')}`" + (f" ({inner})" if inner else "")
                     + f", clips of {clips} × {size} × {size}")
    if train:
        parts.append(_join(_if(train.get("epochs"), "{} epochs"),
                           _if(train.get("batch_size"), "batch {}"),
                           _if(train.get("optimizer"), "{}"), _if(train.get("lr"), "lr {}")))
    if study.get("design") == "inflation" and study.get("pretrain_epochs"):
        parts.append(f"2D twin pretrained {study['pretrain_epochs']} epochs on single frames")
    scheduler = _find(config, "study", "scheduler", "kind")
    if scheduler and scheduler != "none":
        parts.append(f"scheduler {scheduler}")
    if study.get("sampler") and study.get("sampler") != "grid":
        parts.append(_join(f"sampler {study['sampler']}",
                           _if(study.get("num_samples"), "{} samples")))
    parts = [p for p in parts if p]
    return "**Setup.** " + "; ".join(parts) + "." if parts else ""


# --- the command that made it ------------------------------------------------------------------

# Config keys that say where and how fast a study ran, not what it computed.
NOT_OVERRIDES = ("storage", "hardware", "progress_interval_s", "summary")
_PRESETS: dict[str, dict[str, Any] | None] = {}  # preset name -> effective config (per process)


def preset_configs(presets: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each preset's effective config, from ``python -m search.run study=NAME --cfg``.

    A subprocess, because ``search.run`` reaches torch and ray, which analysis must not import;
    the presets run in parallel and are cached for the process. None where it fails.
    """
    import yaml

    todo = sorted({p for p in presets if p not in _PRESETS})
    root = Path(__file__).resolve().parents[1]  # where the search package is, installed or not
    procs = {p: subprocess.Popen([sys.executable, "-m", "search.run", f"study={p}", "--cfg"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 cwd=root)
             for p in todo}
    for preset, proc in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=120)
            value = yaml.safe_load(stdout) if proc.returncode == 0 else None
        except (subprocess.TimeoutExpired, yaml.YAMLError):
            proc.kill()
            value = None
        _PRESETS[preset] = value if isinstance(value, dict) else None
    return {p: _PRESETS[p] for p in presets}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return f"'{text}'" if re.search(r"[\s,\[\]{}=:'\"()*]", text) or not text else text


def run_command(stored: dict[str, Any], preset: str,
                preset_config: dict[str, Any] | None) -> str:
    """``python -m search.run study=PRESET key=value ...`` that reproduces ``stored``.

    The overrides are the keys whose stored value differs from the preset's (keys the stored
    config lacks, added to the code later, are left out); where and how the study ran
    (``storage``, ``hardware.*``) is not part of it.
    """
    command = f"python -m search.run study={preset}"
    if preset_config is None or not stored:
        return command
    mine, theirs = _flatten(stored), _flatten(preset_config)
    overrides = [f"{key}={_override_value(mine[key])}" for key in sorted(mine)
                 if key in theirs and mine[key] != theirs[key]
                 and not key.startswith(NOT_OVERRIDES)]
    return " ".join([command, *overrides])


# --- one study --------------------------------------------------------------------------------


@dataclass
class StudyOutput:
    """What one study produces: the markdown block, CSV tables and figures by file name."""

    block: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)


def _link(name: str) -> str:
    return f"{FIG_DIR}/{name}"


def _csv_note(name: str) -> str:
    return f"CSV: [{_link(name)}]({_link(name)})"


def build_study(db: Any, study: Study,
                preset_config: dict[str, Any] | None = None) -> StudyOutput:
    """Figures, tables and the markdown block of one study present in the database.

    ``preset_config`` is the effective config of the study's preset (``preset_configs``), to
    write the command that reproduces the study; without it the command has no overrides.
    """
    df = study.add_arms(load_trials(db, study.name))
    curves = load_curves(db, study.name, names=["epoch_time_s"])
    c = compute_summary(df, curves["value"].dropna() if len(curves) else pd.Series(dtype=float),
                        _resources(db, study.name))
    out = StudyOutput("")
    config = study_config(db, study.name)
    command = run_command(config, study.study_preset, preset_config)
    parts = [p for p in (setup_markdown(config), compute_markdown(c)) if p]
    parts.append(f"**Produced by** `{command}` (plus `storage=` where the database lives).")
    out.tables[f"{study.name}_compute.csv"] = pd.DataFrame([{
        "study": study.name, **{k: v for k, v in c.items() if k not in ("cpus", "gpus", "seeds")},
        "seeds": " ".join(map(str, c["seeds"]))}])
    data = completed(df, METRIC)
    if data.empty:
        parts.append(f"No COMPLETE trial with `{METRIC}` yet: nothing to compare.")
        out.block = "\n\n".join(parts)
        return out

    table = arm_table(df, study.arms)
    summary = arch_summary(df, METRIC)
    extra = [c for c in dict.fromkeys(["arm", *study.arms]) if c not in summary]
    summary = summary.merge(df.groupby("arch_id")[extra].first(), left_on="arch_id",
                            right_index=True, how="left")
    front = credible_front(summary, METRIC)
    pareto = figures.pareto_figure(summary, front, metric=METRIC, color=study.color)
    pareto.update_layout(title=f"{study.name}: {pareto.layout.title.text}")
    if study.color == "arm":
        pareto.update_layout(legend_title=" × ".join(study.arms))
    out.figures[f"{study.name}_pareto.png"] = pareto
    forest = figures.compare_figure(table, metric=METRIC,
                                    color="family" if "family" in table else "group")
    forest.update_layout(title=f"{study.name}: effect of each arm", height=160 + 40 * len(table),
                         margin={"t": 90})
    out.figures[f"{study.name}_effects.png"] = forest
    if study.lines:
        x, line = study.lines
        lines = figures.effect_lines_figure(table, x, line, metric=METRIC)
        lines.update_layout(title=f"{study.name}: {lines.layout.title.text}")
        out.figures[f"{study.name}_lines.png"] = lines
    for name in out.figures:
        kind = name.removesuffix(".png").rsplit("_", 1)[-1]
        parts.append(f"![{study.name}: {kind}]({_link(name)})\n\n{CAPTIONS[kind]}")
    arms_csv = f"{study.name}_arms.csv"
    out.tables[arms_csv] = table
    parts.append(
        f"**Effect table by {' × '.join(study.arms)}.** Mean of `{METRIC}` over COMPLETE trials "
        f"(of per-seed means), 95% Student-t interval over seeds; {baseline_text(table)}. "
        f"{_csv_note(arms_csv)}\n\n" + effect_markdown(table, study.arms))
    if study.by_family:
        fam = arm_table(df, ("family",), by="family")
        fam_csv = f"{study.name}_families.csv"
        out.tables[fam_csv] = fam
        forest_fam = figures.compare_figure(fam, metric=METRIC)
        forest_fam.update_layout(title=f"{study.name}: effect of each placement family",
                                 height=160 + 40 * len(fam), margin={"t": 90})
        name = f"{study.name}_families.png"
        out.figures[name] = forest_fam
        parts.append(f"**By placement family.** {_csv_note(fam_csv)}\n\n"
                     f"![{study.name}: families]({_link(name)})\n\n{CAPTIONS['families']}"
                     "\n\n" + effect_markdown(fam, ("family",)))
    parts.append(_contrasts_part(df, study, config, preset_config, out))
    front_csv = f"{study.name}_front.csv"
    out.tables[front_csv] = front
    parts.append(f"**Matched cost: the Pareto front of networks whose interval lies above "
                 f"chance** (higher `{METRIC}`, fewer GMACs). {_csv_note(front_csv)}\n\n"
                 + front_markdown(front))
    out.block = "\n\n".join(parts)
    return out


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
    table = declared_contrasts(df, declared, METRIC)
    name = f"{study.name}_contrasts.csv"
    out.tables[name] = table
    return (f"**Declared contrasts** (from {source}: {', '.join(f'`{c}`' for c in declared)}). "
            "Δ = A − B, the mean over the seeds both groups completed of the per-seed "
            "difference, with a Student-t 95% CI; p-values from the paired t-test, "
            f"Holm-adjusted over the {len(table)} comparison(s) of the study. "
            f"{_csv_note(name)}\n\n" + contrast_markdown(table))


# --- findings.md ------------------------------------------------------------------------------

BLOCK_RE = re.compile(r"<!-- BEGIN generated:(?P<name>[\w-]+) -->\n(?P<body>.*?)"
                      r"<!-- END generated:(?P=name) -->", re.DOTALL)
HEADER = """# Findings

What vidarch's shipped studies show on the built-in synthetic tasks, with 95% confidence
intervals over seeds. Hand-written prose lives outside the generated blocks; the blocks between
`<!-- BEGIN generated:... -->` and `<!-- END generated:... -->` are rewritten from the results
database by

```bash
make findings            # = python -m analysis.findings --db studies.db --out docs
```

which regenerates every figure (PNG, exported from the dashboard's plotly figures) and table
(markdown here, CSV in [findings/](findings/)).

## Compute

"""


def begin(name: str) -> str:
    """The marker that opens block ``name``."""
    return f"<!-- BEGIN generated:{name} -->"


def end(name: str) -> str:
    """The marker that closes block ``name``."""
    return f"<!-- END generated:{name} -->"


def _block(name: str, body: str) -> str:
    return f"{begin(name)}\n{body.rstrip()}\n{end(name)}"


def study_section(study: Study) -> str:
    """The template section of a study: heading, claim, a prose placeholder, the block."""
    return (f"## {study.title}\n\n*Claim under test.* {study.claim}\n\n"
            f"*What we find.* (to be written: which claim holds here, which does not, how sure "
            f"we are.)\n\n{_block(study.name, '')}\n")


def check_markers(text: str) -> None:
    """Raise ``ValueError`` when a BEGIN/END marker has no partner."""
    begins = re.findall(r"<!-- BEGIN generated:([\w-]+) -->", text)
    ends = re.findall(r"<!-- END generated:([\w-]+) -->", text)
    found = {m.group("name") for m in BLOCK_RE.finditer(text)}
    for name in begins + ends:
        if name not in found or begins.count(name) != 1 or ends.count(name) != 1:
            raise ValueError(f"findings.md: marker 'generated:{name}' is unpaired or repeated; "
                             f"fix the file by hand (each block needs one BEGIN and one END)")


def render(text: str | None, blocks: dict[str, str], studies: Sequence[Study]) -> str:
    """``text`` with every block in ``blocks`` rewritten; missing sections appended."""
    if text is None:
        text = HEADER + _block("overview", "") + "\n\n"
    check_markers(text)
    present = {m.group("name") for m in BLOCK_RE.finditer(text)}
    if "overview" not in present:
        text = text.rstrip("\n") + "\n\n## Compute\n\n" + _block("overview", "") + "\n"
    for study in studies:
        if study.name not in present and study.name in blocks:
            text = text.rstrip("\n") + "\n\n" + study_section(study)

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            return match.group(0)
        return _block(name, blocks[name])

    return BLOCK_RE.sub(replace, text)


def overview_markdown(computes: dict[str, dict[str, Any] | None]) -> str:
    """Compute of every shipped study in one table."""
    rows = []
    for name, c in computes.items():
        if c is None:
            rows.append([name, "not run", "", "", "", "", ""])
            continue
        rows.append([name, str(c["trials"]),
                     str(c["COMPLETE"]), str(c["PRUNED"] + c["FAILED"] + c["RUNNING"]),
                     _hms(c["trial_s"]), _hms(c["train_s"]), _hms(c["span_s"])])
    return md_table(["study", "trials", "COMPLETE", "other", "trial time", "training time",
                     "wall clock"], rows, [False] + [True] * 6)


def _missing_note(name: str) -> str:
    return (f"*Not in this database yet.* Run `python -m search.run study={name}` "
            f"(same `storage=`) and then `make findings`.")


# --- figures export ---------------------------------------------------------------------------


def ensure_browser() -> None:
    """Point kaleido at Debian's chromium (``BROWSER_PATH``, read by choreographer) unless set.

    Kaleido 1.x drives a Chrome it looks up on PATH under Chrome's names; Debian's binary is
    ``/usr/bin/chromium``, which it does not always find.
    """
    if not os.environ.get("BROWSER_PATH") and Path(DEFAULT_BROWSER).exists():
        os.environ["BROWSER_PATH"] = DEFAULT_BROWSER


def export_pngs(figs: dict[Path, go.Figure]) -> None:
    """Write every figure as PNG in one kaleido session; ``RuntimeError`` (one line) on failure."""
    if not figs:
        return
    ensure_browser()
    import plotly.io as pio

    paths = list(figs)
    try:
        pio.write_images([figs[p] for p in paths], paths, format="png", width=FIG_WIDTH,
                         height=[int(figs[p].layout.height or 500) for p in paths], scale=1)
    except Exception as exc:  # kaleido raises many types (no Chrome, timeouts, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeError(f"cannot export PNG figures ({first}); kaleido needs Chrome or "
                           f"Chromium (apt-get install chromium, or set BROWSER_PATH) — or "
                           f"rerun with --no-figures to write the tables only") from None


# --- the command ------------------------------------------------------------------------------


def plans(names: set[str]) -> list[Study]:
    """The shipped studies, each followed by its variants in the database.

    A study named ``<shipped>_<suffix>`` (e.g. ``inflation_small``, run with
    ``study=inflation study.name=inflation_small``) is read with the shipped study's arms.
    """
    out = []
    for study in STUDIES:
        out.append(study)
        for name in sorted(n for n in names if n.startswith(f"{study.name}_")):
            suffix = name.removeprefix(f"{study.name}_")
            out.append(dataclasses.replace(study, name=name, optional=True, preset=study.name,
                                           title=f"{study.title} — {suffix}"))
    return out


def generate(db: Any, out: Path, *, write_figures: bool = True,
             log: Callable[[str], None] = print) -> Path:
    """Regenerate ``out/findings.md`` and ``out/findings/`` from ``db``; returns the .md path.

    Raises:
        NoDataError: the database is missing, not vidarch, or holds no shipped study.
        ValueError: findings.md has broken markers.
        RuntimeError: PNG export failed.
    """
    studies = list_studies(db)
    names = set(studies["name"])
    if not names & {s.name for s in STUDIES}:
        raise NoDataError(f"none of the shipped studies ({', '.join(s.name for s in STUDIES)}) "
                          f"is in this database")
    md_path = out / "findings.md"
    text = md_path.read_text() if md_path.is_file() else None
    if text is not None:
        check_markers(text)
    has_block = {m.group("name") for m in BLOCK_RE.finditer(text or "")}
    fig_dir = out / FIG_DIR
    blocks: dict[str, str] = {}
    computes: dict[str, dict[str, Any] | None] = {}
    tables: dict[str, pd.DataFrame] = {}
    figs: dict[Path, go.Figure] = {}
    studies_here = plans(names)
    presets = preset_configs([s.study_preset for s in studies_here if s.name in names])
    for study in studies_here:
        if study.name not in names:
            if study.optional and study.name not in has_block:
                continue
            log(f"note: study {study.name!r} is not in the database; its section says so")
            blocks[study.name] = _missing_note(study.name)
            computes[study.name] = None
            continue
        result = build_study(db, study, presets[study.study_preset])
        blocks[study.name] = result.block
        computes[study.name] = result.tables[f"{study.name}_compute.csv"].iloc[0].to_dict()
        tables.update(result.tables)
        figs.update({fig_dir / name: fig for name, fig in result.figures.items()})
    blocks["overview"] = overview_markdown(computes)
    fig_dir.mkdir(parents=True, exist_ok=True)
    if write_figures:
        export_pngs(figs)
    for name, table in tables.items():
        table.to_csv(fig_dir / name, index=False, float_format="%.6g", lineterminator="\n")
    _remove_stale(fig_dir, {p.name for p in figs} | set(tables), write_figures)
    md_path.write_text(render(text, blocks, studies_here))
    log(f"wrote {md_path} ({len(tables)} tables, "
        f"{len(figs) if write_figures else 0} figures in {fig_dir})")
    return md_path


def _remove_stale(fig_dir: Path, keep: set[str], figures_written: bool) -> None:
    """Delete a shipped study's old PNG/CSV files that this run did not produce."""
    prefixes = tuple(f"{s.name}_" for s in STUDIES)
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
