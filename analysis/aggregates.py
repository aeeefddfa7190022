"""A study's summaries computed in the database: GROUP BY per network, rows only when shown.

``load_trials`` pulls every trial into pandas; at a million trials that is a minute. The pages'
summaries need far less: per network (arch) the per-seed values of one metric and the sums the
protocol's checks average; per family, sums of those. ``arch_table`` reads them from the
summaries the writer stored (``search.results.summaries``: the driver stores them when a study
run ends) while they are current, else runs the same ``GROUP BY arch_id`` over COMPLETE trials
with a finite value now (SQLAlchemy Core: SQLite and PostgreSQL), and joins the stored placement
facts (``analysis.placements``). The statistics are the ones ``analysis.stats`` computes from
trials: means, standard deviations and Student-t intervals over seeds, computed here in Python
from those per-seed values (``analysis.unit_stats``). Trial rows are fetched a page at a time
(``trial_page``) or for the few trials a page names (``top_trials``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Float, and_, cast, func, select
from sqlalchemy.orm import aliased

from analysis.loading import NoDataError, _raw, _read_sql, _study_ids, _with_hardware, opened
from analysis.placements import DESCRIPTORS, VERSION, read_placements
from search.results import metrics, summaries
from search.results.schema import ArchPlacementRow, ArchRow, ResultRow, TrialRow

STATES = ("COMPLETE", "PRUNED", "FAILED", "RUNNING")


def study_id(engine: Engine, study: str) -> int:
    """The id of ``study``; ``NoDataError`` when there is none."""
    return next(iter(_study_ids(engine, study)))


@dataclass(frozen=True)
class StudyFacts:
    """What the sidebar and the headline counts need, from a few small queries."""

    study: str
    counts: dict[str, int]  # trials per state, every state present
    metrics: pd.DataFrame  # final metrics a COMPLETE trial has a finite value of: name, constant

    @property
    def n_trials(self) -> int:
        """Trials of the study, every state."""
        return sum(self.counts.values())

    def informative(self, declared: dict[str, str] | None = None) -> list[str]:
        """``analysis.checks.informative_metrics``: a direction, and not constant."""
        m = self.metrics
        names = [n for n, constant in zip(m["name"], m["constant"], strict=True)
                 if "/" in n and metrics.has_direction(n, declared) and not constant]
        preferred = [n for n in metrics.PREFERRED if n in names]
        return preferred + [n for n in names if n not in preferred]

    def has_values(self, metric: str) -> bool:
        """Whether a COMPLETE trial has a finite ``metric``."""
        return bool((self.metrics["name"] == metric).any()) and self.counts["COMPLETE"] > 0


def _result_names(engine: Engine) -> list[str]:
    """Every metric name in the results table, one index seek each (a recursive CTE that
    skips from name to name instead of scanning millions of rows)."""
    r = aliased(ResultRow)
    names = select(func.min(ResultRow.name).label("name")).cte("names", recursive=True)
    names = names.union_all(select(select(func.min(r.name)).where(r.name > names.c.name)
                                   .scalar_subquery()).where(names.c.name.isnot(None)))
    return [n for n in _read_sql(select(names.c.name), engine)["name"] if isinstance(n, str)]


def study_facts(db: Any, study: str) -> StudyFacts:
    """Counts by state and the final metrics of ``study`` (whether each is constant over its
    COMPLETE trials: ``metrics.is_constant``), in SQL that stops at the first row it needs."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        counts = _read_sql(select(_raw(TrialRow.state), func.count().label("n"))
                           .where(TrialRow.study_id == sid).group_by(TrialRow.state), engine)
        by_state = dict(zip(counts["state"], counts["n"], strict=True))
        rows = []
        for name in _result_names(engine):
            value = _sql_value(name)
            done = select(value.label("v")).where(TrialRow.study_id == sid,
                                                  TrialRow.state == "COMPLETE", value.isnot(None))
            first = _read_sql(done.limit(1), engine)
            if first.empty:
                continue
            v = float(first.iloc[0, 0])
            differs = _read_sql(done.where(value != v).limit(1), engine)
            two = len(_read_sql(done.limit(2), engine)) >= 2
            rows.append({"name": name, "constant": differs.empty and two})
    return StudyFacts(study, {s: int(by_state.get(s, 0)) for s in STATES},
                      pd.DataFrame(rows, columns=["name", "constant"]))


