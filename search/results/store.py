"""The results store: the driver-side writer and the reads the driver needs.

Opening the database (creation, migrations, timeouts) is ``search.results.opening``; ``open_engine``
and ``head_revision`` are re-exported here. Imports neither torch nor ray. Only the Ray driver writes (its Tune callback calls the writer
functions below inside ``session_scope``); trials never open the database; analysis and the
dashboard open it with ``open_engine(url)`` (``create=False``), which never writes.

Example (this is how a test database is filled, too)::

    engine = open_engine("sqlite:///studies.db", create=True)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "demo", kind="grid", config={"seeds": [0]})
        upsert_arch(s, arch_id, spec_json, macs=1_000, params=10)
        trial = start_trial(s, study.id, arch_id=arch_id, seed=0, label="mc3")
        record_epoch(s, trial.id, 1, {"val/acc1": 0.5, "train/loss": 1.2})
        finish_trial(s, trial.id, TrialState.COMPLETE, results={"val/acc1": 0.5})
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from search.results.dberrors import StoreError
from search.results.opening import head_revision, open_engine
from search.results.schema import (
    ArchRow,
    EpochMetricRow,
    ResultRow,
    StudyRow,
    TrialRow,
    TrialState,
    decode_value,
    encode_value,
    utcnow,
)

INTERRUPTED = "interrupted: the driver stopped while this trial ran (repaired at the next start)"

__all__ = [
    "StoreError",
    "completed_cells",
    "drop_epochs_after",
    "epoch_curve",
    "finish_trial",
    "get_or_create_study",
    "get_study",
    "head_revision",
    "open_engine",
    "record_epoch",
    "record_protocol",
    "repair_running",
    "session_scope",
    "start_trial",
    "study_trials",
    "trial_results",
    "upsert_arch",
]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def integrity_check(engine: Engine) -> str:
    """SQLite's ``PRAGMA integrity_check`` result (``"ok"``); ``"ok"`` on other backends."""
    if engine.dialect.name != "sqlite":
        return "ok"
    with engine.connect() as conn:
        return str(conn.execute(text("PRAGMA integrity_check")).scalar())


# --- the writer (driver only) -----------------------------------------------------------------


def get_study(session: Session, name: str) -> StudyRow | None:
    """The study called ``name``, or None."""
    return session.scalars(select(StudyRow).where(StudyRow.name == name)).one_or_none()


def get_or_create_study(session: Session, name: str, *, kind: str,
                        config: Mapping[str, Any] | str, package_version: str = "0.0.0",
                        git_sha: str | None = None) -> StudyRow:
    """Return the study called ``name``, creating it with this config if it does not exist.

    An existing study keeps its stored config snapshot (the caller decides whether a new config
    is compatible with it).
    """
    study = get_study(session, name)
    if study is None:
        config_json = config if isinstance(config, str) else json.dumps(config, sort_keys=True)
        study = StudyRow(name=name, kind=kind, config_json=config_json,
                         package_version=package_version, git_sha=git_sha)
        session.add(study)
        session.flush()
    return study


def upsert_arch(session: Session, arch_id: str, spec_json: str, *, macs: int, params: int,
                activations: int | None = None, latency_ms: float | None = None,
                per_layer: list[dict[str, Any]] | str = "[]") -> ArchRow:
    """Insert an arch (keyed by ``ArchSpec.arch_id``) unless it is stored already.

    An arch's cost is a function of its spec, so an existing row is left as it is.
    """
    row = session.get(ArchRow, arch_id)
    if row is None:
        per_layer_json = per_layer if isinstance(per_layer, str) else json.dumps(per_layer)
        row = ArchRow(arch_id=arch_id, spec_json=spec_json, macs=int(macs), params=int(params),
                      activations=None if activations is None else int(activations),
                      latency_ms=latency_ms, per_layer_json=per_layer_json)
        session.add(row)
        session.flush()
    return row


