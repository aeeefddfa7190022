"""A study's summaries computed in the database: GROUP BY per network, rows only when shown.

``load_trials`` pulls every trial into pandas; at a million trials that is a minute. The pages'
summaries need far less: per network (arch) the per-seed values of one metric and the sums the
protocol's checks average; per family, sums of those. ``arch_table`` gets them in one
``GROUP BY arch_id`` over COMPLETE trials with a finite value (SQLAlchemy Core: SQLite and
PostgreSQL), one column per seed (a cell is trained once per study, so a network's value at a
seed is one trial's), and joins the stored placement facts (``analysis.placements``). The
statistics are the ones ``analysis.stats`` computes from trials: means, standard deviations and
Student-t intervals over seeds, computed here in Python from those per-seed values
(``analysis.unit_stats``). Trial rows are fetched a page at a time (``trial_page``) or for the
few trials a page names (``top_trials``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Float, and_, case, cast, false, func, select
from sqlalchemy.orm import aliased

from analysis.loading import NoDataError, _raw, _read_sql, _study_ids, _with_hardware, opened
from analysis.placements import read_placements
from search import metrics
from search.schema import ArchRow, ResultRow, TrialRow

MAX_SEED_COLUMNS = 64  # seeds pivoted into columns; more seeds are read as (arch, seed) rows
STATES = ("COMPLETE", "PRUNED", "FAILED", "RUNNING")


def study_id(engine: Engine, study: str) -> int:
    """The id of ``study``; ``NoDataError`` when there is none."""
    return next(iter(_study_ids(engine, study)))


def _finished_seconds(engine: Engine) -> Any:
    """A trial's duration in seconds as SQL (NULL while running), per dialect."""
    if engine.dialect.name == "sqlite":
        return (func.julianday(TrialRow.finished_at) - func.julianday(TrialRow.started_at)) \
            * 86400.0
    return func.extract("epoch", TrialRow.finished_at - TrialRow.started_at)


@dataclass(frozen=True)
class StudyFacts:
    """What the sidebar and the headline counts need, from three small queries."""

    study: str
    counts: dict[str, int]  # trials per state, every state present
    metrics: pd.DataFrame  # final metrics over COMPLETE trials: name, n, min, max
    compute_s: float  # summed wall-clock seconds of finished trials
    gmacs_total: float  # summed GMACs per clip of finished trials

    @property
    def n_trials(self) -> int:
        """Trials of the study, every state."""
        return sum(self.counts.values())

    def informative(self, declared: dict[str, str] | None = None) -> list[str]:
        """``analysis.checks.informative_metrics``: a direction, and not constant."""
        m = self.metrics
        names = [n for n, lo, hi, k in zip(m["name"], m["min"], m["max"], m["n"], strict=True)
                 if "/" in n and metrics.has_direction(n, declared) and not (k >= 2 and lo == hi)]
        preferred = [n for n in metrics.PREFERRED if n in names]
        return preferred + [n for n in names if n not in preferred]

    def has_values(self, metric: str) -> bool:
        """Whether a COMPLETE trial has a finite ``metric``."""
        return bool((self.metrics["name"] == metric).any()) and self.counts["COMPLETE"] > 0


