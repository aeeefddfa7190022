"""An exhaustive grid over a search space (design=space, sampler=grid): points, params, cells."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from arch_space.space import SearchSpace
from search.design.composing import compose, to_run_config
from search.design.space_grid import space_points
from search.design.studies import build_design
from search.run import main

TINY = {"base": {"widths": [4, 8], "depths": [1, 1], "clip": "4x16x16", "num_classes": 3,
                 "stem": {"kind": "2d", "width": 4}},
        "choices": {"stem": {"kind": ["2d", "3d"], "t_kernel": [3, 5]},
                    "stage1": {"kind": ["2d", "3d", "2plus1d"]},
                    "stage2": {"kind": ["2d", "3d"]}}}


def test_every_point_once_with_the_params_that_sample_it() -> None:
    space = SearchSpace.from_yaml(TINY)
    points = space_points(space)
    assert len(points) == len(space.enumerate()) == (1 + 2) * 3 * 2  # stem t only when 3d
    assert len({p.spec.arch_id for p in points}) == len(points)
    assert len({p.label for p in points}) == len(points)
    for p in points:
        assert space.spec_from_params(p.params).arch_id == p.spec.arch_id
        # the extent is a parameter only where the kind is temporal (conditional sampling)
        assert ("stem.t_kernel" in p.params) == (p.params["stem.kind"] == "3d")
    assert {p.n_temporal for p in points} == {0, 1, 2, 3}


def test_a_sampler_meets_the_grid_on_its_arch_ids() -> None:
    space = SearchSpace.from_yaml(TINY)
    ids = {p.spec.arch_id for p in space_points(space)}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(30):
        assert space.sample(study.ask()).arch_id in ids


def test_bench_video_preset_is_an_exhaustive_grid() -> None:
    cfg = to_run_config(compose(["study=bench_video"]))
    design = build_design(cfg)
    assert design.is_grid and design.seeds == (0, 1, 2)
    assert len(design.cells) == 3 ** 5 >= 200
    assert len({c.label for c in design.cells}) == len(design.cells)
    assert design.cells[0].label == "2d-2d-2d-2d-2d"
    assert {c.family for c in design.cells} == {f"{n}/5 temporal" for n in range(6)}
    assert cfg.study.scheduler.kind == "none"  # the benchmark trains every epoch


def test_an_impossible_grid_budget_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["study=bench_video", "study.max_macs=1k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: study.space.constraints") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_the_same_space_still_searches(sampler: str) -> None:
    cfg = to_run_config(compose(["study=bench_video", f"study.sampler={sampler}",
                                 "study.num_samples=5"]))
    design = build_design(cfg)
    assert not design.is_grid and design.num_samples == 5
