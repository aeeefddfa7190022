"""Per-network summaries of a study, stored by the writer so that readers skip the GROUP BY.

A page of a million-trial study needs, per network, the per-seed values of one metric and the
sums the protocol's checks average. ``network_groups`` is that ``GROUP BY arch_id`` over the
study's COMPLETE trials (SQLite and PostgreSQL); at a million trials it takes ~10 s, on every
cold start of every reader. So the writer (the driver when a study run ends, the bulk writer,
``python -m search.results.summaries``) stores its result in ``arch_summaries`` under the
study's ``stamp`` — what changes whenever a trial starts, ends or is re-run — and a reader uses
the stored rows only while the stamp still matches (``fresh_seeds``); otherwise it groups live.
Derived data, like ``arch_placements``: a stale or missing summary costs time, never a wrong
number. Imports neither torch nor ray.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Float, and_, case, cast, delete, false, func, insert, select
from sqlalchemy.orm import aliased

from search.results import metrics
from search.results.schema import (
    ArchRow,
    ArchSummaryRow,
    ResultRow,
    StudySummaryRow,
    SummaryStampRow,
    TrialRow,
    utcnow,
)

# the columns a stored summary row carries besides its key and values (ArchSummaryRow)
SUM_COLUMNS: tuple[str, ...] = ("label", "design_family", "n", "chance_sum", "chance_n",
                                "majority_sum", "majority_n", "gap_sum", "gap_n",
                                "n_undertrained")
MAX_SEED_COLUMNS = 64  # seeds pivoted into columns by network_groups; more are read long


def stamp(engine: Engine, study_id: int) -> str:
    """What changes whenever a trial of the study starts, ends or is re-run: its counts by
    state, its highest trial id and latest finish time (index seeks, not scans)."""
    with engine.connect() as conn:
        counts = conn.execute(select(TrialRow.state, func.count()).where(
            TrialRow.study_id == study_id).group_by(TrialRow.state)).all()
        top = conn.execute(select(func.max(TrialRow.id), func.max(TrialRow.finished_at))
                           .where(TrialRow.study_id == study_id)).one()
    by_state = sorted((getattr(s, "value", str(s)), int(n)) for s, n in counts)
    return json.dumps({"counts": by_state, "max_id": top[0],
                       "max_finished": None if top[1] is None else str(top[1])},
                      sort_keys=True)


def complete_seeds(engine: Engine, study_id: int) -> list[int]:
    """The seeds of the study's COMPLETE trials, ascending."""
    with engine.connect() as conn:
        rows = conn.execute(select(TrialRow.seed).distinct().where(
            TrialRow.study_id == study_id, TrialRow.state == "COMPLETE")).scalars()
        return sorted(int(s) for s in rows)


def _gap() -> Any:
    """``analysis.checks.trial_gap`` as SQL: the stored gap, else train/acc1 - val/acc1."""
    def final(name: str) -> Any:
        r = aliased(ResultRow)
        return (select(r.value).where(r.trial_id == TrialRow.id, r.name == name,
                                      r.value_type == "FINITE").scalar_subquery())
    return func.coalesce(TrialRow.train_val_gap,
                         final(metrics.TRAIN_ACC1) - final(metrics.VAL_ACC1))


def _study_filter(engine: Engine, study_id: int) -> Any:
    """``trials.study_id = sid``; on SQLite written so that the planner drives the join from
    the results index (one metric of every trial, in trial order) instead of seeking the
    results of each trial (twice as slow at a million trials)."""
    if engine.dialect.name == "sqlite":
        return (TrialRow.study_id + 0) == study_id
    return TrialRow.study_id == study_id


def complete_values(engine: Engine, study_id: int, metric: str) -> tuple[Any, Any]:
    """(the results alias, the join condition): COMPLETE trials of the study with a finite
    ``metric``, for ``select_from(r).join(TrialRow, joined).where(*finite)``."""
    r = aliased(ResultRow)
    joined = and_(r.trial_id == TrialRow.id, _study_filter(engine, study_id),
                  TrialRow.state == "COMPLETE")
    return r, joined


def finite(r: Any, metric: str) -> tuple[Any, ...]:
    """The WHERE clause of one finite final metric on the results alias ``r``."""
    return r.name == metric, r.value_type == "FINITE", r.value.isnot(None)


