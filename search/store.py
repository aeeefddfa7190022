"""The results store: opening the database, migrations, and the driver-side writer.

Imports neither torch nor ray. Only the Ray driver writes (its Tune callback calls the writer
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
import numbers
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from search.schema import (
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

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "vidarch_schema_version"  # must match migrations/env.py
SQLITE_BUSY_TIMEOUT_MS = 30_000  # readers and the writer wait this long for a lock, never fail
INTERRUPTED = "interrupted: the driver stopped while this trial ran (repaired at the next start)"

__all__ = [
    "StoreError",
    "completed_cells",
    "finish_trial",
    "get_or_create_study",
    "get_study",
    "head_revision",
    "open_engine",
    "record_epoch",
    "repair_running",
    "session_scope",
    "start_trial",
    "study_trials",
    "trial_results",
    "upsert_arch",
]


class StoreError(RuntimeError):
    """The database cannot be used; the message is one line, fit for the user."""


# --- opening ----------------------------------------------------------------------------------


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The schema revision this code writes (Alembic head)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Per connection: wait for locks instead of failing, enforce FKs (ON DELETE CASCADE).
    # journal_mode=WAL is persistent in the file and set once, by the writer (see open_engine).
    # isolation_level=None stops pysqlite from managing transactions itself (it would not put
    # DDL in one); _sqlite_begin then starts every transaction, so migrations are atomic too.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe in WAL: a killed process loses nothing
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _describe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _short(exc: BaseException) -> str:
    """First line of a DBAPI error, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def open_engine(url: str, *, create: bool = False) -> Engine:
    """Open the results database at a SQLAlchemy URL.

    Args:
        url: e.g. ``sqlite:///studies.db`` or ``postgresql+psycopg2://user@host/db``.
        create: the writer's mode: create the database if missing and upgrade its schema to
            this version (Alembic). Without it (readers) nothing is ever written.

    Returns:
        An Engine; on SQLite every connection has a busy timeout, and the file is in WAL mode,
        so readers never fail with "database is locked" while the study writes.

    Raises:
        StoreError: one line, when the URL is malformed or unreachable, the file is missing
            (readers), the database is not a vidarch database, or its schema is newer than this
            code (or older, for readers).
    """
    shown = _describe(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"storage: not a SQLAlchemy URL: {url!r}") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    memory = is_sqlite and parsed.database in (None, "", ":memory:")
    if is_sqlite and not memory:
        path = Path(str(parsed.database))
        if not create and not path.is_file():
            raise StoreError(f"storage: no database at {path} (run a study first)")
        if create and not path.parent.is_dir():
            raise StoreError(f"storage: directory {path.parent} does not exist")
    try:
        engine = create_engine(parsed, pool_pre_ping=not is_sqlite)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"storage: cannot use {shown}: {exc}") from None
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        _check_and_upgrade(engine, shown, create=create, is_sqlite=is_sqlite)
    except StoreError:
        engine.dispose()
        raise
    except (DBAPIError, sqlite3.Error) as exc:
        engine.dispose()
        raise StoreError(f"storage: cannot open {shown}: {_short(exc)}") from None
    return engine


def _check_and_upgrade(engine: Engine, shown: str, *, create: bool, is_sqlite: bool) -> None:
    # Everything is read before anything is written, so a foreign database stays untouched.
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        current = None
        if VERSION_TABLE in tables:
            current = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    head = head_revision()
    if VERSION_TABLE not in tables and tables:
        raise StoreError(f"storage: {shown} is not a vidarch database "
                         f"(it has tables {sorted(tables)[:5]} but no {VERSION_TABLE})")
    if current is not None and current not in _known_revisions():
        raise StoreError(f"storage: {shown} has schema version {current}, newer than this "
                         f"vidarch (knows up to {head}); upgrade vidarch to read it")
    if not create:
        if current is None:
            raise StoreError(f"storage: {shown} is not a vidarch database (empty)")
        if current != head:
            raise StoreError(f"storage: {shown} has the older schema {current} (this vidarch "
                             f"uses {head}); run a study on it once to upgrade it")
        return
    if is_sqlite:
        raw = engine.raw_connection()  # outside any transaction: the mode cannot change inside
        try:
            driver: Any = raw.driver_connection
            mode = driver.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        finally:
            raw.close()
        if str(mode).lower() not in ("wal", "memory"):
            raise StoreError(f"storage: {shown}: cannot switch to WAL mode (got {mode})")
    if current != head:
        with engine.begin() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


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

