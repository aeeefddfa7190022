"""Reading a database written through the real store: trials, curves, errors, export."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import analysis
from analysis import NoDataError, load_curves, load_trials
from analysis.synthetic import PAPER_PRESETS
from arch_space.presets import preset
from search.results.schema import TrialState
from search.results.store import (
    finish_trial,
    get_or_create_study,
    open_engine,
    record_epoch,
    session_scope,
    start_trial,
    upsert_arch,
)


def test_one_row_per_trial_with_spec_cost_and_metrics(demo_db: Path) -> None:
    df = load_trials(demo_db, "bottom_vs_top")
    assert len(df) == len(PAPER_PRESETS) * 3
    assert (df["study"] == "bottom_vs_top").all()
    assert df["number"].is_unique
    for col in ("state", "seed", "label", "arch_id", "macs", "gmacs", "params", "latency_ms",
                "stem.kind", "stage2.block1.kind", "stage2.block1.t_kernel",
                "stage2.block1.inflate", "family", "t_com", "t_share_bottom", "t_share_top",
                "val/acc1", "train/loss", "num_classes", "data_seed", "plateaued",
                "train_val_gap", "chance_acc", "majority_acc"):
        assert col in df, col
    assert "acc_per_gmac" not in df  # a ratio that ranks chance-level cheap nets high
    assert df["plateaued"].map(lambda v: v is False).sum() == 1  # mc2 on its last seed
    assert (df.loc[df["state"] == "COMPLETE", "chance_acc"] == 0.1).all()
    assert df["state"].value_counts().to_dict() == {"COMPLETE": 31, "PRUNED": 1, "FAILED": 1}
    by_label = df.drop_duplicates("label").set_index("label")
    assert by_label.loc["mc3", "family"] == "bottom-heavy"
    assert by_label.loc["rmc3", "family"] == "top-heavy"
    assert by_label.loc["mc3", "stage1.block1.kind"] == "3d"
    assert by_label.loc["mc3", "arch_id"] == preset("mc3", num_classes=10, clip_len=8).arch_id
    assert by_label.loc["r3d", "gmacs"] == pytest.approx(by_label.loc["r3d", "macs"] / 1e9)
    failed = df[df["state"] == "FAILED"].iloc[0]
    assert math.isnan(failed["train/loss"])  # stored as a NaN tag, decoded back


def test_all_studies_and_listing(demo_db: Path) -> None:
    everything = load_trials(str(demo_db))
    assert set(everything["study"]) == {"bottom_vs_top", "random_placement"}
    listing = analysis.list_studies(f"sqlite:///{demo_db}")
    row = listing.set_index("name").loc["bottom_vs_top"]
    assert row["n_trials"] == len(PAPER_PRESETS) * 3 and row["PRUNED"] == 1


def test_curves_long_and_filtered(demo_db: Path) -> None:
    df = load_trials(demo_db, "bottom_vs_top")
    curves = load_curves(demo_db, "bottom_vs_top")
    assert {"trial_id", "epoch", "name", "value", "state", "seed"} <= set(curves.columns)
    complete = df[df["state"] == "COMPLETE"]["trial_id"].iloc[0]
    assert curves[(curves["trial_id"] == complete) & (curves["name"] == "val/acc1")][
        "epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    pruned = df[df["state"] == "PRUNED"]["trial_id"].iloc[0]
    assert curves[curves["trial_id"] == pruned]["epoch"].max() == 2
    only = load_curves(demo_db, "bottom_vs_top", trial_ids=[int(complete)], names=["val/acc1"])
    assert set(only["name"]) == {"val/acc1"} and set(only["trial_id"]) == {complete}
    assert "val/acc1" in analysis.curve_names(demo_db, "bottom_vs_top")
    wide = analysis.curves_wide(only)
    assert list(wide.columns) == ["trial_id", "epoch", "val/acc1"]


def test_non_finite_values_round_trip(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'inf.db'}", create=True)
    spec = preset("mc3", num_classes=10, clip_len=8)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "inf", kind="grid", config={})
        upsert_arch(s, spec.arch_id, spec.to_json(), macs=10**9, params=10)
        trial = start_trial(s, study.id, arch_id=spec.arch_id, seed=0)
        record_epoch(s, trial.id, 1, {"train/loss": math.inf})
        finish_trial(s, trial.id, TrialState.FAILED, results={"train/loss": -math.inf})
    df = load_trials(engine, "inf")
    assert df.loc[0, "train/loss"] == -math.inf
    assert load_curves(engine, "inf")["value"].tolist() == [math.inf]
    engine.dispose()


def test_errors_say_what_to_do(tmp_path: Path, demo_db: Path) -> None:
    with pytest.raises(NoDataError, match="no database") as missing:
        load_trials(tmp_path / "nope.db")
    assert missing.value.hint == analysis.RUN_HINT
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(NoDataError):
        load_trials(junk)
    import sqlite3
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE cats (name TEXT)")
    with pytest.raises(NoDataError, match="not a vidarch database"):
        load_trials(other)
    with pytest.raises(NoDataError, match="no study called 'ghost'") as ghost:
        load_trials(demo_db, "ghost")
    assert "study=ghost" in ghost.value.hint


def test_export_round_trip(demo_db: Path, tmp_path: Path) -> None:
    df = load_trials(demo_db, "bottom_vs_top")
    csv = analysis.export(df, tmp_path / "t.csv")
    pq = analysis.export(df, tmp_path / "t.parquet")
    back_csv, back_pq = pd.read_csv(csv), pd.read_parquet(pq)
    assert len(back_csv) == len(back_pq) == len(df)
    assert back_pq["val/acc1"].equals(df["val/acc1"])
    assert analysis.to_csv(df).startswith("study,")
    with pytest.raises(ValueError, match=r"csv or \.parquet"):
        analysis.export(df, tmp_path / "t.xlsx")


def test_verdict_and_budget(demo_db: Path) -> None:
    df = load_trials(demo_db, "bottom_vs_top")
    verdict = analysis.verdict(df)
    assert verdict["winner"]["group"] in analysis.FAMILIES
    bt = verdict["bottom_vs_top"]
    assert bt is not None and bt["better"] == "bottom-heavy"  # what the synthetic model favours
    assert any("Bottom-heavy vs top-heavy" in s for s in verdict["sentences"])
    best = analysis.best_per_group(df)
    assert best["family"].is_unique
    spent = analysis.budget(df, analysis.study_config(demo_db, "bottom_vs_top"))
    assert spent["finished"] == len(df) and spent["planned"] == len(df)


def test_analysis_never_imports_torch_or_ray() -> None:
    code = ("import sys, analysis, analysis.figures, analysis.synthetic; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'ray')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_driver_totals_and_missing_latency(tmp_path: Path) -> None:
    # the driver also reports macs/params as final results, and may store no latency
    engine = open_engine(f"sqlite:///{tmp_path / 'driver.db'}", create=True)
    spec = preset("rmc3", num_classes=4, clip_len=8, crop_size=32)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "bottom_vs_top", kind="grid", config={})
        upsert_arch(s, spec.arch_id, spec.to_json(), macs=9_470_000, params=223_700)
        trial = start_trial(s, study.id, arch_id=spec.arch_id, seed=0, label="rmc3",
                            family="top-heavy")
        finish_trial(s, trial.id, TrialState.COMPLETE,
                     results={"val/acc1": 0.4, "macs": 1.0, "params": 2.0, "epoch": 2})
    df = load_trials(engine, "bottom_vs_top")
    assert df.loc[0, "macs"] == 9_470_000 and df.loc[0, "params"] == 223_700
    assert df.loc[0, "epoch"] == 2 and df.loc[0, "design_family"] == "top-heavy"
    assert math.isnan(df.loc[0, "latency_ms"])
    assert analysis.summary.fmt_macs(df.loc[0, "gmacs"]) == "9.47 MMACs"
    engine.dispose()
