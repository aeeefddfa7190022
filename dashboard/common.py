"""Shared dashboard plumbing: choosing the database and study, bounded caches, error messages.

Pages hold UI only; they get their data from the cached wrappers here, which call
``analysis``. Every cache is bounded (``max_entries``) and frames expire (``ttl``) so a study
that is still running shows up to date within ``TTL_S`` seconds (or at once with Reload).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy import Engine

import analysis
from analysis import NoDataError, aggregates, placements, unit_stats
from analysis.summary import _best_rows
from search.results import metrics

DEFAULT_DB = "studies.db"
ENV_DB = "VIDARCH_DB"  # database path or URL, when no --db is given
TTL_S = 30  # seconds before a cached frame is read again
SAMPLE = 2000  # trials the per-trial analyses (curves, fidelity) read from a larger study
IMPORTANCE_SAMPLE = 200  # trials Optuna's evaluators get (fANOVA fits a forest: 17 s at 450 here)
TOP_NETWORKS = 500  # networks the comparison pages list (best first)
MARGINAL_NETWORKS = 20_000  # networks the per-position effects read from a larger study
DEFAULT_METRIC = metrics.VAL_ACC1
CTX_KEY = "_vidarch_ctx"


@dataclass(frozen=True)
class Context:
    """What every page works on: the database, the study, the metric to rank by."""

    db: str  # what the user typed: a path or a URL
    study: str
    metric: str
    mode: str = metrics.MAX  # the metric's direction: "max" (higher is better) or "min"


@dataclass(frozen=True)
class Problem:
    """Why there is nothing to show, and the command that fixes it."""

    message: str
    hint: str = analysis.RUN_HINT


def default_db(argv: list[str] | None = None) -> str:
    """``--db PATH`` after ``streamlit run dashboard/app.py --``, else ``$VIDARCH_DB``, else
    ``studies.db``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args.db or os.environ.get(ENV_DB) or DEFAULT_DB


# --- bounded caches ---------------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def engine(db: str) -> Engine:
    """One read-only engine per database (failures are not cached: a fixed file works)."""
    return analysis.connect(db)


@st.cache_data(ttl=TTL_S, max_entries=8, show_spinner=False)
def studies(db: str) -> pd.DataFrame:
    """Studies with trial counts by state."""
    return analysis.list_studies(engine(db))


@st.cache_data(ttl=TTL_S, max_entries=8, show_spinner="Loading trials…")
def trials(db: str, study: str, arch_ids: tuple[str, ...] | None = None,
           trial_ids: tuple[int, ...] | None = None) -> pd.DataFrame:
    """``analysis.load_trials`` of one study: only of some archs or trials when given (pages
    read whole studies through the SQL aggregates below)."""
    return analysis.load_trials(engine(db), study,
                                arch_ids=list(arch_ids) if arch_ids is not None else None,
                                trial_ids=list(trial_ids) if trial_ids is not None else None)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def facts(db: str, study: str) -> aggregates.StudyFacts:
    """Counts by state, final metrics and compute used (``analysis.aggregates.study_facts``)."""
    return aggregates.study_facts(engine(db), study)


def spent(db: str, study: str) -> tuple[float, float]:
    """Seconds and GMACs of the finished trials (``analysis.aggregates.study_spent``)."""
    return _spent(db, study, stamp(db, study))


@st.cache_data(max_entries=16, show_spinner=False)
def _spent(db: str, study: str, version: tuple[tuple[str, int], ...]) -> tuple[float, float]:
    return aggregates.study_spent(engine(db), study)


def stamp(db: str, study: str) -> tuple[tuple[str, int], ...]:
    """What changes when a trial of the study starts or ends: its counts by state (read every
    ``TTL_S`` seconds). The costly aggregates are cached under it (an argument Streamlit hashes)
    rather than for ``TTL_S``:
    a million-trial study is summarised again when it changed, not every 30 s."""
    return tuple(facts(db, study).counts.items())


def table(db: str, study: str, metric: str) -> aggregates.ArchTable:
    """Per-network aggregates of one metric, grouped in SQL (shared, never modified)."""
    return _table(db, study, metric, stamp(db, study))