def study_spent(db: Any, study: str) -> tuple[float, float]:
    """Summed wall-clock seconds and GMACs per clip of the finished trials of ``study``
    (stored by the writer while current: ``search.results.summaries.spent``)."""
    with opened(db) as engine:
        return summaries.spent(engine, study_id(engine, study))


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


def arch_table(db: Any, study: str, metric: str) -> ArchTable:
    """Per-network sums and per-seed values of ``metric`` over COMPLETE trials: the summary
    the writer stored while it is current (``search.results.summaries``), else grouped in SQL
    now."""
    with opened(db) as engine:
        sid = study_id(engine, study)
        stored = summaries.fresh_seeds(engine, sid, metric)
        if stored is not None:
            seeds = np.array(stored, dtype=int)
            grouped = summaries.stored_rows(sid, metric).subquery()
        else:
            seeds = np.array(summaries.complete_seeds(engine, sid), dtype=int)
            grouped = summaries.network_groups(engine, sid, metric, seeds.tolist()).subquery()
        place = (ArchPlacementRow.arch_id == grouped.c.arch_id) & \
            (ArchPlacementRow.version == VERSION)
        stmt = (select(grouped, ArchRow.macs, ArchRow.params, ArchRow.latency_ms,
                       *(getattr(ArchPlacementRow, c) for c in (*DESCRIPTORS, "name",
                                                                "num_classes")))
                .join(ArchRow, ArchRow.arch_id == grouped.c.arch_id)
                .outerjoin(ArchPlacementRow, place))
        archs = _read_sql(stmt, engine)
        seed_cols = [f"v{i}" for i in range(len(seeds))]
        if stored is not None:  # every row's JSON list of numbers and nulls, parsed at once
            text = ",".join(archs.pop("values_json").tolist()).replace("null", "nan")
            flat = np.array(text.replace("[", "").replace("]", "").split(","), dtype=float) \
                if len(archs) and len(seeds) else np.empty(0)
            values = flat.reshape(len(archs), len(seeds))  # (archs, seeds)
        elif len(seeds) <= summaries.MAX_SEED_COLUMNS:
            values = archs[seed_cols].to_numpy(dtype=float, na_value=np.nan)
            archs = archs.drop(columns=seed_cols)
        else:
            r, joined = summaries.complete_values(engine, sid, metric)
            long = _read_sql(select(TrialRow.arch_id, TrialRow.seed, r.value)
                             .select_from(r).join(TrialRow, joined)
                             .where(*summaries.finite(r, metric)), engine)
            wide = long.pivot_table(index="arch_id", columns="seed", values="value")
            values = wide.reindex(index=archs["arch_id"], columns=seeds).to_numpy(dtype=float)
        missing = archs["family"].isna()
        if missing.any():  # not stored (or by other rules): computed from the specs
            computed = read_placements(engine, archs.loc[missing, "arch_id"].tolist())
            for col in computed.columns:
                archs.loc[missing, col] = archs.loc[missing, "arch_id"].map(computed[col])
    archs = archs.set_index("arch_id")
    for col in ("chance_sum", "majority_sum", "gap_sum", "latency_ms", *DESCRIPTORS[2:]):
        archs[col] = pd.to_numeric(archs[col], errors="coerce").astype(float)
    archs["gmacs"] = archs["macs"] / 1e9
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
        # the ranking from the metric's rows alone (a sort of one column), then the full rows
        # of those trials: ordering every trial's row by a per-row subquery took 11 s at 1M
        r = aliased(ResultRow)
        order = r.value.desc() if mode == metrics.MAX else r.value.asc()
        ranked = _read_sql(select(TrialRow.id).join(r, and_(r.trial_id == TrialRow.id,
                                                            *summaries.finite(r, metric)))
                           .where(TrialRow.study_id == sid)
                           .order_by(order, TrialRow.number).limit(int(limit)), engine)
        ids = [int(i) for i in ranked["id"]]
        if len(ids) < limit:  # then the trials without a value, by number
            has = select(r.trial_id).where(*summaries.finite(r, metric))
            rest = _read_sql(select(TrialRow.id).where(TrialRow.study_id == sid,
                                                       TrialRow.id.not_in(has))
                             .order_by(TrialRow.number).limit(int(limit) - len(ids)), engine)
            ids += [int(i) for i in rest["id"]]
        rows = _read_sql(stmt.where(TrialRow.id.in_(ids)), engine)
        rank = {trial_id: k for k, trial_id in enumerate(ids)}
        best = rows.iloc[np.argsort([rank[int(i)] for i in rows["trial_id"]], kind="stable")] \
            .reset_index(drop=True)
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
