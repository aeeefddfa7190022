"""The results store: migrations on open, clear errors, the writer, readers during writes."""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from search.results.schema import EpochMetricRow, TrialRow, TrialState
from search.results.store import (
    INTERRUPTED,
    StoreError,
    completed_cells,
    finish_trial,
    get_or_create_study,
    head_revision,
    integrity_check,
    open_engine,
    record_epoch,
    repair_running,
    session_scope,
    start_trial,
    study_trials,
    trial_results,
    upsert_arch,
)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _fill(engine, n_trials: int = 2) -> int:
    with session_scope(engine) as s:
        study = get_or_create_study(s, "demo", kind="grid", config={"seeds": [0, 1]})
        upsert_arch(s, "a" * 16, '{"x":1}', macs=1000, params=10,
                    per_layer=[{"layer": "stem", "kind": "3d", "macs": 1000, "params": 10}])
        for seed in range(n_trials):
            trial = start_trial(s, study.id, arch_id="a" * 16, seed=seed, label="mc3",
                                family="bottom-heavy", resources={"cpu": 1})
            record_epoch(s, trial.id, 1, {"val/acc1": 0.25, "train/loss": math.nan})
            finish_trial(s, trial.id, TrialState.COMPLETE, results={"val/acc1": 0.25})
        return study.id


def test_create_then_read(tmp_path: Path) -> None:
    url = _url(tmp_path / "s.db")
    study_id = _fill(open_engine(url, create=True))
    reader = open_engine(url)
    with session_scope(reader) as s:
        trials = study_trials(s, study_id)
        assert [t.number for t in trials] == [0, 1]
        assert completed_cells(s, study_id) == {("a" * 16, 0), ("a" * 16, 1)}
        assert trial_results(s, trials[0].id) == {"val/acc1": 0.25}
        loss = s.scalars(select(EpochMetricRow).where(EpochMetricRow.name == "train/loss")).first()
        assert loss is not None and loss.value is None and loss.value_type.value == "NAN"
    assert integrity_check(reader) == "ok"
    with reader.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("SELECT version_num FROM vidarch_schema_version")).scalar() \
            == head_revision()


def test_reopen_for_writing_is_idempotent(tmp_path: Path) -> None:
    url = _url(tmp_path / "s.db")
    _fill(open_engine(url, create=True))
    engine = open_engine(url, create=True)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "demo", kind="grid", config={})
        assert len(study_trials(s, study.id)) == 2


def test_rerun_cell_updates_row_and_repair(tmp_path: Path) -> None:
    engine = open_engine(_url(tmp_path / "s.db"), create=True)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "demo", kind="grid", config={})
        upsert_arch(s, "b" * 16, "{}", macs=1, params=1)
        trial = start_trial(s, study.id, arch_id="b" * 16, seed=0)
        record_epoch(s, trial.id, 1, {"val/acc1": 0.1})
    with session_scope(engine) as s:  # a new driver: the RUNNING row is repaired
        assert repair_running(s, study.id) == 1
        row = s.get(TrialRow, trial.id)
        assert row.state is TrialState.FAILED and row.error == INTERRUPTED
        assert completed_cells(s, study.id) == set()
        again = start_trial(s, study.id, arch_id="b" * 16, seed=0)
        assert again.id == trial.id and again.attempt == 2 and again.error is None
        record_epoch(s, again.id, 1, {"val/acc1": 0.2})  # overwrites, no duplicate
        finish_trial(s, again.id, TrialState.COMPLETE, results={"val/acc1": 0.2})
    with session_scope(engine) as s:
        assert len(study_trials(s, study.id)) == 1
        values = s.scalars(select(EpochMetricRow.value)).all()
        assert values == [0.2]