@st.cache_resource(max_entries=8, show_spinner="Summarising the networks…")
def _table(db: str, study: str, metric: str, version: tuple[tuple[str, int], ...]
           ) -> aggregates.ArchTable:
    return aggregates.arch_table(engine(db), study, metric)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def sample(db: str, study: str, limit: int = SAMPLE) -> pd.DataFrame:
    """Trial rows for the per-trial analyses: every trial of a study up to ``limit``
    COMPLETE ones, else an even sample of ``limit`` of them (``sample_note`` says so)."""
    ids = aggregates.sample_trial_ids(engine(db), study, limit)
    return trials(db, study, trial_ids=tuple(ids) if ids is not None else None)


def sample_note(db: str, study: str, limit: int = SAMPLE) -> str:
    """" — an even sample of N of its M COMPLETE trials" when ``sample`` is one, else ""."""
    done = facts(db, study).counts["COMPLETE"]
    return (f" — an even sample of {limit:,} of its {done:,} COMPLETE trials"
            if done > limit else "")


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def config(db: str, study: str) -> dict[str, Any]:
    """The study's config snapshot."""
    return analysis.study_config(engine(db), study)


def directions(db: str, study: str) -> dict[str, str]:
    """Metric directions the study declared (``study.directions``)."""
    return metrics.study_directions(config(db, study))


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner="Computing statistics…")
def verdict(db: str, study: str, metric: str, mode: str) -> dict[str, Any]:
    """``analysis.verdict`` (effect table, headline sentences) in the metric's direction."""
    return unit_stats.verdict(table(db, study, metric), mode=mode,
                              summary=arch_summary(db, study, metric, mode))


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def arch_summary(db: str, study: str, metric: str, mode: str) -> pd.DataFrame:
    """Per-arch means and CIs over seeds, chance and flags, best first."""
    return unit_stats.arch_summary(table(db, study, metric), mode=mode)


def with_spec(db: str, summary: pd.DataFrame, top: int) -> pd.DataFrame:
    """The first ``top`` rows of a summary with their flattened spec columns."""
    head = summary.head(top)
    fields = placements.spec_fields(engine(db), head["arch_id"].tolist())
    return head.join(fields, on="arch_id") if len(fields) else head


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def best_per_group(db: str, study: str, metric: str, mode: str) -> pd.DataFrame:
    """The best arch of each placement family, in the metric's direction."""
    return _best_rows(arch_summary(db, study, metric, mode), "family", mode)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def contrasts(db: str, study: str, metric: str, mode: str) -> pd.DataFrame:
    """The study's declared contrasts (empty when it declares none)."""
    return unit_stats.declared_contrasts(engine(db), study,
                                         analysis.study_contrasts(config(db, study)), metric,
                                         mode=mode)


def marginal_effects(db: str, study: str, metric: str) -> tuple[pd.DataFrame, str]:
    """Per-position marginal effects, and " — over a sample of N of its M networks ..." when
    the study has more than ``MARGINAL_NETWORKS`` (reading every network's layers takes ~5 s
    per 200k)."""
    n = len(table(db, study, metric).archs)
    note = (f" — over a sample of {MARGINAL_NETWORKS:,} of its {n:,} networks (those with the "
            f"lowest arch ids: a hash of the spec, unrelated to how the network is built)"
            if n > MARGINAL_NETWORKS else "")
    return _marginal_effects(db, study, metric, stamp(db, study)), note


@st.cache_data(max_entries=16, show_spinner="Reading the networks' layers…")
def _marginal_effects(db: str, study: str, metric: str,
                      version: tuple[tuple[str, int], ...]) -> pd.DataFrame:
    summary = table(db, study, metric)
    n = len(summary.archs)
    if n > MARGINAL_NETWORKS:  # the lowest arch ids: one range of the placements' index
        keep = np.zeros(n, dtype=bool)
        keep[np.argsort(summary.archs.index.to_numpy(dtype=object))[:MARGINAL_NETWORKS]] = True
        summary = summary.subset(keep)
    fields = placements.spec_fields(engine(db), summary.archs.index.tolist(), "kind")
    return unit_stats.marginal_effects(summary, fields)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def curve_names(db: str, study: str) -> list[str]:
    """Per-epoch metric names of a study."""
    return analysis.curve_names(engine(db), study)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner="Loading curves…")