def network_groups(engine: Engine, study_id: int, metric: str, seeds: Sequence[int]) -> Any:
    """The per-network GROUP BY of ``metric`` over COMPLETE trials: arch_id, the
    ``SUM_COLUMNS`` and, when there are at most ``MAX_SEED_COLUMNS`` seeds, one column
    ``v{i}`` per seed (a cell is trained once per study: a network's value at a seed is one
    trial's)."""
    r, joined = complete_values(engine, study_id, metric)
    gap = _gap()
    per_seed = [func.max(case((TrialRow.seed == int(s), r.value))).label(f"v{i}")
                for i, s in enumerate(seeds)] if len(seeds) <= MAX_SEED_COLUMNS else []
    return (select(TrialRow.arch_id, func.max(TrialRow.label).label("label"),
                   func.max(TrialRow.family).label("design_family"),
                   func.count().label("n"),
                   func.sum(TrialRow.chance_acc).label("chance_sum"),
                   func.count(TrialRow.chance_acc).label("chance_n"),
                   func.sum(TrialRow.majority_acc).label("majority_sum"),
                   func.count(TrialRow.majority_acc).label("majority_n"),
                   func.sum(gap).label("gap_sum"), func.count(gap).label("gap_n"),
                   func.sum(case((TrialRow.plateaued == false(), 1), else_=0))
                   .label("n_undertrained"), *per_seed)
            .select_from(r).join(TrialRow, joined).where(*finite(r, metric))
            .group_by(TrialRow.arch_id))


def fresh_seeds(engine: Engine, study_id: int, metric: str) -> list[int] | None:
    """The seeds of the stored summary of ``metric`` when it is current (its stamp is the
    study's now), else None: the reader groups live then."""
    with engine.connect() as conn:
        row = conn.execute(select(SummaryStampRow.stamp, SummaryStampRow.seeds_json).where(
            SummaryStampRow.study_id == study_id, SummaryStampRow.metric == metric)).first()
    if row is None or row[0] != stamp(engine, study_id):
        return None
    return [int(s) for s in json.loads(row[1])]


def stored_rows(study_id: int, metric: str) -> Any:
    """SELECT of the stored summary rows of ``metric``: arch_id, ``SUM_COLUMNS``,
    values_json (a JSON list aligned with the stamp's seeds, null where missing)."""
    return (select(ArchSummaryRow.arch_id,
                   *(getattr(ArchSummaryRow, c) for c in SUM_COLUMNS),
                   ArchSummaryRow.values_json)
            .where(ArchSummaryRow.study_id == study_id, ArchSummaryRow.metric == metric))


def summarised_metrics(engine: Engine, study_id: int) -> list[str]:
    """The final metrics worth a stored summary: those with a direction
    (``search.results.metrics``) that some trial of the study reports."""
    with engine.connect() as conn:
        names = conn.execute(select(ResultRow.name).distinct().join(
            TrialRow, TrialRow.id == ResultRow.trial_id).where(
            TrialRow.study_id == study_id, TrialRow.state == "COMPLETE")).scalars().all()
    return sorted(n for n in names if "/" in n and metrics.has_direction(n))


def _finished_seconds(engine: Engine) -> Any:
    """A trial's duration in seconds as SQL (NULL while running), per dialect."""
    if engine.dialect.name == "sqlite":
        return (func.julianday(TrialRow.finished_at) - func.julianday(TrialRow.started_at)) \
            * 86400.0
    return func.extract("epoch", TrialRow.finished_at - TrialRow.started_at)


def spent_now(engine: Engine, study_id: int) -> tuple[float, float]:
    """Summed wall-clock seconds and GMACs per clip of the study's finished trials, grouped
    now (a million trials: ~3 s)."""
    finished = (TrialRow.study_id == study_id,
                TrialRow.state.in_(["COMPLETE", "PRUNED", "FAILED"]))
    with engine.connect() as conn:
        seconds = conn.execute(select(func.sum(_finished_seconds(engine))).where(*finished))
        seconds = seconds.scalar()
        per_arch = select(TrialRow.arch_id, func.count().label("k")).where(*finished) \
            .group_by(TrialRow.arch_id).subquery()
        macs = conn.execute(select(func.sum(cast(ArchRow.macs, Float) * per_arch.c.k))
                            .join(per_arch, per_arch.c.arch_id == ArchRow.arch_id)).scalar()
    return float(seconds or 0.0), float(macs or 0.0) / 1e9


