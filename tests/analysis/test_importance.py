"""``analysis.importance`` (Optuna's evaluators) and the per-position view."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis.importance import position_ranking, searched_params
from analysis.synthetic import random_trials, write_trials
from arch_space.spec import TEMPORAL_KINDS, ArchSpec
from search.results.store import open_engine

ROOT = Path(__file__).resolve().parents[2]
ONLY = "stage3.block1"  # the one position the made-up accuracy depends on
GAIN = {"2d": 0.0, "3d": 0.12, "2plus1d": 0.09, "p3d_b": 0.05, "p3d_c": 0.07}


def _one_position(spec: ArchSpec) -> float:
    """True accuracy that depends on the kind at ``ONLY`` and nothing else."""
    return 0.5 + GAIN[dict(spec.block_paths())[ONLY].kind]


@pytest.fixture(scope="module")
def one_position(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A random search (40 networks x 2 seeds, extents 3 or 5) written through the store."""
    path = tmp_path_factory.mktemp("importance") / "one.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    write_trials(engine, "one_position", random_trials(40, seeds=(0, 1), t_kernels=(3, 5),
                                                       truth=_one_position, pruned_frac=0.0),
                 kind="random")
    engine.dispose()
    return analysis.load_trials(path, "one_position")


def test_per_position_view_ranks_the_position_that_matters_first(one_position) -> None:
    effects = analysis.position_effects(one_position, "val/acc1", n_boot=200)
    ranking = position_ranking(effects)
    assert ranking.iloc[0]["position"] == ONLY and ranking.iloc[0]["field"] == "kind"
    cell = effects.set_index(["position", "field"]).loc[(ONLY, "kind")]
    assert cell["omega2"] > 0.8 and cell["ci_low"] > 0.5  # it explains most of the variance
    others = effects[(effects["position"] != ONLY) & effects["omega2"].notna()]
    assert (others["omega2"] < cell["ci_low"]).all()


def test_extent_is_explained_only_where_the_position_is_temporal(one_position) -> None:
    effects = analysis.position_effects(one_position, "val/acc1", n_boot=50).set_index(
        ["position", "field"])
    nets = one_position.groupby("arch_id").first()
    for position in ("stage1.block1", ONLY):
        row = effects.loc[(position, "t_kernel")]
        temporal = nets[f"{position}.kind"].isin(TEMPORAL_KINDS).sum()
        assert row["subset"] == "only where temporal" and row["n"] == temporal < len(nets)
    stage = analysis.position_effects(one_position, "val/acc1", level="stage", n_boot=50)
    assert list(stage["position"].unique()) == ["stem", "stage1", "stage2", "stage3", "stage4"]
    kinds = stage[stage["field"] == "kind"].set_index("position")
    # 5 kinds x 2 blocks = up to 25 combinations per stage: 40 networks cannot say, and do not
    assert kinds.loc["stage3", "note"].startswith("too few networks")


def test_per_stage_view_ranks_the_stage_that_matters_first(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'stage.db'}", create=True)
    write_trials(engine, "two_kinds", random_trials(
        30, kinds=("2d", "3d"), truth=lambda spec: 0.5 + (0.1 if dict(spec.block_paths())[
            ONLY].kind == "3d" else 0.0), pruned_frac=0.0, n_epochs=2), kind="random")
    engine.dispose()
    df = analysis.load_trials(tmp_path / "stage.db", "two_kinds")
    stage = analysis.position_effects(df, "val/acc1", level="stage", n_boot=100)
    assert position_ranking(stage).iloc[0]["position"] == "stage3"


def test_omega_squared_matches_a_one_way_anova_by_hand(one_position) -> None:
    effects = analysis.position_effects(one_position, "val/acc1", n_boot=10).set_index(
        ["position", "field"])
    nets = one_position.groupby(["arch_id", "seed"])["val/acc1"].mean().groupby("arch_id").mean()
    kinds = one_position.groupby("arch_id")[f"{ONLY}.kind"].first()
    y = nets.to_numpy()
    groups = [nets[kinds == k].to_numpy() for k in kinds.unique()]
    ss_total = ((y - y.mean()) ** 2).sum()
    ss_between = sum(len(g) * (g.mean() - y.mean()) ** 2 for g in groups)
    ms_within = (ss_total - ss_between) / (len(y) - len(groups))
    omega2 = (ss_between - (len(groups) - 1) * ms_within) / (ss_total + ms_within)
    row = effects.loc[(ONLY, "kind")]
    assert row["eta2"] == pytest.approx(ss_between / ss_total)
    assert row["omega2"] == pytest.approx(omega2)