def curves(db: str, study: str, names: tuple[str, ...] | None = None,
           trial_ids: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Per-epoch metrics (long), optionally of some metrics or trials only."""
    return analysis.load_curves(engine(db), study,
                                trial_ids=list(trial_ids) if trial_ids is not None else None,
                                names=list(names) if names is not None else None)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def arch(db: str, arch_id: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-layer table (spec and MACs) and the stored row of one arch."""
    _, layers, record = analysis.load_arch(engine(db), arch_id)
    record.pop("spec_json", None)
    record.pop("per_layer_json", None)
    return pd.DataFrame(layers), record


def clear_caches() -> None:
    """Forget every cached frame and engine (the Reload button)."""
    st.cache_data.clear()
    st.cache_resource.clear()


# --- context and messages ---------------------------------------------------------------------


def show_problem(problem: Problem) -> None:
    """A helpful message with the command to run — never a traceback."""
    st.error(problem.message)
    st.markdown("Fill the database by running a study:")
    st.code(problem.hint, language="bash")
    st.caption("Or try the dashboard on synthetic data: `python -m analysis.synthetic demo.db`, "
               "then enter `demo.db` as the database in the sidebar.")


def sidebar() -> Context | Problem:
    """Database, study and metric pickers; the chosen context, or why there is none."""
    st.session_state.setdefault("db", default_db())
    with st.sidebar:
        db = st.text_input("Results database", key="db",
                           help="A path (SQLite) or a SQLAlchemy URL, e.g. postgresql://…").strip()
        if st.button("Reload data", help=f"Data refreshes every {TTL_S} s on its own"):
            clear_caches()
        try:
            listing = studies(db)
        except NoDataError as exc:
            return Problem(str(exc), exc.hint)
        if listing.empty:
            return Problem(f"{db} is a vidarch database without any study yet.")
        names = listing["name"].tolist()
        if st.session_state.get("study") not in names:
            st.session_state["study"] = ("bottom_vs_top" if "bottom_vs_top" in names
                                         else names[0])
        counts = dict(zip(listing["name"], listing["n_trials"], strict=True))
        study = st.selectbox("Study", names, key="study",
                             format_func=lambda n: f"{n} ({counts[n]} trials)")
        try:
            known = facts(db, study)
        except NoDataError as exc:
            return Problem(str(exc), exc.hint)
        declared = directions(db, study)
        # only metrics with a direction that vary (val/acc5 = 1.0 on 4 classes ranks nothing)
        names = known.informative(declared) or [DEFAULT_METRIC]
        if st.session_state.get("metric") not in names:
            st.session_state["metric"] = names[0]
        metric = st.selectbox("Metric", names, key="metric",
                              help="Final metric that ranks networks on every page; constant "
                                   "metrics are not offered")
        mode = metrics.direction(metric, declared) if metrics.has_direction(metric, declared) \
            else metrics.MAX
        st.caption(f"{metrics.wording(mode).capitalize()} · {known.n_trials:,} trials · refreshed "
                   f"every {TTL_S} s")
    return Context(db=db, study=study, metric=metric, mode=mode)


def context(*, need_complete: bool = True) -> Context:
    """The page's context; shows the problem and stops the page when there is none."""
    ctx = st.session_state.get(CTX_KEY)
    if isinstance(ctx, Problem) or ctx is None:
        show_problem(ctx or Problem("No database chosen."))
        st.stop()
    assert isinstance(ctx, Context)
    if need_complete:
        known = facts(ctx.db, ctx.study)
        if not known.has_values(ctx.metric):
            counts = known.counts
            show_problem(Problem(
                f"Study {ctx.study!r} has no completed trial with {ctx.metric} yet "
                f"({', '.join(f'{v} {k.lower()}' for k, v in counts.items())}).",
                hint=f"python -m search.run study={ctx.study}"))
            st.stop()
    return ctx


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plot(fig: Any, key: str | None = None) -> None:
    """``st.plotly_chart`` full width."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def number_columns(**labels: str) -> dict[str, Any]:
    """Formats of the numeric columns the pages' tables share; ``labels`` renames some."""
    nc = st.column_config.NumberColumn
    formats = {
        "mean": ("mean", "%.4f"), "ci_low": ("CI low", "%.4f"), "ci_high": ("CI high", "%.4f"),
        "best": ("best", "%.4f"), "std": ("std", "%.4f"), "gmacs": ("GMACs", "%.3g"),
        "chance": ("chance", "%.3f"), "majority": ("majority", "%.3f"),
        "train_val_gap": ("train−val gap", "%.3f"), "mean_a": ("mean A", "%.4f"),
        "mean_b": ("mean B", "%.4f"), "p_t": ("p paired t", "%.3g"),
        "p_holm": ("p Holm", "%.3g"), "wilcoxon_floor": ("Wilcoxon floor", "%.3g"),
        "params": ("params", "compact"), "latency_ms": ("latency ms", "%.1f"),
        "delta": ("Δ", "%+.4f"), "p_paired_t": ("p paired t", "%.3g"),
        "p_wilcoxon": ("p Wilcoxon", "%.3g"), "p_welch": ("p Welch", "%.3g"),
    }
    return {key: nc(labels.get(key, label), format=fmt) for key, (label, fmt) in formats.items()}


# --- budget, importance, comparison, fidelity (cached wrappers over analysis) ----------------


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def budget_answer(db: str, study: str, metric: str, axis: str,
                  budget: float) -> analysis.BudgetAnswer:
    """``analysis.at_budget`` of one study at one budget (``axis`` = macs, params, latency_ms)."""
    return unit_stats.at_budget(table(db, study, metric), **{axis: budget})


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def chance(db: str, study: str, metric: str) -> float:
    """The study's chance accuracy (``analysis.checks.baselines`` of its COMPLETE trials)."""
    return float(unit_stats.baselines(table(db, study, metric))["chance"])


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner="Asking Optuna's importance evaluators…")
def importance(db: str, study: str, metric: str, evaluator: str = "ped_anova",
               fanova: bool = True) -> pd.DataFrame:
    """``analysis.importance`` (PED-ANOVA, and fANOVA unless ``fanova`` is False) of one study
    (``sample``)."""
    return analysis.importance(sample(db, study, IMPORTANCE_SAMPLE), metric, evaluator=evaluator,
                               fanova=fanova)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner="Bootstrapping the per-position view…")