def record_latency(session: Session, arch_id: str, latency_ms: float) -> None:
    """Store a measured forward time with an arch that has none yet: the first device that
    timed a network speaks for it (each trial's own measurement stays in its results)."""
    row = session.get(ArchRow, arch_id)
    if row is not None and row.latency_ms is None and math.isfinite(latency_ms):
        row.latency_ms = float(latency_ms)
        session.flush()


def find_trial(session: Session, study_id: int, arch_id: str, seed: int) -> TrialRow | None:
    """The row of the (arch, seed) cell in a study, or None."""
    return session.scalars(select(TrialRow).where(
        TrialRow.study_id == study_id, TrialRow.arch_id == arch_id, TrialRow.seed == seed)
    ).one_or_none()


def start_trial(session: Session, study_id: int, *, arch_id: str, seed: int,
                label: str | None = None, family: str | None = None,
                params: Mapping[str, Any] | None = None,
                resources: Mapping[str, Any] | None = None,
                ray_trial_id: str | None = None) -> TrialRow:
    """Mark the (arch, seed) cell RUNNING; a new row, or the cell's old row re-run.

    A re-run (the cell was FAILED, PRUNED or interrupted) bumps ``attempt``, clears the error
    and the final results, and keeps the per-epoch rows: a resumed trial re-reports the epochs
    after its checkpoint, which overwrite the old values (``record_epoch`` upserts).
    """
    row = find_trial(session, study_id, arch_id, seed)
    params_json = json.dumps(dict(params or {}), sort_keys=True, default=str)
    resources_json = json.dumps(dict(resources or {}), sort_keys=True, default=str)
    if row is None:
        number = session.scalar(select(func.coalesce(func.max(TrialRow.number) + 1, 0))
                                .where(TrialRow.study_id == study_id))
        row = TrialRow(study_id=study_id, number=int(number or 0), arch_id=arch_id, seed=seed,
                       label=label, family=family, params_json=params_json,
                       state=TrialState.RUNNING, attempt=1, resources_json=resources_json,
                       ray_trial_id=ray_trial_id, started_at=utcnow())
        session.add(row)
    else:
        if row.state is not TrialState.RUNNING:
            row.attempt += 1
        row.state = TrialState.RUNNING
        row.error = None
        row.finished_at = None
        row.started_at = utcnow()
        row.label = label if label is not None else row.label
        row.family = family if family is not None else row.family
        row.params_json = params_json
        row.resources_json = resources_json
        row.ray_trial_id = ray_trial_id
        session.execute(delete(ResultRow).where(ResultRow.trial_id == row.id))
    session.flush()
    return row


def merge_resources(session: Session, trial_id: int, extra: Mapping[str, Any]) -> None:
    """Add ``extra`` (e.g. the hardware a trial reported) to the trial's ``resources_json``."""
    row = session.get(TrialRow, trial_id)
    if row is None:
        return
    try:
        current = json.loads(row.resources_json or "{}")
    except ValueError:
        current = {}
    merged = {**(current if isinstance(current, dict) else {}), **dict(extra)}
    row.resources_json = json.dumps(merged, sort_keys=True, default=str)


def set_checkpoint_path(session: Session, trial_id: int, path: str | None) -> None:
    """Where the trial's latest checkpoint lies (None once it can no longer resume)."""
    row = session.get(TrialRow, trial_id)
    if row is not None:
        row.checkpoint_path = path


def _upsert_values(session: Session, model: Any, keys: Mapping[str, Any],
                   values: Mapping[str, float]) -> None:
    existing = {r.name: r for r in session.scalars(
        select(model).filter_by(**keys).where(model.name.in_(list(values))))}
    for name, value in values.items():
        stored, tag = encode_value(float(value))
        row = existing.get(name)
        if row is None:
            session.add(model(**keys, name=name, value=stored, value_type=tag))
        else:
            row.value, row.value_type = stored, tag


def record_epoch(session: Session, trial_id: int, epoch: int,
                 metrics: Mapping[str, float]) -> None:
    """Store one epoch's metrics (upsert by (trial, epoch, name); non-numbers are skipped)."""
    numeric = {k: v for k, v in metrics.items() if _is_number(v)}
    _upsert_values(session, EpochMetricRow, {"trial_id": trial_id, "epoch": int(epoch)}, numeric)
    session.flush()


