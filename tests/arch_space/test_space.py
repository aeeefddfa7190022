"""SearchSpace: YAML declaration, Optuna define-by-run sampling, enumeration, constraints, ties,
error messages naming the block, and iso-MAC width scaling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import FixedTrial

from arch_space.cost import estimate_macs, estimate_params
from arch_space.presets import preset
from arch_space.scaling import scale_to_macs, scale_widths
from arch_space.space import SearchSpace, parse_clip, parse_count
from arch_space.spec import TEMPORAL_KINDS, SpecError

ROOT = Path(__file__).resolve().parents[2]  # the checkout: subprocesses import from it
SPACES = ROOT / "arch_space" / "spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)

# A small per-block space on a tiny base network (cheap to enumerate).
SMALL = {
    "name": "small",
    "base": {"widths": [8, 16], "depths": [2, 1], "stem": {"kind": "3d", "width": 8},
             "clip": "8x32x32", "num_classes": 5},
    "choices": {
        "stem": {"kind": ["2d", "3d"]},
        "stage1.*": {"kind": ["2d", "3d"], "t_kernel": [3, 5]},
        "stage2": {"kind": ["2d", "2plus1d"]},
    },
}


def _study_params(space: SearchSpace, seed: int, n_trials: int = 12) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(lambda trial: estimate_macs(space.sample(trial)) / 1e9, n_trials=n_trials)
    return [t.params for t in study.trials]


# --- the shipped spaces -------------------------------------------------------------------------
@pytest.mark.parametrize("name, size", [("per_stage_kinds", 3 ** 5), ("top_tie", 30),
                                        ("bottom_vs_top", 11), ("per_block_free", 2 * 9 ** 8),
                                        ("iso_mac_placements", 11)])
def test_shipped_spaces_load_and_count(name, size):
    space = SearchSpace.from_yaml(SPACES / f"{name}.yaml")
    assert space.name == name
    assert space.size() == size
    assert SearchSpace.from_yaml(name).size() == size  # a bare name finds the shipped file


def test_per_stage_kinds_enumerates_feasible_points_only():
    space = SearchSpace.from_yaml("per_stage_kinds")
    everything = space.enumerate(feasible_only=False)
    assert len(everything) == space.size() == 243
    assert len({s.arch_id for s in everything}) == 243
    feasible = space.enumerate()
    assert 0 < len(feasible) < 243
    assert all(estimate_macs(s) <= 45e9 and estimate_params(s) <= 35e6 for s in feasible)
    feasible_ids = {s.arch_id for s in feasible}
    rejected = [s for s in everything if s.arch_id not in feasible_ids]
    ok, reason = space.is_feasible(rejected[0])
    assert not ok and reason.startswith(("max_macs:", "max_params:"))


def test_parameter_names_mirror_spec_paths():
    assert SearchSpace.from_yaml("per_stage_kinds").param_names() == [
        "stem.kind", "stage1.kind", "stage2.kind", "stage3.kind", "stage4.kind"]
    assert SearchSpace.from_yaml(SMALL).param_names() == [
        "stem.kind", "stage1.block1.kind", "stage1.block1.t_kernel", "stage1.block2.kind",
        "stage1.block2.t_kernel", "stage2.kind"]
    assert SearchSpace.from_yaml("top_tie").param_names() == [
        "stem.kind", "bottom.kind", "top.kind", "top.t_kernel"]
    assert SearchSpace.from_yaml("bottom_vs_top").param_names() == ["preset"]


# --- sampling -----------------------------------------------------------------------------------
def test_sample_with_a_real_study_is_conditional():
    space = SearchSpace.from_yaml("per_block_free")
    for params in _study_params(space, seed=3, n_trials=15):
        for path in [f"stage{i}.block{j}" for i in range(1, 5) for j in (1, 2)]:
            kind = params[f"{path}.kind"]
            # t_kernel is suggested exactly when the block's kind is temporal
            assert (f"{path}.t_kernel" in params) == (kind in TEMPORAL_KINDS)
        assert set(params) <= set(space.param_names())


def test_sample_matches_the_suggested_values():
    space = SearchSpace.from_yaml(SMALL)
    trial = FixedTrial({"stem.kind": "2d", "stage1.block1.kind": "3d",
                        "stage1.block1.t_kernel": 5, "stage1.block2.kind": "2d",
                        "stage2.kind": "2plus1d"})
    spec = space.sample(trial)  # FixedTrial fails on any parameter it was not given
    assert spec.kinds() == {"stem": "2d", "stage1.block1": "3d", "stage1.block2": "2d",
                            "stage2.block1": "2plus1d"}
    assert spec.stages[0].blocks[0].t_kernel == 5 and spec.stages[0].blocks[1].t_kernel == 1
    assert spec.stem.t_kernel == 1
    # a stage's first block halves time only when its kind is temporal (torchvision, the paper)
    assert (spec.stages[1].blocks[0].t_stride, spec.stages[1].blocks[0].s_stride) == (2, 2)
    assert (spec.clip_len, spec.crop_size, spec.num_classes) == (8, 32, 5)
    assert space.spec_from_params(trial.params) == spec


def test_sampling_is_deterministic_for_a_sampler_seed():
    space = SearchSpace.from_yaml("per_stage_kinds")
    first = _study_params(space, seed=7)
    assert first == _study_params(space, seed=7)
    assert first != _study_params(space, seed=8)


def test_sampling_has_no_side_effects_and_needs_no_torch():
    code = ("import sys, optuna\n"
            "from arch_space.space import SearchSpace\n"
            "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
            "space = SearchSpace.from_yaml('per_block_free')\n"
            "study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))\n"
            "for _ in range(5):\n"
            "    trial = study.ask()\n"
            "    spec = space.sample(trial)\n"
            "    ok, reason = space.is_feasible(spec)\n"
            "    study.tell(trial, 1.0)\n"
            "assert 'torch' not in sys.modules and 'arch_space.builder' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_ties_share_one_decision():
    space = SearchSpace.from_yaml("top_tie")
    spec = space.sample(FixedTrial({"stem.kind": "3d", "bottom.kind": "2plus1d",
                                    "top.kind": "3d", "top.t_kernel": 5}))
    kinds = spec.kinds()
    assert {kinds[f"stage{i}.block{j}"] for i in (1, 2) for j in (1, 2)} == {"2plus1d"}
    assert {b.t_kernel for s in spec.stages[2:] for b in s.blocks} == {5}
    assert len(space.enumerate(feasible_only=False)) == 30


def test_an_explicit_block_overrides_its_stage_wildcard():
    data = {**SMALL, "choices": {"stage1.*": {"kind": ["2d", "3d"]},
                                 "stage1.block2": {"kind": ["p3d_b", "p3d_c"]}}}
    space = SearchSpace.from_yaml(data)
    assert space.param_names() == ["stage1.block1.kind", "stage1.block2.kind"]
    assert {s.kinds()["stage1.block2"] for s in space.enumerate()} == {"p3d_b", "p3d_c"}


def test_presets_space_gives_the_registered_networks():
    space = SearchSpace.from_yaml("bottom_vs_top")
    specs = space.enumerate()
    assert [s.arch_id for s in specs] == [preset(n, clip_len=8).arch_id for n in
                                          ["r2d", "mc2", "mc3", "mc4", "mc5", "rmc2", "rmc3",
                                           "rmc4", "rmc5", "r3d", "r2plus1d"]]
    assert space.sample(FixedTrial({"preset": "mc3"})) == preset("mc3", clip_len=8)


def test_named_placements_on_the_base():
    space = SearchSpace.from_yaml({
        "base": {"preset": "r3d_18"},
        "presets": [{"name": "bottom", "kinds": {"stem": "3d", "stage1": "3d", "stage2": "3d",
                                                 "stage3": "2d", "stage4": "2d"}},
                    {"name": "top", "kinds": {"stem": "2d", "stage1": "2d", "stage2": "2d",
                                              "stage3": "3d", "stage4": "3d"}}]})
    bottom, top = space.enumerate()
    assert bottom == preset("mc4")  # MC4 is 3D in the stem, conv2_x and conv3_x
    assert top == preset("rmc4")


def test_from_dict_and_omegaconf_agree():
    a = SearchSpace.from_yaml(SMALL)
    b = SearchSpace.from_yaml(OmegaConf.create(SMALL))
    assert [s.arch_id for s in a.enumerate()] == [s.arch_id for s in b.enumerate()]
    assert a.size() == len(a.enumerate()) == 2 * (1 + 2) ** 2 * 2


# --- constraints --------------------------------------------------------------------------------
def test_is_feasible_states_the_reason():
    space = SearchSpace.from_yaml({**SMALL, "constraints": {"max_macs": "1M", "clip": "8x32x32"}})
    ok, reason = space.is_feasible(space.sample(FixedTrial({
        "stem.kind": "3d", "stage1.block1.kind": "3d", "stage1.block1.t_kernel": 5,
        "stage1.block2.kind": "3d", "stage1.block2.t_kernel": 5, "stage2.kind": "2plus1d"})))
    assert not ok
    assert reason.startswith("max_macs:") and "8x32x32" in reason


def test_a_space_with_no_feasible_point_names_the_constraint():
    space = SearchSpace.from_yaml({**SMALL, "constraints": {"max_params": 100}})
    with pytest.raises(SpecError, match=r"^constraints\.max_params: every one of the 36 points"):
        space.enumerate()
    assert len(space.enumerate(feasible_only=False)) == 36


def test_constraints_at_a_stated_clip():
    spec = preset("r3d_18")
    tight = SearchSpace.from_yaml({"base": {"preset": "r3d_18"},
                                   "constraints": {"max_macs": 30e9, "clip": [16, 112, 112]}})
    loose = SearchSpace.from_yaml({"base": {"preset": "r3d_18"},
                                   "constraints": {"max_macs": 30e9, "clip": "8x112x112"}})
    assert not tight.is_feasible(spec)[0]
    assert loose.is_feasible(spec) == (True, "")  # half the frames, half the MACs


# --- errors name the block ----------------------------------------------------------------------
@pytest.mark.parametrize("choices, message", [
    ({"stage1.block2": {"kind": ["3d", "4d"]}}, r"^stage1\.block2\.kind: unknown kind '4d'"),
    ({"stage2.block1": {"t_kernel": [3, 4]}}, r"^stage2\.block1\.t_kernel: .* odd"),
    ({"stage2.block3": {"kind": ["3d"]}}, r"^choices\.stage2\.block3: no such block"),
    ({"stage7": {"kind": ["3d"]}}, r"^choices\.stage7: no such stage"),
    ({"stage1": {"kind": ["3d"]}, "stage1.*": {"kind": ["2d"]}},
     r"^stage1\.block1: decided by both"),
    ({"stage1": {"kind": ["2d"], "t_kernel": [3, 5]}},
     r"^stage1\.t_kernel: choices given, but the kind is always \['2d'\]"),
    ({"stage1": {"stride": [1, 2]}}, r"^stage1\.stride: unknown field"),
    ({"stem": {"kind": ["3d", "p3d_b"]}}, r"^stem\.kind: unknown stem kind"),
])
def test_bad_choices_name_the_block(choices, message):
    with pytest.raises(SpecError, match=message):
        SearchSpace.from_yaml({**SMALL, "choices": choices})


def test_impossible_points_name_the_block():
    # Explicit temporal strides: after R2D's stem (time collapsed to 1) stage 2 cannot halve time.
    data = {"base": {"widths": [8, 8, 8], "depths": [1, 1, 1], "stem": {"width": 8},
                     "clip": "4x16x16", "num_classes": 3, "t_strides": [1, 2, 1]},
            "choices": {"stem": {"kind": ["3d", "r2d"]}, "stage3": {"kind": ["2d", "3d"]}}}
    space = SearchSpace.from_yaml(data)
    with pytest.raises(SpecError, match=r"^stage2\.block1\.t_stride: .*"
                                        r"impossible point: stem\.kind=r2d, stage3\.kind=2d"):
        space.enumerate()
    assert len(space.enumerate(skip_impossible=True)) == 2
    with pytest.raises(SpecError, match=r"^stage2\.block1\.t_stride"):
        space.sample(FixedTrial({"stem.kind": "r2d", "stage3.kind": "3d"}))
    # a base that cannot work at all fails when the space is loaded, naming the block
    with pytest.raises(SpecError, match=r"^stage3\.block1\.t_stride"):
        SearchSpace.from_yaml({**data, "base": {**data["base"], "t_strides": [1, 2, 2],
                                                "clip": "2x16x16"}})


def test_strides_by_kind_never_halve_a_single_frame():
    # By kind (the default), the same short clip gives a valid network for every placement.
    data = {"base": {"widths": [8, 8, 8], "depths": [1, 1, 1], "stem": {"width": 8},
                     "clip": "2x16x16", "num_classes": 3},
            "choices": {"stage2": {"kind": ["2d", "3d"]}, "stage3": {"kind": ["2d", "3d"]}}}
    specs = SearchSpace.from_yaml(data).enumerate()
    assert len(specs) == 4
    all_3d = next(s for s in specs if s.kinds()["stage3.block1"] == "3d"
                  and s.kinds()["stage2.block1"] == "3d")
    assert [s.blocks[0].t_stride for s in all_3d.stages] == [1, 2, 1]
    # at the usual clip lengths the rule is the paper's and torchvision's
    assert SearchSpace.from_yaml({"base": {"preset": "r3d_18"}}).enumerate() == [preset("r3d_18")]


@pytest.mark.parametrize("data, message", [
    ({"choise": {}}, r"^choise: unknown key"),
    ({"base": {"widths": [8, 16], "depths": [1]}}, r"^base\.widths: 2 widths for 1 stages"),
    ({"base": {"preset": "r4d"}}, r"^base\.preset: unknown preset 'r4d'"),
    ({"base": {"clip": "8x32"}, "constraints": {"max_macs": "lots"}},
     r"^constraints\.max_macs: expected a number"),
    ({"presets": ["r3d_18", "nope"]}, r"^presets\[1\]: unknown preset 'nope'"),
    ({"presets": ["r3d_18"], "choices": {"stem": {"kind": ["2d"]}}}, r"^presets: .* not both"),
    ({"ties": {"top": {"kind": ["3d"]}}}, r"^ties\.top: needs 'members'"),
])
def test_bad_spaces_name_the_key(data, message):
    with pytest.raises(SpecError, match=message):
        SearchSpace.from_yaml(data)


def test_too_large_to_enumerate():
    with pytest.raises(SpecError, match=r"too many to enumerate \(limit \d+\); sample from it instead"):
        SearchSpace.from_yaml("per_block_free").enumerate()


def test_parsers():
    assert parse_clip("16x112x112") == (16, 112, 112)
    assert parse_clip([8, 56]) == (8, 56, 56)
    assert parse_count("45G", "x") == 45 * 10**9
    assert parse_count(33.4e6, "x") == 33_400_000
    with pytest.raises(SpecError, match=r"^clip: "):
        parse_clip("16x0x112")


# --- iso-MAC arms -------------------------------------------------------------------------------
def test_scale_to_macs_gives_iso_mac_arms():
    target = estimate_macs(preset("rmc3"))
    for name in ("mc3", "mc4", "r3d", "r2plus1d", "f_r2d", "r2d"):
        spec = preset(name)
        scaled = scale_to_macs(spec, target)
        assert abs(estimate_macs(scaled) - target) <= 0.02 * target
        assert scaled.kinds() == spec.kinds()  # placement kept, only widths change
        widths = [scaled.stem.width, *(s.width for s in scaled.stages)]
        assert all(w % 8 == 0 for w in widths)
        # one common factor f: every width is f·w up to rounding (4) and one 8-channel step
        original = [spec.stem.width, *(s.width for s in spec.stages)]
        low = max((new - 12) / old for new, old in zip(widths, original, strict=True))
        high = min((new + 12) / old for new, old in zip(widths, original, strict=True))
        assert low <= high


def test_scale_to_macs_without_refinement_keeps_one_factor():
    spec = preset("r3d")
    scaled = scale_to_macs(spec, 25 * 10**9, refine=False, multiple=1, tol=0.01)
    factors = [t.width / s.width for s, t in zip(spec.stages, scaled.stages, strict=True)]
    assert max(factors) - min(factors) < 0.02


def test_iso_macs_space_scales_every_point():
    space = SearchSpace.from_yaml("iso_mac_placements")
    specs = space.enumerate()
    assert len(specs) == 11
    assert all(abs(estimate_macs(s) - 20e9) <= 0.02 * 20e9 for s in specs)
    assert [s.kinds() for s in specs] == [preset(n).kinds() for n in
                                          ["r2d", "mc2", "mc3", "mc4", "mc5", "rmc2", "rmc3",
                                           "rmc4", "rmc5", "r3d", "r2plus1d"]]
    sampled = space.sample(FixedTrial({"preset": "rmc4"}))
    assert sampled == specs[7]
    with pytest.raises(SpecError, match=r"^iso_macs: target_macs: closest width scaling .*"
                                        r"\(preset 'r2d'\)"):
        SearchSpace.from_yaml({"base": {"clip": "8x32x32"}, "presets": ["r2d"],
                               "iso_macs": {"target": "1k"}}).enumerate()
    with pytest.raises(SpecError, match=r"^iso_macs\.tol: must be a fraction"):
        SearchSpace.from_yaml({"presets": ["r2d"], "iso_macs": {"target": "1G", "tol": 2}})


def test_scale_to_macs_reports_when_out_of_reach():
    spec = preset("mc3")
    assert scale_to_macs(spec, estimate_macs(spec)) is spec
    with pytest.raises(ValueError, match=r"^target_macs: closest width scaling gives"):
        scale_to_macs(spec, estimate_macs(preset("r2d")), tol=0.001)
    assert scale_widths(spec, 0.5).stages[0].width == 32


# --- the base network ---------------------------------------------------------------------------
def test_a_preset_base_keeps_its_blocks_outside_the_decisions():
    space = SearchSpace.from_yaml({"base": {"preset": "mc3"},
                                   "choices": {"stage4": {"kind": ["2d", "3d"]}}})
    as_is, top_3d = space.enumerate()
    assert as_is == preset("mc3")
    assert [top_3d.kinds()[p] for p in ("stem", "stage1.block1", "stage2.block1",
                                        "stage4.block1")] == ["3d", "3d", "2d", "3d"]
    # a 2D default turned temporal gets a real temporal extent and halves time (by kind)
    block = top_3d.stages[3].blocks[0]
    assert (block.t_kernel, block.t_stride, block.s_stride) == (3, 2, 2)


@pytest.mark.parametrize("base", ["rmc3", "r2d"])
def test_a_2d_or_r2d_stem_turned_3d_gets_extent_3(base):
    space = SearchSpace.from_yaml({"base": {"preset": base, "clip": "8x112x112"},
                                   "choices": {"stem": {"kind": ["3d", "2plus1d"]}}})
    assert {s.stem.t_kernel for s in space.enumerate()} == {3}
    extents = SearchSpace.from_yaml({"base": {"preset": base, "clip": "8x112x112"},
                                     "choices": {"stem": {"kind": ["2d", "3d"],
                                                          "t_kernel": [3, 5]}}})
    assert sorted(s.stem.t_kernel for s in extents.enumerate()) == [1, 3, 5]
    assert extents.param_names() == ["stem.kind", "stem.t_kernel"]


def test_base_block_defaults_apply_to_every_block():
    space = SearchSpace.from_yaml({"base": {"preset": "r3d_18", "block": {"inflate": False}},
                                   "choices": {"stage1": {"kind": ["2d", "3d"]}}})
    assert all(not b.inflate for s in space.enumerate() for _, b in s.block_paths())
    with pytest.raises(SpecError, match=r"^base\.block\.t_kernel: .* odd"):
        SearchSpace.from_yaml({"base": {"block": {"t_kernel": 4}}})
    with pytest.raises(SpecError, match=r"^base\.stem\.size: unknown field"):
        SearchSpace.from_yaml({"base": {"stem": {"size": 4}}})


def test_a_clip_the_network_does_not_fit_is_infeasible_not_an_error():
    space = SearchSpace.from_yaml({"constraints": {"max_macs": "1T", "clip": "2x112x112"}})
    ok, reason = space.is_feasible(preset("r3d_18"))
    assert not ok and reason.startswith("clip: 2x112x112 does not fit the network: stage3.block1")
