"""The results store on a real PostgreSQL server (``postgres_server`` in tests/conftest.py).

The same writer, readers and driver as on SQLite: migrations, inf/NaN values, BigInteger MACs,
``analysis.load_trials`` (which reads PostgreSQL through ``pd.read_sql``), and an end-to-end
``study=smoke`` run with its resume.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, select, text

from arch_space.presets import preset
from search.results.schema import ArchRow, EpochMetricRow, TrialRow, TrialState
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
from tests.search.polling import pg_query

R3D_18_MACS = 40_696_553_472  # > 2**31: needs BIGINT
R3D_18_PARAMS = 33_371_472
BIG_ACTIVATIONS = 3 * 2**31 + 7
SMOKE_CELLS = 4  # 2 networks x 2 seeds


def _fill(engine) -> tuple[int, str]:
    """One study: r3d_18 x seeds 0, 1 (COMPLETE, with inf/NaN values) and seed 2 (FAILED)."""
    spec = preset("r3d_18")
    with session_scope(engine) as s:
        study = get_or_create_study(s, "pg", kind="grid", config={"seeds": [0, 1, 2]},
                                    package_version="1.2.3", git_sha="abc")
        upsert_arch(s, spec.arch_id, spec.to_json(), macs=R3D_18_MACS, params=R3D_18_PARAMS,
                    activations=BIG_ACTIVATIONS, latency_ms=12.5,
                    per_layer=[{"layer": "stem", "kind": "3d", "macs": R3D_18_MACS,
                                "params": 9408}])
        for seed in (0, 1):
            trial = start_trial(s, study.id, arch_id=spec.arch_id, seed=seed, label="r3d_18",
                                family="uniform 3D", params={"lr": 0.1},
                                resources={"cpu": 1, "node": "here"}, ray_trial_id=f"t{seed}")
            record_epoch(s, trial.id, 1, {"val/acc1": 0.25, "train/loss": math.inf,
                                          "lr": 0.1, "note": "skipped", "flag": True})
            record_epoch(s, trial.id, 2, {"val/acc1": 0.5 + seed / 10, "train/loss": math.nan,
                                          "val/loss": -math.inf})
            finish_trial(s, trial.id, TrialState.COMPLETE,
                         results={"val/acc1": 0.5 + seed / 10, "val/loss": -math.inf,
                                  "train/loss": math.nan, "grad/max": math.inf})
        failed = start_trial(s, study.id, arch_id=spec.arch_id, seed=2, label="r3d_18")
        finish_trial(s, failed.id, TrialState.FAILED, error="boom")
        return study.id, spec.arch_id


# --- the store -------------------------------------------------------------------------------


def test_create_runs_the_migrations_on_postgres(postgres_db: str) -> None:
    engine = open_engine(postgres_db, create=True)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM vidarch_schema_version")
                                ).scalar() == head_revision()
            insp = inspect(conn)
            assert {"studies", "archs", "trials", "epoch_metrics", "results",
                    "vidarch_schema_version"} <= set(insp.get_table_names())
            types = {c["name"]: str(c["type"]) for c in insp.get_columns("archs")}
            assert types["macs"] == types["params"] == types["activations"] == "BIGINT"
            assert "checkpoint_path" in {c["name"] for c in insp.get_columns("trials")}  # 0002
            fks = {fk["referred_table"]: fk["options"] for fk in
                   insp.get_foreign_keys("epoch_metrics")}
            assert fks["trials"].get("ondelete") == "CASCADE"
        assert integrity_check(engine) == "ok"
    finally:
        engine.dispose()
    open_engine(postgres_db, create=True).dispose()  # reopening for writing is a no-op
    open_engine(postgres_db).dispose()  # and a reader accepts it


def test_writer_round_trips_on_postgres(postgres_db: str) -> None:
    writer = open_engine(postgres_db, create=True)
    study_id, arch_id = _fill(writer)
    writer.dispose()

    reader = open_engine(postgres_db)
    try:
        with session_scope(reader) as s:
            arch = s.get(ArchRow, arch_id)
            assert arch is not None
            assert (arch.macs, arch.params, arch.activations) == (
                R3D_18_MACS, R3D_18_PARAMS, BIG_ACTIVATIONS)
            assert isinstance(arch.created_at, datetime) and arch.created_at.tzinfo is None
            trials = study_trials(s, study_id)
            assert [(t.number, t.seed, t.state) for t in trials] == [
                (0, 0, TrialState.COMPLETE), (1, 1, TrialState.COMPLETE),
                (2, 2, TrialState.FAILED)]
            assert trials[2].error == "boom"
            assert completed_cells(s, study_id) == {(arch_id, 0), (arch_id, 1)}
            res = trial_results(s, trials[1].id)
            assert res["val/acc1"] == pytest.approx(0.6) and res["val/loss"] == -math.inf
            assert math.isnan(res["train/loss"]) and res["grad/max"] == math.inf
            epochs = {(e.epoch, e.name): e for e in s.scalars(
                select(EpochMetricRow).where(EpochMetricRow.trial_id == trials[0].id))}
            assert set(epochs) == {(1, "val/acc1"), (1, "train/loss"), (1, "lr"),
                                   (2, "val/acc1"), (2, "train/loss"), (2, "val/loss")}
            assert epochs[1, "train/loss"].value is None
            assert epochs[1, "train/loss"].value_type.value == "INF_POS"
            assert epochs[2, "train/loss"].value_type.value == "NAN"
    finally:
        reader.dispose()

    # A new driver: repair, re-run a cell (same row, attempt 2), overwrite an epoch.
    writer = open_engine(postgres_db, create=True)
    try:
        with session_scope(writer) as s:
            trial = start_trial(s, study_id, arch_id=arch_id, seed=2)  # left RUNNING: killed
        with session_scope(writer) as s:
            assert repair_running(s, study_id) == 1
            assert s.get(TrialRow, trial.id).error == INTERRUPTED
            again = start_trial(s, study_id, arch_id=arch_id, seed=2)
            assert again.id == trial.id and again.attempt == 3
            record_epoch(s, again.id, 1, {"val/acc1": 0.1})
            record_epoch(s, again.id, 1, {"val/acc1": 0.3})
            finish_trial(s, again.id, TrialState.COMPLETE, results={"val/acc1": 0.3})
        with session_scope(writer) as s:
            assert len(study_trials(s, study_id)) == 3
            assert s.scalars(select(EpochMetricRow.value).where(
                EpochMetricRow.trial_id == trial.id)).all() == [0.3]
            assert len(completed_cells(s, study_id)) == 3
    finally:
        writer.dispose()


def test_readers_get_clear_errors_on_postgres(postgres_server, postgres_db: str) -> None:
    with pytest.raises(StoreError, match=r"is not a vidarch database \(empty\)"):
        open_engine(postgres_db)
    missing = postgres_server.url("no_such_database")
    with pytest.raises(StoreError, match=r"storage: cannot open .*no_such_database"):
        open_engine(missing, create=True)

    foreign = postgres_server.create_database()
    engine = create_engine(foreign)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE notes (x TEXT)"))
        for create in (False, True):
            with pytest.raises(StoreError, match="not a vidarch database"):
                open_engine(foreign, create=create)
        with engine.connect() as conn:  # untouched
            assert set(inspect(conn).get_table_names()) == {"notes"}
    finally:
        engine.dispose()


# --- analysis reads PostgreSQL like SQLite ---------------------------------------------------


def test_load_trials_on_postgres_matches_sqlite(postgres_db: str, tmp_path: Path) -> None:
    from analysis import load_curves, load_trials
    from analysis.loading import curve_names, list_studies, load_arch, study_config

    for url in (postgres_db, f"sqlite:///{tmp_path / 's.db'}"):
        engine = open_engine(url, create=True)
        _fill(engine)
        engine.dispose()

    pg = load_trials(postgres_db, "pg")
    assert list(pg["number"]) == [0, 1, 2]
    assert list(pg["state"]) == ["COMPLETE", "COMPLETE", "FAILED"]
    assert list(pg["macs"]) == [R3D_18_MACS] * 3 and pg["gmacs"].iloc[0] == R3D_18_MACS / 1e9
    assert list(pg["activations"]) == [float(BIG_ACTIVATIONS)] * 3
    assert pg["val/acc1"].iloc[:2].tolist() == pytest.approx([0.5, 0.6])
    assert math.isnan(pg["val/acc1"].iloc[2])
    assert (pg["val/loss"].iloc[:2] == -math.inf).all() and (pg["grad/max"].iloc[:2] == math.inf).all()
    assert pg["train/loss"].iloc[:2].isna().all()
    assert "spec_error" not in pg and pg["family"].iloc[0] != "unknown"
    assert (pg["duration_s"] >= 0).all()
    assert "acc_per_gmac" not in pg and pg["plateaued"].isna().all()  # protocol: not recorded

    lite = load_trials(f"sqlite:///{tmp_path / 's.db'}", "pg")
    assert list(pg.columns) == list(lite.columns)
    volatile = ["trial_id", "started_at", "finished_at", "duration_s"]
    pd.testing.assert_frame_equal(pg.drop(columns=volatile), lite.drop(columns=volatile),
                                  check_dtype=False)

    curves = load_curves(postgres_db, "pg", names=["train/loss"])
    assert len(curves) == 4
    assert sorted(curves["value"].map(lambda v: "nan" if math.isnan(v) else v).astype(str)) \
        == ["inf", "inf", "nan", "nan"]
    assert curve_names(postgres_db, "pg") == ["lr", "train/loss", "val/acc1", "val/loss"]
    studies = list_studies(postgres_db)
    assert studies.loc[0, "name"] == "pg" and studies.loc[0, "n_trials"] == 3
    assert study_config(postgres_db, "pg") == {"seeds": [0, 1, 2]}
    spec, layers, record = load_arch(postgres_db, preset("r3d_18").arch_id)
    assert spec == preset("r3d_18") and record["macs"] == R3D_18_MACS
    assert layers[0]["macs"] == R3D_18_MACS


# --- end to end (slow) -----------------------------------------------------------------------




@pytest.mark.slow
def test_smoke_study_on_postgres_completes_and_resumes(runner, postgres_db: str) -> None:
    """``python -m search.run study=smoke storage=<postgres URL>``, then once more: no change."""
    out = runner.run(f"storage={postgres_db}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Pareto front" in out.stdout and "Next: " in out.stdout
    assert not runner.db.exists()  # nothing went to the default SQLite file

    rows = pg_query(postgres_db, "SELECT arch_id, seed, state, attempt FROM trials")
    assert len(rows) == SMOKE_CELLS and {r[2] for r in rows} == {"COMPLETE"}
    assert len({(a, s) for a, s, *_ in rows}) == SMOKE_CELLS
    assert pg_query(postgres_db, "SELECT count(*) FROM results WHERE name = 'val/acc1'"
                    )[0][0] == SMOKE_CELLS
    assert pg_query(postgres_db, "SELECT count(*) FROM archs")[0][0] == 2

    from analysis import load_trials

    df = load_trials(postgres_db, "smoke")
    assert len(df) == SMOKE_CELLS and set(df["state"]) == {"COMPLETE"}
    assert df["val/acc1"].notna().all() and (df["macs"] > 0).all()

    before = pg_query(postgres_db, "SELECT count(*), sum(attempt) FROM trials")
    epochs = pg_query(postgres_db, "SELECT count(*) FROM epoch_metrics")
    again = runner.run(f"storage={postgres_db}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert pg_query(postgres_db, "SELECT count(*), sum(attempt) FROM trials") == before
    assert pg_query(postgres_db, "SELECT count(*) FROM epoch_metrics") == epochs


# --- the fixture itself ----------------------------------------------------------------------


@pytest.mark.parametrize(("required", "outcome"), [("", pytest.skip.Exception),
                                                    ("1", pytest.fail.Exception)])
def test_missing_postgres_skips_unless_required(monkeypatch, required: str, outcome) -> None:
    from tests.conftest import REQUIRE_POSTGRES, _unavailable

    monkeypatch.setenv(REQUIRE_POSTGRES, required)
    with pytest.raises(outcome, match="not installed"):
        _unavailable("the PostgreSQL server binaries are not installed")