def finish_trial(session: Session, trial_id: int, state: TrialState,
                 results: Mapping[str, float] | None = None, error: str | None = None) -> None:
    """Close a trial: its final state, final metrics (upsert by name) and the reason if any."""
    row = session.get(TrialRow, trial_id)
    if row is None:
        raise StoreError(f"trial {trial_id} does not exist")
    row.state = state
    row.error = error
    row.finished_at = utcnow()
    numeric = {k: v for k, v in (results or {}).items() if _is_number(v)}
    _upsert_values(session, ResultRow, {"trial_id": trial_id}, numeric)
    session.flush()


# trials columns of the study protocol (migration 0003), filled by the driver's writer.
PROTOCOL_COLUMNS: tuple[str, ...] = ("data_seed", "plateaued", "train_val_gap", "chance_acc",
                                     "majority_acc")


def record_protocol(session: Session, trial_id: int, **values: Any) -> None:
    """Set protocol columns of a trial (``data_seed=...``, ``plateaued=...``, ...); None clears."""
    unknown = set(values) - set(PROTOCOL_COLUMNS)
    if unknown:
        raise StoreError(f"not a protocol column of trials: {sorted(unknown)[0]}")
    row = session.get(TrialRow, trial_id)
    if row is None:
        raise StoreError(f"trial {trial_id} does not exist")
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()


def epoch_curve(session: Session, trial_id: int, name: str) -> dict[int, float]:
    """One stored per-epoch metric of a trial: ``{epoch: value}`` (NaN/inf decoded)."""
    rows = session.scalars(select(EpochMetricRow).where(
        EpochMetricRow.trial_id == trial_id, EpochMetricRow.name == name))
    return {r.epoch: decode_value(r.value, r.value_type) for r in rows}


def drop_epochs_after(session: Session, trial_id: int, epoch: int) -> None:
    """Delete a trial's per-epoch rows after ``epoch`` (left by an earlier, longer attempt)."""
    session.execute(delete(EpochMetricRow).where(EpochMetricRow.trial_id == trial_id,
                                                 EpochMetricRow.epoch > int(epoch)))
    session.flush()


def repair_running(session: Session, study_id: int) -> int:
    """Mark the study's RUNNING rows (left by a killed driver) FAILED as interrupted.

    Called once at driver start, before any trial runs; such cells are then run again.
    Returns the number of rows repaired.
    """
    rows = session.scalars(select(TrialRow).where(
        TrialRow.study_id == study_id, TrialRow.state == TrialState.RUNNING)).all()
    for row in rows:
        row.state = TrialState.FAILED
        row.error = INTERRUPTED
        row.finished_at = utcnow()
    session.flush()
    return len(rows)


# --- reading helpers for the driver (resume, warm start, summary) -----------------------------


def completed_cells(session: Session, study_id: int) -> set[tuple[str, int]]:
    """(arch_id, seed) of the cells that need no re-run: COMPLETE or PRUNED."""
    rows = session.execute(select(TrialRow.arch_id, TrialRow.seed).where(
        TrialRow.study_id == study_id,
        TrialRow.state.in_([TrialState.COMPLETE, TrialState.PRUNED])))
    return {(arch_id, int(seed)) for arch_id, seed in rows}


def study_trials(session: Session, study_id: int) -> list[TrialRow]:
    """All trial rows of a study, by number."""
    return list(session.scalars(select(TrialRow).where(TrialRow.study_id == study_id)
                                .order_by(TrialRow.number)))


def trial_results(session: Session, trial_id: int) -> dict[str, float]:
    """Final metrics of a trial as floats (NaN/inf decoded)."""
    rows = session.scalars(select(ResultRow).where(ResultRow.trial_id == trial_id))
    return {r.name: decode_value(r.value, r.value_type) for r in rows}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)