def position_effects(db: str, study: str, metric: str, level: str = "block") -> pd.DataFrame:
    """``analysis.position_effects`` of one study (``sample``)."""
    return analysis.position_effects(sample(db, study, IMPORTANCE_SAMPLE), metric, level=level)


def top_networks(db: str, study: str, metric: str, mode: str) -> pd.DataFrame:
    """Trials of the ``TOP_NETWORKS`` best networks (all of a smaller study)."""
    ids = arch_summary(db, study, metric, mode)["arch_id"].head(TOP_NETWORKS)
    return trials(db, study, arch_ids=tuple(ids))


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def choice_table(db: str, study: str, metric: str, mode: str,
                 fields: tuple[str, ...] = ("kind",)) -> pd.DataFrame:
    """``analysis.choice_table`` (one row per network) of the best networks."""
    return analysis.choice_table(top_networks(db, study, metric, mode), metric, fields=fields)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def top_trials(db: str, study: str, metric: str, mode: str, limit: int) -> pd.DataFrame:
    """The ``limit`` best trials by ``metric`` with their hardware and placement (SQL)."""
    return aggregates.top_trials(engine(db), study, metric, mode, limit=limit)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def trial_page(db: str, study: str, names: tuple[str, ...], where: aggregates.TrialFilter,
               offset: int, limit: int) -> tuple[pd.DataFrame, int]:
    """One page of the trial table and how many trials pass the filter (SQL)."""
    return aggregates.trial_page(engine(db), study, list(names), where=where, offset=offset,
                                 limit=limit)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def studies_of_arch(db: str, arch_id: str) -> list[str]:
    """The studies that ran one network."""
    return analysis.studies_of_arch(engine(db), arch_id)


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def cross_study(db: str, arch_id: str, metric: str) -> pd.DataFrame:
    """``analysis.cross_study`` of one network: its trials, ranked among each study's
    networks by the SQL aggregates."""
    names = studies_of_arch(db, arch_id)
    return analysis.cross_study({n: trials(db, n, arch_ids=(arch_id,)) for n in names}, arch_id,
                                metric, {n: config(db, n) for n in names},
                                nets_of={n: unit_stats.network_table(table(db, n, metric))
                                         for n in names})


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner="Checking early rankings…")
def fidelity(db: str, study: str, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``analysis.fidelity`` (per epoch) and ``analysis.clip_fidelity`` of one study
    (``sample``)."""
    df = sample(db, study)
    curves_of = curves(db, study, names=(metric,), trial_ids=tuple(df["trial_id"]))
    return (analysis.fidelity(curves_of, df, metric), analysis.clip_fidelity(df, metric))