def test_optuna_importance_finds_the_position_and_sums_to_one(one_position) -> None:
    table = analysis.importance(one_position, metric="val/acc1")
    sampled = set().union(*(json.loads(p) for p in one_position["params_json"]))
    assert set(table["param"]) == sampled  # one row per searched choice
    assert table["importance"].sum() == pytest.approx(1.0)
    assert table["fanova"].dropna().sum() == pytest.approx(1.0)
    assert table.iloc[0]["param"] == f"{ONLY}.kind"
    fanova = table.dropna(subset=["fanova"]).sort_values("fanova", ascending=False)
    assert fanova.iloc[0]["param"] == f"{ONLY}.kind"
    conditional = table.set_index("param")["conditional"]
    assert conditional[f"{ONLY}.t_kernel"] and not conditional[f"{ONLY}.kind"]
    assert table.set_index("param")["fanova"].isna()[f"{ONLY}.t_kernel"]  # Optuna: not in all


def test_ped_anova_alone_skips_the_forest_and_gives_the_same_ranking(one_position) -> None:
    both = analysis.importance(one_position, metric="val/acc1")
    alone = analysis.importance(one_position, metric="val/acc1", fanova=False)
    assert alone["fanova"].isna().all()
    pd.testing.assert_frame_equal(alone.drop(columns="fanova"), both.drop(columns="fanova"))
    with pytest.raises(ValueError, match=r"^evaluator: 'fanova' needs fanova=True"):
        analysis.importance(one_position, metric="val/acc1", evaluator="fanova", fanova=False)


def test_a_grid_uses_the_spec_fields_that_differ(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    params = searched_params(df)
    assert "stage1.block1.kind" in params and "stage4.block2.t_kernel" not in params  # t fixed
    assert "stage1.block1.inflate" not in params  # never varied
    table = analysis.importance(df, metric="val/acc1", evaluator="fanova")
    assert table["importance"].sum() == pytest.approx(1.0)
    assert table["importance"].equals(table["fanova"])
    with pytest.raises(ValueError, match="evaluator"):
        analysis.importance(df, evaluator="shap")


def test_nothing_to_explain_gives_empty_frames(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    assert analysis.importance(df.iloc[0:0]).empty
    one = df[df["label"] == "mc3"]  # one network, no choice varies
    assert analysis.importance(one).empty
    effects = analysis.position_effects(one, n_boot=10)
    assert effects["omega2"].isna().all() and set(effects["note"]) >= {"not varied"}


@pytest.mark.slow
def test_importance_of_a_real_search(tmp_path: Path) -> None:
    """A tiny NSGA-II search through ``python -m search.run``; importance of its stored trials."""
    db = tmp_path / "studies.db"
    tiny = ["data.clip_len=4", "data.size=16", "data.n_train=32", "data.n_val=16",
            "data.object_size=3", "data.target_size=6", "data.n_distractors=2",
            "train.batch_size=8", "train.warmup_epochs=0", "train.epochs=2"]
    subprocess.run(
        [sys.executable, "-m", "search.run", "study=free_search", "study.num_samples=6",
         "study.scheduler.kind=none", *tiny, f"storage=sqlite:///{db}",
         f"hardware.checkpoint_dir={tmp_path / 'ray'}", "hardware.num_cpus=2"],
        cwd=tmp_path, check=True, capture_output=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"})
    df = analysis.load_trials(db, "free_search")
    # searched networks are named by their placement, not by a hash
    assert df["label"].str.match(r"(2d|3d|2plus1d|p3d_b|p3d_c)(\(t\d\))?:s0").all()
    assert not df["label"].str.startswith("arch-").any()
    table = analysis.importance(df, metric="val/acc1")
    done = df[df["state"] == "COMPLETE"]
    sampled = set().union(*(json.loads(p) for p in done["params_json"]))
    assert sampled and set(table["param"]) == sampled
    assert table["importance"].sum() == pytest.approx(1.0)
    assert np.isfinite(table["ped_anova"]).all()
