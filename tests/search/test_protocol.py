"""The study protocol's rules (fast, no Ray cluster): data seed, plateau, baselines, bad keys."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from analysis import load_trials
from arch_space.presets import preset
from search.design.protocol import baselines, plateaued, train_val_gap, trial_data_seed
from search.results.schema import TrialState
from search.results.store import (
    finish_trial,
    get_or_create_study,
    open_engine,
    record_epoch,
    record_protocol,
    session_scope,
    start_trial,
    upsert_arch,
)
from search.run import main
from search.tuning import (
    PLATEAU_MARK,
    PlateauStopper,
    StudySearch,
    final_state,
    was_stopped_early,
)

SETTINGS = {"plateau_stop": True, "plateau_metric": "val/acc1", "plateau_patience": 2,
            "plateau_min_delta": 0.01}


# --- the rules --------------------------------------------------------------------------------


def test_plateau_rule_is_direction_aware() -> None:
    rule = {"patience": 2, "min_delta": 0.01}
    rising_acc = [0.25, 0.40, 0.55, 0.70]
    assert not plateaued(rising_acc, **rule, higher_is_better=True)
    assert plateaued(rising_acc, **rule, higher_is_better=False)  # the same numbers as a loss
    falling_loss = [1.4, 1.2, 1.0, 0.8]
    assert not plateaued(falling_loss, **rule, higher_is_better=False)
    assert plateaued(falling_loss, **rule, higher_is_better=True)
    # Flat within min_delta, or worse than the best before the last `patience` epochs.
    assert plateaued([0.25, 0.50, 0.505, 0.509], **rule, higher_is_better=True)
    assert not plateaued([0.25, 0.50, 0.505, 0.52], **rule, higher_is_better=True)
    assert plateaued([0.9, 0.7, 0.8, 1.1], **rule, higher_is_better=False)  # val loss climbs
    # Too short to tell; non-finite values never improve.
    assert not plateaued([0.25, 0.25], **rule, higher_is_better=True)
    assert plateaued([0.5, math.nan, math.nan], **rule, higher_is_better=True)
    # Not before min_epochs: an early dip (placement_crossover.scale4, mc3 seed 0: 0.42, 0.41,
    # 0.31 was called a plateau at epoch 3 and ended a run that other seeds took to 0.95).
    dip = [0.42, 0.41, 0.31]
    assert plateaued(dip, **rule, higher_is_better=True)
    assert not plateaued(dip, **rule, higher_is_better=True, min_epochs=4)
    assert plateaued([*dip, 0.30], **rule, higher_is_better=True, min_epochs=4)


def test_plateau_min_epochs_defaults_to_half_the_budget() -> None:
    from search.design.protocol import curve_plateaued, plateau_min_epochs

    assert plateau_min_epochs({**SETTINGS, "epochs": 8}) == 4
    assert plateau_min_epochs({**SETTINGS, "epochs": 5}) == 3
    assert plateau_min_epochs({**SETTINGS, "epochs": 8, "plateau_min_epochs": 1}) == 1
    dip = [0.42, 0.41, 0.31]
    assert not curve_plateaued(dip, {**SETTINGS, "epochs": 8})
    assert curve_plateaued(dip, {**SETTINGS, "epochs": 8, "plateau_min_epochs": 0})


def test_each_seed_draws_its_own_data_unless_pinned() -> None:
    seeds = [trial_data_seed(None, s) for s in range(10)]
    assert len(set(seeds)) == 10  # a different draw per seed
    assert seeds == [trial_data_seed(None, s) for s in range(10)]  # a function of the seed
    assert all(0 <= d < 2**31 and d != s for s, d in enumerate(seeds))
    assert {trial_data_seed(7, s) for s in range(10)} == {7}  # pinned: one draw for all


def test_drawn_val_sets_differ_by_data_seed() -> None:
    from search.data.synthetic import SyntheticConfig, make_synthetic

    cfg = SyntheticConfig(clip_len=4, size=16, n_train=8, n_val=16, object_size=3,
                          target_size=6, n_distractors=2)
    _, val0 = make_synthetic(cfg, seed=trial_data_seed(None, 0))
    _, val1 = make_synthetic(cfg, seed=trial_data_seed(None, 1))
    _, again = make_synthetic(cfg, seed=trial_data_seed(None, 0))
    assert not val0.clips.equal(val1.clips) and val0.clips.equal(again.clips)


def test_baselines_and_gap() -> None:
    assert baselines([0, 0, 0, 1, 2, 3, 0, 1], 4) == (0.25, 0.5)
    assert baselines([1, 1], 10) == (0.1, 1.0)
    assert train_val_gap({"train/acc1": 0.99, "val/acc1": 0.25}) == pytest.approx(0.74)
    assert train_val_gap({"val/acc1": 0.25}) is None
    assert train_val_gap({"train/acc1": math.nan, "val/acc1": 0.25}) is None


# --- the stopper and the trial states ---------------------------------------------------------


def _result(epoch: int, acc: float, planned: int = 8, **config: object) -> dict:
    return {"epoch": float(epoch), "val/acc1": acc, "epochs_planned": float(planned),
            "config": {"arch_id": ARCH.arch_id, "seed": 0, **config}}


def _stop_epoch(stopper: PlateauStopper, curve: list[float], start: int = 1, planned: int = 8,
                **config: object) -> int | None:
    """The epoch at which ``stopper`` ends trial "t" reporting ``curve``, or None."""
    for epoch, acc in enumerate(curve, start=start):
        if stopper("t", _result(epoch, acc, planned, **config)):
            return epoch
    return None


ARCH = preset("mc3", num_classes=4, clip_len=8)


def _stored_cell(tmp_path: Path, curve: list[float]) -> tuple[Any, int]:
    """A database holding a cell (ARCH, seed 0) whose first epochs are ``curve``."""
    engine = open_engine(f"sqlite:///{tmp_path / 'resume.db'}", create=True)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "r", kind="grid", config={})
        upsert_arch(s, ARCH.arch_id, ARCH.to_json(), macs=1, params=1)
        row = start_trial(s, study.id, arch_id=ARCH.arch_id, seed=0)
        for epoch, acc in enumerate(curve, start=1):
            record_epoch(s, row.id, epoch, {"val/acc1": acc})
        return engine, study.id


def test_plateau_stopper_ends_a_flat_curve_as_complete(tmp_path: Path) -> None:
    curve = [0.25, 0.40, 0.55, 0.555, 0.55, 0.70, 0.7]
    assert _stop_epoch(PlateauStopper(SETTINGS), curve) == 5  # 0.555, 0.55 don't beat 0.56
    # A trial resumed after epoch 4 reports from epoch 5 on: its stored epochs count too.
    engine, study_id = _stored_cell(tmp_path, curve[:4])
    resumed = PlateauStopper(SETTINGS, engine, study_id)
    assert _stop_epoch(resumed, curve[4:], start=5, resume_from="ckpt") == 5
    assert _stop_epoch(PlateauStopper(SETTINGS, engine, study_id), curve[4:], start=5) is None
    engine.dispose()
    result = _result(5, 0.55)
    assert PlateauStopper(SETTINGS)("t", {**_result(4, 0.555), "skipped": 1.0}) is False
    stopper = PlateauStopper(SETTINGS)
    _stop_epoch(stopper, curve[:4])
    assert stopper("t", result) and result[PLATEAU_MARK] == 1.0
    assert not was_stopped_early(result)
    assert final_state(result, False) == (TrialState.COMPLETE, None)
    # ASHA's stop stays PRUNED and an unmarked short trial is interrupted (FAILED).
    assert final_state(_result(5, 0.55), True)[0] is TrialState.PRUNED
    assert final_state(_result(5, 0.55), False)[0] is TrialState.FAILED
    # The budget's last epoch ends the trial anyway: no stop, no mark.
    last = _result(3, 0.25, planned=3)
    stopper = PlateauStopper(SETTINGS)
    assert _stop_epoch(stopper, [0.25, 0.25], planned=3) is None
    assert not stopper("t", last) and PLATEAU_MARK not in last
    # A rising curve runs on.
    assert _stop_epoch(PlateauStopper(SETTINGS), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) is None


def test_a_plateau_stopped_trial_is_complete_for_optuna() -> None:
    search = StudySearch(space={"x": optuna.distributions.CategoricalDistribution(["a", "b"])},
                         metric="val/acc1", mode="max",
                         sampler=optuna.samplers.RandomSampler(seed=0))
    search.suggest("p")
    search.on_trial_complete("p", {"val/acc1": 0.6, "epoch": 3.0, "epochs_planned": 8.0,
                                   PLATEAU_MARK: 1.0})
    trial = search._ot_study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.values == [0.6]


def test_a_resumed_trial_that_had_plateaued_does_not_train_on() -> None:
    """The driver died after the stopper ended a trial: its last checkpoint already plateaued,
    so the rerun re-reports that epoch (and the stopper ends it there) instead of training."""
    from search.trainable import TrialContext, _ended_at_plateau

    def context(stop: bool) -> TrialContext:
        return TrialContext(data={}, train={**SETTINGS, "plateau_stop": stop}, epochs=8,
                            num_threads=1, device="cpu")

    flat = {"history": [{"epoch": e, "val/acc1": 0.25} for e in (1, 2, 3)]}
    rising = {"history": [{"epoch": e, "val/acc1": 0.1 * e} for e in (1, 2, 3)]}
    assert _ended_at_plateau(flat, context(True))
    assert not _ended_at_plateau(flat, context(False))
    assert not _ended_at_plateau(rising, context(True))


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(("override", "expected"), [
    ("train.plateau_patience=0", "train.plateau_patience: must be >= 1"),
    ("train.plateau_patience=1.5", "train.plateau_patience: wrong type"),
    ("train.plateau_min_delta=-0.1", "train.plateau_min_delta: must be >= 0"),
    ("train.plateau_min_delta=nan", "train.plateau_min_delta: must be >= 0"),
    ("train.plateau_metric=val/acc5", "train.plateau_metric: unknown curve 'val/acc5'"),
    ("train.plateau_stop=maybe", "train.plateau_stop:"),
    ("data.data_seed=-1", "data.data_seed: must be null or in 0.."),
    ("data.data_seed=4294967296", "data.data_seed: must be null or in 0.."),
    ("data.data_seed=abc", "data.data_seed: wrong type"),
])
def test_bad_protocol_values_are_one_line_and_leave_the_database(override: str, expected: str,
                                                                 tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "studies.db"
    open_engine(f"sqlite:///{db}", create=True).dispose()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["study=smoke", override, f"storage=sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- loading ----------------------------------------------------------------------------------


def test_load_trials_has_the_protocol_columns_also_for_old_databases(tmp_path: Path) -> None:
    """A database made before migration 0003 opens (upgraded by the writer) and loads; its
    trials have missing protocol values, new trials the recorded ones."""
    from alembic import command
    from sqlalchemy import create_engine

    from search.results.opening import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    spec = preset("mc3", num_classes=4, clip_len=8)
    raw = create_engine(url)
    with raw.begin() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.exec_driver_sql("INSERT INTO studies (id, name, kind, config_json, package_version,"
                             " created_at) VALUES (1, 'old', 'grid', '{}', '0', '2025-01-01')")
        conn.exec_driver_sql("INSERT INTO archs (arch_id, spec_json, macs, params, "
                             "per_layer_json, created_at) VALUES (?, ?, 1000, 10, '[]', "
                             "'2025-01-01')", (spec.arch_id, spec.to_json()))
        conn.exec_driver_sql("INSERT INTO trials (id, study_id, number, arch_id, seed, "
                             "params_json, state, attempt, started_at, resources_json) VALUES "
                             "(1, 1, 0, ?, 0, '{}', 'COMPLETE', 1, '2025-01-01', '{}')",
                             (spec.arch_id,))
    raw.dispose()
    engine = open_engine(url, create=True)
    with session_scope(engine) as s:
        row = start_trial(s, 1, arch_id=spec.arch_id, seed=1)
        record_protocol(s, row.id, data_seed=trial_data_seed(None, 1), plateaued=True,
                        train_val_gap=0.5, chance_acc=0.25, majority_acc=0.3)
        finish_trial(s, row.id, TrialState.COMPLETE, results={"val/acc1": 0.4})
    df = load_trials(engine, "old").set_index("seed")
    engine.dispose()
    assert str(df["data_seed"].dtype) == "Int64" and str(df["plateaued"].dtype) == "boolean"
    old, new = df.loc[0], df.loc[1]
    assert all(pd.isna(old[c]) for c in ("data_seed", "plateaued", "train_val_gap",
                                         "chance_acc", "majority_acc"))
    assert new["data_seed"] == trial_data_seed(None, 1) and bool(new["plateaued"]) is True
    assert (new["train_val_gap"], new["chance_acc"], new["majority_acc"]) == (0.5, 0.25, 0.3)


def test_record_protocol_names_only_protocol_columns(tmp_path: Path) -> None:
    from search.results.store import StoreError

    engine = open_engine(f"sqlite:///{tmp_path / 's.db'}", create=True)
    spec = preset("mc3", num_classes=4, clip_len=8)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "x", kind="grid", config={})
        upsert_arch(s, spec.arch_id, spec.to_json(), macs=1, params=1)
        row = start_trial(s, study.id, arch_id=spec.arch_id, seed=0)
        with pytest.raises(StoreError, match="not a protocol column of trials: state"):
            record_protocol(s, row.id, state="COMPLETE")
    engine.dispose()