def study_facts(db: Any, study: str) -> StudyFacts:
    """Counts by state, final metrics' ranges and compute used by ``study``, in SQL."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        counts = _read_sql(select(_raw(TrialRow.state), func.count().label("n"))
                           .where(TrialRow.study_id == sid).group_by(TrialRow.state), engine)
        by_state = dict(zip(counts["state"], counts["n"], strict=True))
        complete = select(TrialRow.id).where(TrialRow.study_id == sid,
                                             TrialRow.state == "COMPLETE")
        ranges = _read_sql(select(ResultRow.name, func.count(ResultRow.value).label("n"),
                                  func.min(ResultRow.value).label("min"),
                                  func.max(ResultRow.value).label("max"))
                           .where(ResultRow.trial_id.in_(complete),
                                  ResultRow.value_type == "FINITE", ResultRow.value.isnot(None))
                           .group_by(ResultRow.name), engine)
        ranges = ranges[ranges["n"] > 0].reset_index(drop=True)
        finished = TrialRow.state.in_(["COMPLETE", "PRUNED", "FAILED"])
        spent = _read_sql(select(func.sum(_finished_seconds(engine)).label("s"),
                                 func.sum(cast(ArchRow.macs, Float)).label("macs"))
                          .join(ArchRow, ArchRow.arch_id == TrialRow.arch_id)
                          .where(TrialRow.study_id == sid, finished), engine)
    seconds, macs = (pd.to_numeric(spent.iloc[0], errors="coerce").fillna(0.0).tolist()
                     if len(spent) else (0.0, 0.0))
    return StudyFacts(study, {s: int(by_state.get(s, 0)) for s in STATES}, ranges,
                      float(seconds), float(macs) / 1e9)


@dataclass(frozen=True)
class ArchTable:
    """One row per network of a study with per-seed values of one metric (COMPLETE trials).

    ``archs``: arch_id (index), label, design_family, n (trials), the checks' sums
    (``chance_sum``/``chance_n``, ``majority_sum``/``majority_n``, ``gap_sum``/``gap_n``,
    ``n_undertrained``), costs (macs, gmacs, params, latency_ms) and placement facts (family,
    name, t_com, ...). ``values``: archs × seeds, the metric's value at each seed (NaN where
    the network has no COMPLETE trial at that seed), rows aligned with ``archs``.
    """

    metric: str
    archs: pd.DataFrame
    values: np.ndarray
    seeds: np.ndarray

    def subset(self, mask: np.ndarray | pd.Series) -> ArchTable:
        """The networks where ``mask`` holds."""
        keep = np.asarray(mask, dtype=bool)
        return ArchTable(self.metric, self.archs[keep], self.values[keep], self.seeds)


def _gap() -> Any:
    """``analysis.checks.trial_gap`` as SQL: the stored gap, else train/acc1 - val/acc1."""
    def final(name: str) -> Any:
        r = aliased(ResultRow)
        return (select(r.value).where(r.trial_id == TrialRow.id, r.name == name,
                                      r.value_type == "FINITE").scalar_subquery())
    return func.coalesce(TrialRow.train_val_gap,
                         final(metrics.TRAIN_ACC1) - final(metrics.VAL_ACC1))


def arch_table(db: Any, study: str, metric: str) -> ArchTable:
    """Per-network sums and per-seed values of ``metric`` over COMPLETE trials, in SQL."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        r = aliased(ResultRow)
        base = (TrialRow.study_id == sid, TrialRow.state == "COMPLETE")
        joined = and_(r.trial_id == TrialRow.id, r.name == metric, r.value_type == "FINITE",
                      r.value.isnot(None))
        seeds = np.array(sorted(_read_sql(select(TrialRow.seed).distinct().join(r, joined)
                                          .where(*base), engine)["seed"].astype(int)), dtype=int)
        pivot = len(seeds) <= MAX_SEED_COLUMNS
        gap = _gap()
        per_seed = [func.max(case((TrialRow.seed == int(s), r.value))).label(f"v{i}")
                    for i, s in enumerate(seeds)] if pivot else []
        stmt = (select(TrialRow.arch_id, func.max(TrialRow.label).label("label"),
                       func.max(TrialRow.family).label("design_family"),
                       func.count().label("n"),
                       func.sum(TrialRow.chance_acc).label("chance_sum"),
                       func.count(TrialRow.chance_acc).label("chance_n"),
                       func.sum(TrialRow.majority_acc).label("majority_sum"),
                       func.count(TrialRow.majority_acc).label("majority_n"),
                       func.sum(gap).label("gap_sum"), func.count(gap).label("gap_n"),
                       func.sum(case((TrialRow.plateaued == false(), 1), else_=0))
                       .label("n_undertrained"), *per_seed)
                .join(r, joined).where(*base).group_by(TrialRow.arch_id))
        archs = _read_sql(stmt, engine)
        if pivot:
            values = archs[[f"v{i}" for i in range(len(seeds))]].to_numpy(dtype=float,
                                                                          na_value=np.nan)
            archs = archs.drop(columns=[f"v{i}" for i in range(len(seeds))])
        else:
            long = _read_sql(select(TrialRow.arch_id, TrialRow.seed, r.value).join(r, joined)
                             .where(*base), engine)
            wide = long.pivot_table(index="arch_id", columns="seed", values="value")
            values = wide.reindex(index=archs["arch_id"], columns=seeds).to_numpy(dtype=float)
        ids = select(TrialRow.arch_id).where(*base).distinct()
        costs = _read_sql(select(ArchRow.arch_id, ArchRow.macs, ArchRow.params,
                                 ArchRow.latency_ms).where(ArchRow.arch_id.in_(ids)), engine)
        places = read_placements(engine, ids)
    archs = archs.set_index("arch_id")
    for col in ("chance_sum", "majority_sum", "gap_sum"):
        archs[col] = pd.to_numeric(archs[col], errors="coerce").astype(float)
    costs = costs.set_index("arch_id")
    costs["latency_ms"] = pd.to_numeric(costs["latency_ms"], errors="coerce").astype(float)
    costs["gmacs"] = costs["macs"] / 1e9
    archs = archs.join(costs).join(places)
    return ArchTable(metric, archs, values, seeds)