def spent(engine: Engine, study_id: int) -> tuple[float, float]:
    """``spent_now``, read from the stored study summary while it is current."""
    with engine.connect() as conn:
        row = conn.execute(select(StudySummaryRow.stamp, StudySummaryRow.spent_s,
                                  StudySummaryRow.spent_gmacs)
                           .where(StudySummaryRow.study_id == study_id)).first()
    if row is not None and row[0] == stamp(engine, study_id):
        return float(row[1]), float(row[2])
    return spent_now(engine, study_id)


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def refresh(engine: Engine, study_id: int, names: Sequence[str] | None = None,
            batch: int = 20_000) -> int:
    """Store what the study spent and the per-network summaries of its metrics (default
    ``summarised_metrics``) under its current stamp, replacing older ones, one transaction
    per metric. Returns the per-network rows written."""
    seeds = complete_seeds(engine, study_id)
    now = stamp(engine, study_id)
    seconds, gmacs = spent_now(engine, study_id)
    with engine.begin() as conn:
        conn.execute(delete(StudySummaryRow).where(StudySummaryRow.study_id == study_id))
        conn.execute(insert(StudySummaryRow), [{"study_id": study_id, "stamp": now,
                                                "spent_s": seconds, "spent_gmacs": gmacs,
                                                "computed_at": utcnow()}])
    written = 0
    for metric in (summarised_metrics(engine, study_id) if names is None else names):
        now = stamp(engine, study_id)
        with engine.begin() as conn:
            stmt = network_groups(engine, study_id, metric, seeds)
            rows = conn.execute(stmt).mappings().all()
            if len(seeds) > MAX_SEED_COLUMNS:  # long form: (arch, seed) rows
                r, joined = complete_values(engine, study_id, metric)
                long: dict[str, dict[int, float]] = {}
                for arch_id, seed, value in conn.execute(
                        select(TrialRow.arch_id, TrialRow.seed, r.value).select_from(r)
                        .join(TrialRow, joined).where(*finite(r, metric))):
                    long.setdefault(arch_id, {})[int(seed)] = value
            conn.execute(delete(ArchSummaryRow).where(ArchSummaryRow.study_id == study_id,
                                                      ArchSummaryRow.metric == metric))
            conn.execute(delete(SummaryStampRow).where(SummaryStampRow.study_id == study_id,
                                                       SummaryStampRow.metric == metric))
            out = []
            for row in rows:
                if len(seeds) <= MAX_SEED_COLUMNS:
                    values = [_number(row[f"v{i}"]) for i in range(len(seeds))]
                else:
                    values = [_number(long.get(row["arch_id"], {}).get(s)) for s in seeds]
                out.append({"study_id": study_id, "metric": metric, "arch_id": row["arch_id"],
                            **{c: row[c] for c in SUM_COLUMNS},
                            "values_json": json.dumps(values)})
            for start in range(0, len(out), batch):
                conn.execute(insert(ArchSummaryRow), out[start:start + batch])
            conn.execute(insert(SummaryStampRow), [{
                "study_id": study_id, "metric": metric, "stamp": now,
                "seeds_json": json.dumps(seeds), "computed_at": utcnow()}])
            written += len(out)
    if engine.dialect.name == "sqlite":  # statistics, so that the readers' join of the stored
        with engine.begin() as conn:    # rows with archs' costs takes its covering index
            for table in ("archs", "arch_placements", "arch_summaries"):
                conn.exec_driver_sql(f"ANALYZE {table}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m search.results.summaries DB [--study NAME]``: store the summaries of a
    study (every study by default) so that the dashboard opens it without grouping."""
    import sys

    from search.results.dberrors import StoreError
    from search.results.opening import open_stored
    from search.results.schema import StudyRow

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("db", help="database path or URL")
    parser.add_argument("--study", default=None, help="one study (default: every study)")
    args = parser.parse_args(argv)
    try:
        engine = open_stored(args.db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with engine.connect() as conn:
            stmt = select(StudyRow.id, StudyRow.name).order_by(StudyRow.id)
            if args.study is not None:
                stmt = stmt.where(StudyRow.name == args.study)
            studies = conn.execute(stmt).all()
        if not studies:
            print(f"error: --study: no study called {args.study!r} in {args.db}"
                  if args.study else f"error: db: no study in {args.db}", file=sys.stderr)
            return 2
        for sid, name in studies:
            print(f"{name}: {refresh(engine, sid)} network summaries stored")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