@pytest.mark.parametrize("create", [False, True])
def test_not_a_vidarch_database_is_untouched(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a vidarch database"):
        open_engine(_url(path), create=create)
    assert path.read_bytes() == before


@pytest.mark.parametrize("create", [False, True])
def test_garbage_file(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "junk.db"
    path.write_text("hello " * 200)
    with pytest.raises(StoreError, match="file is not a database"):
        open_engine(_url(path), create=create)
    assert path.read_text() == "hello " * 200


@pytest.mark.parametrize("create", [False, True])
def test_newer_schema_is_refused(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "s.db"
    open_engine(_url(path), create=True).dispose()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE vidarch_schema_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this vidarch"):
        open_engine(_url(path), create=create)


def test_reader_never_creates_a_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database"):
        open_engine(_url(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()


def test_unreachable_and_malformed_urls() -> None:
    with pytest.raises(StoreError, match="not a SQLAlchemy URL"):
        open_engine("not a url", create=True)
    with pytest.raises(StoreError, match=r"cannot (open|use)"):  # refused, or no psycopg2
        open_engine("postgresql+psycopg2://nobody@127.0.0.1:1/vidarch", create=True)


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_text("x" * 1000)
    with pytest.raises(StoreError) as info:
        open_engine(_url(path))
    assert "\n" not in str(info.value)


def test_in_memory_database() -> None:
    engine = open_engine("sqlite://", create=True)
    _fill(engine, 1)


def test_readers_never_see_database_locked(tmp_path: Path) -> None:
    """A reader thread hammers queries while the writer commits many small transactions."""
    url = _url(tmp_path / "s.db")
    writer = open_engine(url, create=True)
    study_id = _fill(writer, 0)
    reader = open_engine(url)
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = 0

    def hammer() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                with session_scope(reader) as s:
                    study_trials(s, study_id)
                    s.scalars(select(EpochMetricRow)).all()
                reads += 1
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for seed in range(40):
            with session_scope(writer) as s:
                trial = start_trial(s, study_id, arch_id="a" * 16, seed=100 + seed)
            for epoch in range(1, 4):
                with session_scope(writer) as s:
                    record_epoch(s, trial.id, epoch, {"val/acc1": epoch / 10, "lr": 0.1})
            with session_scope(writer) as s:
                finish_trial(s, trial.id, TrialState.COMPLETE, results={"val/acc1": 0.3})
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert reads > 0
    assert integrity_check(writer) == "ok"


def test_old_schema_is_upgraded_on_open_for_writing(tmp_path: Path) -> None:
    """A database at the first revision is migrated to head by the writer, refused by readers."""
    from alembic import command
    from sqlalchemy import create_engine

    from search.results.opening import _alembic_config

    url = _url(tmp_path / "old.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    with pytest.raises(StoreError, match="older schema"):
        open_engine(url)
    _fill(open_engine(url, create=True))  # upgraded: the new columns are usable
    with session_scope(open_engine(url)) as s:
        assert all(t.checkpoint_path is None for t in study_trials(s, 1))


def test_migrations_match_the_orm_schema() -> None:
    """The tables the migrations build are the tables ``search.results.schema`` declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from search.results.schema import Base

    engine = open_engine("sqlite://", create=True)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(ctx, Base.metadata)
                 if not (isinstance(d, tuple) and d[0] == "remove_table"
                         and d[1].name == "vidarch_schema_version")]
    assert diffs == []


def test_a_migration_cut_short_leaves_no_half_schema(tmp_path: Path, monkeypatch) -> None:
    """Migrations run in one transaction: a failure (or a kill) midway leaves nothing half-made;
    a new file is not even created."""
    from sqlalchemy import create_engine

    import search.results.opening as opening

    real_upgrade = opening.command.upgrade

    def upgrade_then_die(cfg, revision):
        real_upgrade(cfg, revision)
        raise KeyboardInterrupt  # as if the driver were stopped right after the DDL

    path = tmp_path / "s.db"
    monkeypatch.setattr(opening.command, "upgrade", upgrade_then_die)
    with pytest.raises(KeyboardInterrupt):
        open_engine(_url(path), create=True)
    assert list(tmp_path.iterdir()) == []  # a new database file is made whole or not at all

    engine = create_engine(_url(path))  # an existing file at the first schema revision
    with engine.begin() as conn:
        cfg = opening._alembic_config()
        cfg.attributes["connection"] = conn
        real_upgrade(cfg, "0001")
    engine.dispose()
    with pytest.raises(KeyboardInterrupt):
        open_engine(_url(path), create=True)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM vidarch_schema_version").fetchall() == [("0001",)]
    assert "checkpoint_path" not in {r[1] for r in conn.execute("PRAGMA table_info(trials)")}
    conn.close()
    monkeypatch.setattr(opening.command, "upgrade", real_upgrade)
    _fill(open_engine(_url(path), create=True))  # the next open upgrades it
