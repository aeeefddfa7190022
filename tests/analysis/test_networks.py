"""Parallel-coordinates data, the diff of two networks, and one network across studies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import analysis
from analysis.synthetic import bottom_vs_top_trials, write_trials
from search.results.store import open_engine


@pytest.fixture(scope="module")
def grid(demo_db: Path) -> pd.DataFrame:
    return analysis.load_trials(demo_db, "bottom_vs_top")


def _arch(df: pd.DataFrame, label: str) -> str:
    return str(df.loc[df["label"] == label, "arch_id"].iloc[0])


def test_choice_table_keeps_the_choices_that_vary(grid: pd.DataFrame) -> None:
    table = analysis.choice_table(grid, fields=("kind", "inflate"))
    assert len(table) == grid["arch_id"].nunique()
    # the grid places kinds per stage: a stage's two blocks are one column
    assert "stage1.kind" in table and "stage1.block1.kind" not in table
    assert "val/acc1" in table and "mmacs" in table
    assert not any(c.endswith("inflate") for c in table)  # never varies in this grid
    assert table["mmacs"].max() == pytest.approx(grid["macs"].max() / 1e6)
    mc3 = table.set_index("name").loc["mc3"]
    assert (mc3["stem.kind"], mc3["stage1.kind"], mc3["stage2.kind"]) == ("3d", "3d", "2d")


def test_diff_marks_the_differing_blocks_and_pairs_the_seeds(demo_db: Path,
                                                             grid: pd.DataFrame) -> None:
    a, b = _arch(grid, "mc3"), _arch(grid, "rmc3")
    layers_a = pd.DataFrame(analysis.load_arch(demo_db, a)[1])
    layers_b = pd.DataFrame(analysis.load_arch(demo_db, b)[1])
    diff = analysis.network_diff(layers_a, layers_b, grid, a, b)
    kinds_differ = layers_a["kind"].to_numpy() != layers_b["kind"].to_numpy()
    assert diff.blocks["differs"].tolist() == kinds_differ.tolist()
    assert diff.n_differing == int(kinds_differ.sum()) > 0
    assert all("kind" in c for c in diff.blocks.loc[diff.blocks["differs"], "changed"])
    per_seed = grid[grid["state"] == "COMPLETE"].pivot_table(index="seed", columns="arch_id",
                                                             values="val/acc1")
    expected = (per_seed[a] - per_seed[b]).dropna()
    assert diff.delta["n_pairs"] == len(expected) == 3
    assert diff.delta["delta"] == pytest.approx(expected.mean())
    assert diff.delta["ci_low"] < diff.delta["delta"] < diff.delta["ci_high"]
    same = analysis.network_diff(layers_a, layers_a, grid, a, a)
    assert same.n_differing == 0 and same.delta["delta"] == 0.0


def test_one_network_in_every_study_that_ran_it(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    trials = bottom_vs_top_trials(seeds=(0, 1))
    write_trials(engine, "first", trials)
    write_trials(engine, "second", [t for t in trials if t.label in ("mc3", "r2d")])
    engine.dispose()
    df = analysis.load_trials(path, "first")
    mc3 = _arch(df, "mc3")
    assert analysis.studies_of_arch(path, mc3) == ["first", "second"]
    across = analysis.load_cross_study(path, mc3)
    assert across["study"].tolist() == ["first", "second"]
    assert (across["name"] == "mc3").all() and (across["n_seeds"] == 2).all()
    assert across.set_index("study").loc["second", "n_networks"] == 2
    assert across.set_index("study").loc["second", "rank"] == 1  # mc3 beats r2d
    assert analysis.load_cross_study(path, "no-such-arch").empty