def _sql_value(metric: str) -> Any:
    """The column of one final metric of a trial (NULL when missing or not finite)."""
    r = aliased(ResultRow)
    return (select(r.value).where(r.trial_id == TrialRow.id, r.name == metric,
                                  r.value_type == "FINITE").scalar_subquery())




@dataclass(frozen=True)
class TrialFilter:
    """What the trial table filters on (every part optional)."""

    states: tuple[str, ...] = ()
    families: tuple[str, ...] = ()  # placement families (stored or computed per arch)
    text: str = ""  # in the label or the arch_id
    gmacs: tuple[float, float] | None = None


def _trial_select(engine: Engine, sid: int, names: list[str], where: TrialFilter,
                  family_ids: list[str] | None) -> Any:
    cols = [TrialRow.id.label("trial_id"), TrialRow.number, _raw(TrialRow.state), TrialRow.seed,
            TrialRow.label, TrialRow.arch_id, TrialRow.family.label("design_family"),
            (cast(ArchRow.macs, Float) / 1e9).label("gmacs"), ArchRow.params,
            ArchRow.latency_ms, TrialRow.train_val_gap, TrialRow.plateaued, TrialRow.chance_acc,
            TrialRow.majority_acc, TrialRow.data_seed, TrialRow.error, TrialRow.started_at,
            TrialRow.finished_at,
            *(_sql_value(n).label(n) for n in names)]
    stmt = select(*cols).join(ArchRow, ArchRow.arch_id == TrialRow.arch_id) \
        .where(TrialRow.study_id == sid)
    if where.states:
        stmt = stmt.where(TrialRow.state.in_(list(where.states)))
    if where.text:
        pattern = f"%{where.text.lower()}%"
        stmt = stmt.where(func.lower(func.coalesce(TrialRow.label, "")).like(pattern)
                          | func.lower(TrialRow.arch_id).like(pattern))
    if where.gmacs is not None:
        lo, hi = where.gmacs
        stmt = stmt.where((cast(ArchRow.macs, Float) / 1e9).between(lo, hi))
    if family_ids is not None:
        stmt = stmt.where(TrialRow.arch_id.in_(family_ids))
    return stmt


def _family_ids(engine: Engine, sid: int, families: tuple[str, ...]) -> list[str] | None:
    if not families:
        return None
    places = read_placements(engine, select(TrialRow.arch_id).where(TrialRow.study_id == sid)
                             .distinct())
    return places.index[places["family"].isin(families)].tolist()


def trial_page(db: Any, study: str, names: list[str], *, where: TrialFilter = TrialFilter(),
               offset: int = 0, limit: int = 100) -> tuple[pd.DataFrame, int]:
    """One page of trials (ordered by number) with the final metrics ``names``, and how many
    trials pass the filter. LIMIT/OFFSET in SQL: only the page's rows are read."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        fam = _family_ids(engine, sid, where.families)
        stmt = _trial_select(engine, sid, names, where, fam)
        total = int(_read_sql(select(func.count()).select_from(stmt.subquery()), engine)
                    .iloc[0, 0])
        page = _read_sql(stmt.order_by(TrialRow.number).limit(int(limit))
                         .offset(int(offset)), engine)
        return _with_family(engine, page), total


def trial_rows(db: Any, study: str, names: list[str], *,
               where: TrialFilter = TrialFilter()) -> pd.DataFrame:
    """Every trial passing the filter (a download: fetched when asked for), by number."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        stmt = _trial_select(engine, sid, names, where, _family_ids(engine, sid, where.families))
        return _with_family(engine, _read_sql(stmt.order_by(TrialRow.number), engine))


