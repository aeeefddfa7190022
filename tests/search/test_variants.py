"""Study variants (``study.variants``): one study per knob value, each checked, matched, stored
and resumed on its own; and the findings presets built on them (fast, no Ray, except the
end-to-end run marked slow)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from arch_space.estimate import estimate_macs, estimate_params
from search.design.composing import ConfigError, compose, options, studies_of
from search.design.matching import MATCH_TOL
from search.design.studies import build_design
from search.design.variants import VariantError, check, family, label
from search.run import main

FINDINGS = ("placement_crossover", "bottom_vs_top_data", "conv_kinds", "temporal_extent",
            "inflation", "factorization")


def _studies(*overrides: str):
    return studies_of(compose(list(overrides)))


def test_a_study_without_variants_is_itself() -> None:
    (cfg,) = _studies("study=smoke")
    assert cfg.study.name == "smoke" and cfg.study.variants == []


def test_each_variant_is_a_study_with_its_settings_merged() -> None:
    cfgs = _studies("study=smoke", "study.variants=[{data:{scale:2}},"
                    "{label:big,data:{n_train:64},train:{epochs:2}}]")
    assert [c.study.name for c in cfgs] == ["smoke.scale2", "smoke.big"]
    assert (cfgs[0].data.scale, cfgs[0].data.n_train, cfgs[0].train.epochs) == (2.0, 32, 1)
    assert (cfgs[1].data.scale, cfgs[1].data.n_train, cfgs[1].train.epochs) == (1.0, 64, 2)
    assert all(c.study.seeds == [0, 1] for c in cfgs)  # seeds are shared: pairs across knobs
    assert family("smoke.big") == "smoke" and family("a_b.scale1p5") == "a_b"


def test_default_labels_name_the_settings() -> None:
    assert label(0, {"data": {"scale": 3.0}}) == "scale3"
    assert label(0, {"data": {"scale": 1.5}}) == "scale1p5"
    assert label(0, {"data": {"n_train": 256}, "train": {"epochs": 32}}) == "n_train256-epochs32"
    assert label(0, {"study": {"t_kernels": [1, 3]}}) == "t_kernels1-3"
    assert label(0, {"label": "small", "data": {"n_train": 256}}) == "small"


@pytest.mark.parametrize(("variants", "message"), [
    ([{"data": {"scale": 2}}, {"data": {"scale": 2}}], r"^study\.variants\[1\]: label 'scale2' "
                                                       r"is used twice"),
    ([{"hardware": {"num_cpus": 1}}], r"^study\.variants\[0\]\.hardware: a variant sets"),
    ([{"study": {"seeds": [0]}}], r"^study\.variants\[0\]\.study\.seeds: fixed"),
    ([{"label": "a.b", "data": {"scale": 2}}], r"^study\.variants\[0\]\.label: 'a.b'"),
    ([{}], r"^study\.variants\[0\]: sets nothing"),
    (["scale=2"], r"^study\.variants\[0\]: a mapping"),
])
def test_bad_variants_name_their_index(variants, message) -> None:
    with pytest.raises(VariantError, match=message):
        check(variants)


@pytest.mark.parametrize(("override", "message"), [
    ("study.variants=[{data:{scal:2}}]", "study.variants[0].data.scal: Key 'scal' not in"),
    ("study.variants=[{data:{scale:big}}]", "study.variants[0].data.scale: Value 'big'"),
    ("study.variants=[{study:{name:x}}]", "study.variants[0].study.name: fixed"),
])
def test_bad_variants_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _studies("study=smoke", override)
    assert str(err.value).startswith(message)


def test_bad_variant_exits_2_naming_it(capsys, tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    code = main(["study=smoke", "study.variants=[{data:{n_train:32}},{data:{scale:0}}]",
                 f"storage=sqlite:///{db}"])
    assert code == 2 and not db.exists()  # every variant is checked before anything runs
    assert capsys.readouterr().err.startswith("error: data.scale: must be > 0")


def test_dry_run_lists_every_variant(capsys) -> None:
    assert main(["study=placement_crossover", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for scale in (1, 2, 4):
        assert f"study placement_crossover.scale{scale}: 3 arms x 8 seed(s), match macs" in out


@pytest.mark.parametrize("study", FINDINGS)
def test_findings_presets_every_variant_matched_with_8_seeds(study: str) -> None:
    cfgs = _studies(f"study={study}")
    for cfg in cfgs:
        design = build_design(cfg)
        assert len(design.seeds) >= 8 and len(design.cells) >= 2, cfg.study.name
        assert cfg.study.contrasts, cfg.study.name
        cost = estimate_macs if design.matching.mode == "macs" else estimate_params
        for cell in design.cells:
            assert abs(cost(cell.spec) / design.matching.target - 1) <= MATCH_TOL, cell.label


def test_placement_crossover_changes_only_the_scale() -> None:
    cfgs = _studies("study=placement_crossover")
    assert [c.data.scale for c in cfgs] == [1.0, 2.0, 4.0]
    designs = [build_design(c) for c in cfgs]
    assert {c.family for c in designs[0].cells} == {"bottom-heavy", "top-heavy", "uniform 3D"}
    # the same matched networks at every scale: only the data moves
    assert len({tuple(c.spec.arch_id for c in d.cells) for d in designs}) == 1


def test_inflation_sizes_keep_the_step_count_and_the_control_shuffles() -> None:
    cfgs = {c.study.name: c for c in _studies("study=inflation")}
    steps = {name: c.data.n_train * c.train.epochs for name, c in cfgs.items()}
    assert len(set(steps.values())) == 1, steps
    control = cfgs["inflation.n256_shuffled"]
    assert control.study.pretrain_shuffle and not cfgs["inflation.n256"].study.pretrain_shuffle
    cells = {c.label: c for c in build_design(control).cells}
    assert set(cells) == {"3d_shuffled", "3d_scratch"}
    assert cells["3d_shuffled"].pretrained and cells["3d_shuffled"].family == "shuffled"
    real = {c.label: c for c in build_design(cfgs["inflation.n256"]).cells}
    assert real["3d_inflated"].spec == cells["3d_shuffled"].spec  # one network, two treatments


def test_conv_kinds_cycle_repeats_within_stages_and_rotates() -> None:
    (cfg,) = _studies("study=conv_kinds")
    cells = {c.label: c for c in build_design(cfg).cells}
    a, b, c = "2plus1d", "p3d_b", "p3d_c"
    expected = {"p3d_mix": [a, b, c, a, b, c, a, b], "p3d_mix_bca": [b, c, a, b, c, a, b, c],
                "p3d_mix_cab": [c, a, b, c, a, b, c, a]}
    for name, kinds in expected.items():
        blocks = [block.kind for _, block in cells[name].spec.block_paths()]
        assert blocks == kinds, name
        assert cells[name].family == "P3D cycle"
    assert cells["p3d_a"].family == "p3d" and cells["2d"].family == "2d"
    assert all(len(s.blocks) == 2 for s in cells["p3d_mix"].spec.stages)
    assert build_design(cfg).matching.mode == "params"


def test_temporal_extent_is_a_cross_with_the_gap_fixed() -> None:
    (cfg,) = _studies("study=temporal_extent")
    cells = {c.label: c for c in build_design(cfg).cells}
    assert set(cells) == {"3d_t5_T10", "3d_t5_T12", "3d_t5_T16", "2d_t1_T12", "3d_t3_T12",
                          "3d_t7_T12"}
    assert cfg.data.event_gap == 6
    assert cells["3d_t5_T16"].data == {"clip_len": 16}
    # the input-length arms are one network (clip aside): the same parameters
    params = {label: estimate_params(c.spec) for label, c in cells.items()}
    assert params["3d_t5_T10"] == params["3d_t5_T12"] == params["3d_t5_T16"]
    # without kernel_clip_len the design is the full grid, as before
    (grid,) = _studies("study=temporal_extent", "study.kernel_clip_len=null")
    assert len(build_design(grid).cells) == 3 * 4


def test_factorization_declares_loss_and_accuracy() -> None:
    (cfg,) = _studies("study=factorization")
    design = build_design(cfg)
    assert {c.label for c in design.cells} == {"r3d", "r2plus1d"}
    assert design.matching.mode == "params"
    assert list(cfg.study.objectives) == ["val/acc1", "train/loss"]


def test_make_study_default_stays_small() -> None:
    (cfg,) = _studies()
    assert cfg.study.name == "bottom_vs_top" and len(cfg.study.seeds) <= 3
    assert "bottom_vs_top_data" in options("study")


@pytest.mark.slow
def test_variants_run_as_studies_and_resume(tmp_path: Path) -> None:
    db = tmp_path / "variants.db"
    argv = ["study=smoke", "study.seeds=[0]", f"storage=sqlite:///{db}",
            "study.variants=[{data:{n_train:16}},{label:more,data:{n_train:32}}]",
            f"hardware.checkpoint_dir={tmp_path / 'ray'}", "progress_interval_s=60"]
    assert main(argv) == 0
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT s.name, COUNT(t.id), SUM(t.state = 'COMPLETE') FROM studies s "
                           "JOIN trials t ON t.study_id = s.id GROUP BY s.name ORDER BY s.name")
        assert rows.fetchall() == [("smoke.more", 2, 2), ("smoke.n_train16", 2, 2)]
        configs = dict(con.execute("SELECT name, config_json FROM studies"))
    assert '"n_train": 32' in configs["smoke.more"]
    assert main(argv) == 0  # resumes: nothing left to run in either study
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM trials").fetchone() == (4,)


@pytest.mark.slow
def test_shuffled_control_reaches_pretraining_through_the_driver(tmp_path: Path) -> None:
    """inflation with study.pretrain_shuffle: the control arm is stored as 3d_shuffled, family
    shuffled, its study's config says so, and it starts from other weights than the truly
    pretrained arm (tests/search/test_pretrain.py: shuffled pretraining learns no digits)."""
    db = tmp_path / "infl.db"
    base = ["study=inflation", "study.seeds=[0]", f"storage=sqlite:///{db}",
            "study.pretrain_epochs=1", "study.net.widths=[4,8,8,8]",
            "study.net.temporal_downsample=false",
            "data.size=16", "data.clip_len=4", "data.n_train=32", "data.n_val=32",
            "data.object_size=3", "data.target_size=8", "train.epochs=1", "train.batch_size=8",
            "train.warmup_epochs=0", f"hardware.checkpoint_dir={tmp_path / 'ray'}",
            "progress_interval_s=60",
            "study.variants=[{label:labels},{label:control,study:{pretrain_shuffle:true,"
            "contrasts:['shuffled - scratch']}}]"]
    assert main(base) == 0
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT s.name, t.label, t.family, r.value FROM trials t JOIN studies "
                           "s ON s.id = t.study_id JOIN results r ON r.trial_id = t.id WHERE "
                           "r.name = 'train/loss' AND t.state = 'COMPLETE'").fetchall()
        configs = dict(con.execute("SELECT name, config_json FROM studies"))
    loss = {(study, label, family): value for study, label, family, value in rows}
    assert set(loss) == {("inflation.labels", "3d_inflated", "inflated"),
                         ("inflation.labels", "3d_scratch", "scratch"),
                         ("inflation.control", "3d_shuffled", "shuffled"),
                         ("inflation.control", "3d_scratch", "scratch")}
    assert '"pretrain_shuffle": true' in configs["inflation.control"]
    assert '"pretrain_shuffle": false' in configs["inflation.labels"]
    assert (loss[("inflation.labels", "3d_inflated", "inflated")]
            != loss[("inflation.control", "3d_shuffled", "shuffled")])