def top_trials(db: Any, study: str, metric: str, mode: str, *, limit: int = 1000,
               numbers: list[int] | None = None) -> pd.DataFrame:
    """The ``limit`` best trials by ``metric`` (missing values last), plus the trials
    ``numbers`` whatever their rank: the rows a trial picker offers."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        names = [metric, metrics.TRAIN_ACC1, metrics.VAL_ACC1, metrics.TRAIN_LOSS]
        names = list(dict.fromkeys(names))
        stmt = _trial_select(engine, sid, names, TrialFilter(), None)
        value = _sql_value(metric)
        order = value.desc() if mode == metrics.MAX else value.asc()
        best = _read_sql(stmt.order_by(value.is_(None), order, TrialRow.number)
                         .limit(int(limit)), engine)
        if numbers:
            extra = _read_sql(stmt.where(TrialRow.number.in_([int(n) for n in numbers])),
                              engine)
            best = pd.concat([best, extra[~extra["number"].isin(best["number"])]],
                             ignore_index=True)
        where = _read_sql(select(TrialRow.id.label("trial_id"), TrialRow.resources_json)
                          .where(TrialRow.id.in_(best["trial_id"].tolist())), engine)
        best = _with_hardware(best.merge(where, on="trial_id", how="left"))
        return _with_family(engine, best)


def _with_family(engine: Engine, rows: pd.DataFrame) -> pd.DataFrame:
    """Placement facts (family, t_com, ...) and typed columns on fetched trial rows."""
    if rows.empty:
        return rows.assign(family=pd.Series(dtype=object))
    places = read_placements(engine, rows["arch_id"].unique().tolist())
    out = rows.join(places.drop(columns=["name"]), on="arch_id")
    for col in ("started_at", "finished_at"):
        out[col] = pd.to_datetime(out[col], format="ISO8601")
    for col in ("latency_ms", "train_val_gap", "chance_acc", "majority_acc"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["plateaued"] = pd.array([None if pd.isna(v) else bool(v) for v in out["plateaued"]],
                                dtype="boolean")
    return out


def seed_values(db: Any, study: str, metric: str, arch_ids: list[str]) -> pd.DataFrame:
    """``analysis.budget.seed_means`` of a few networks: arch_id, seed, value (COMPLETE)."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        r = aliased(ResultRow)
        rows = _read_sql(select(TrialRow.arch_id, TrialRow.seed, r.value)
                         .join(r, and_(r.trial_id == TrialRow.id, r.name == metric,
                                       r.value_type == "FINITE", r.value.isnot(None)))
                         .where(TrialRow.study_id == sid, TrialRow.state == "COMPLETE",
                                TrialRow.arch_id.in_(list(arch_ids))), engine)
    return rows.groupby(["arch_id", "seed"], sort=False)["value"].mean().reset_index()


def label_values(db: Any, study: str, metric: str) -> tuple[dict[tuple[str, int], float],
                                                            list[tuple[str, Any]]]:
    """Per (label, seed) the mean of ``metric`` over COMPLETE trials, and the distinct
    (label, design family) pairs: what ``analysis.contrasts`` evaluates, grouped in SQL."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        r = aliased(ResultRow)
        rows = _read_sql(select(TrialRow.label, TrialRow.seed, func.avg(r.value).label("v"))
                         .join(r, and_(r.trial_id == TrialRow.id, r.name == metric,
                                       r.value_type == "FINITE", r.value.isnot(None)))
                         .where(TrialRow.study_id == sid, TrialRow.state == "COMPLETE",
                                TrialRow.label.isnot(None))
                         .group_by(TrialRow.label, TrialRow.seed), engine)
        pairs = _read_sql(select(TrialRow.label, TrialRow.family).distinct()
                          .where(TrialRow.study_id == sid), engine)
    values = {(str(lbl), int(s)): float(v) for lbl, s, v in rows.itertuples(index=False)}
    return values, list(pairs.itertuples(index=False, name=None))


def sample_trial_ids(db: Any, study: str, limit: int) -> list[int] | None:
    """Every COMPLETE trial id when there are at most ``limit``, else an even sample of
    ``limit`` of them (every k-th by id: deterministic); None means all."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        n = int(_read_sql(select(func.count()).where(TrialRow.study_id == sid,
                                                     TrialRow.state == "COMPLETE"),
                          engine).iloc[0, 0])
        if n <= limit:
            return None
        step = -(-n // limit)
        numbered = select(TrialRow.id, func.row_number().over(order_by=TrialRow.id).label("k")) \
            .where(TrialRow.study_id == sid, TrialRow.state == "COMPLETE").subquery()
        ids = _read_sql(select(numbered.c.id).where((numbered.c.k - 1) % step == 0), engine)
        return [int(i) for i in ids["id"]]


__all__ = ["ArchTable", "NoDataError", "StudyFacts", "TrialFilter", "arch_table", "label_values",
           "sample_trial_ids", "seed_values", "study_facts", "top_trials", "trial_page",
           "trial_rows"]
