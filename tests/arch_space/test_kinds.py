"""The table of conv-kind facts: its torch classes cover the same kinds, each kind's cost rule
mirrors its class conv by conv, the derived lists keep their values, and unknown kinds fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from analysis.placement import FAMILIES, family_of
from arch_space import kinds, ops
from arch_space.kinds import ConvArgs, KindFacts
from arch_space.ops import CONV_KINDS, ConvKind, get_conv_kind
from arch_space.presets import per_stage, uniform
from arch_space.spec import BLOCK_KINDS, SpecError

ROOT = Path(__file__).resolve().parents[2]  # the checkout: subprocesses import from it


def test_torch_classes_and_facts_cover_the_same_kinds():
    assert list(CONV_KINDS) == list(BLOCK_KINDS)
    defined = {cls for cls in vars(ops).values()
               if isinstance(cls, type) and issubclass(cls, ConvKind) and cls is not ConvKind}
    assert set(CONV_KINDS.values()) == defined  # every class in ops.py is registered, once
    assert len(set(CONV_KINDS.values())) == len(CONV_KINDS)


def _convs(module: nn.Module) -> dict[str, tuple]:
    return {name: (m.in_channels, m.out_channels, m.kernel_size, m.stride)
            for name, m in module.named_modules() if isinstance(m, nn.Conv3d)}


@pytest.mark.parametrize("kind", list(CONV_KINDS))
@pytest.mark.parametrize("s_kernel", [3, 7])
def test_cost_rule_mirrors_the_torch_class(kind, s_kernel):
    args = ConvArgs(c_in=6, c_out=10, mid=7, t_kernel=3, t_stride=2, s_stride=2,
                    s_kernel=s_kernel)
    module = CONV_KINDS[kind](6, 10, mid_channels=7, t_kernel=3, t_stride=2, s_stride=2,
                              s_kernel=s_kernel)
    layout = kinds.get_kind(kind).layout(args)
    assert _convs(module) == {s.name: (s.c_in, s.c_out, s.kernel, s.stride) for s in layout.steps}
    norms = [m.num_features for m in module.modules() if isinstance(m, nn.BatchNorm3d)]
    assert norms == list(layout.norms)


def test_derived_lists_keep_the_values_they_had_by_hand():
    assert tuple(BLOCK_KINDS) == ("2d", "3d", "2plus1d", "p3d_b", "p3d_c")
    assert set(kinds.TEMPORAL_KINDS) == {"3d", "2plus1d", "p3d_b", "p3d_c"}
    assert set(kinds.FACTORIZED_KINDS) == {"2plus1d", "p3d_b", "p3d_c"}
    assert dict(kinds.KIND_ALIASES) == {"p3d_a": "2plus1d", "r2plus1d": "2plus1d",
                                        "p3d-a": "2plus1d", "p3d-b": "p3d_b", "p3d-c": "p3d_c"}
    assert tuple(kinds.STEM_KINDS) == ("2d", "3d", "2plus1d", "r2d")
    assert set(kinds.TEMPORAL_STEM_KINDS) == {"3d", "2plus1d"}
    assert dict(kinds.STEM_FOR_KIND) == {"2d": "2d", "3d": "3d", "2plus1d": "2plus1d",
                                         "p3d_b": "2plus1d", "p3d_c": "2plus1d"}
    assert dict(kinds.UNIFORM_FAMILY) == {"2d": "2D", "3d": "uniform 3D",
                                          "2plus1d": "uniform (2+1)D", "p3d_b": "uniform (2+1)D",
                                          "p3d_c": "uniform (2+1)D"}
    assert tuple(FAMILIES) == ("2D", "bottom-heavy", "top-heavy", "uniform 3D", "uniform (2+1)D",
                               "mixed")
    order = [k for k in kinds.KIND_ORDER if k in
             ("2d", "3d", "2plus1d", "p3d_a", "r2plus1d", "p3d_b", "p3d_c", "p3d_mix")]
    assert order == ["2d", "3d", "2plus1d", "p3d_a", "r2plus1d", "p3d_b", "p3d_c", "p3d_mix"]


def test_an_unknown_kind_is_an_error_naming_it():
    with pytest.raises(SpecError, match=r"^kind: unknown conv kind '4d'; choose one of \['2d'"):
        kinds.get_kind("4d")
    with pytest.raises(SpecError, match=r"^kind: unknown conv kind '4d'"):
        uniform("4d")  # no silent "3d" stem any more
    with pytest.raises(SpecError, match=r"^stage2\.block1\.kind: unknown conv kind '4d'"):
        per_stage(["3d", "4d", "2d", "2d"], "3d")
    with pytest.raises(SpecError, match=r"unknown conv kind '4d'"):
        family_of([True, True], ["4d"])
    with pytest.raises(SpecError, match=r"unknown conv kind '4d'"):
        get_conv_kind("4d")


def test_aliases_resolve_everywhere():
    # the stem a uniform network gets follows the alias's kind (it used to fall back to 3D)
    assert uniform("p3d_a") == uniform("2plus1d")
    assert get_conv_kind("r2plus1d") is CONV_KINDS["2plus1d"]


def _layout(args: ConvArgs) -> kinds.KindLayout:
    return kinds.get_kind("3d").layout(args)


@pytest.mark.parametrize("facts, message", [
    (KindFacts("3d", True, False, "3d", "uniform 3D", _layout), "already taken"),
    (KindFacts("x", True, False, "3d", "uniform x", _layout, aliases=("p3d_a",)),
     "alias 'p3d_a' is already taken"),
    (KindFacts("x", True, False, "p3d_b", "uniform x", _layout), "is not a kind that can be"),
    (KindFacts("x", True, False, "3d", "2D", _layout), "non-temporal kinds, and only they"),
    (KindFacts("x", False, False, "3d", "flat", _layout), "non-temporal kinds, and only they"),
])
def test_registration_refuses_contradictions(facts, message):
    with pytest.raises(ValueError, match=message):
        kinds.register_kind(facts, "arch_space.ops:Conv3D")
    assert "x" not in BLOCK_KINDS


def test_a_stem_in_use_cannot_be_unregistered():
    with pytest.raises(ValueError, match=r"is the stem of \['p3d_b', 'p3d_c'\]"):
        kinds.unregister_kind("2plus1d")
    assert "2plus1d" in BLOCK_KINDS


def test_kind_facts_cost_and_geometry_need_no_torch():
    code = ("import sys\n"
            "from arch_space import estimate, geometry, kinds, presets\n"
            "spec = presets.preset('p3d')\n"
            "assert estimate.estimate_macs(spec) > 0 and geometry.walk(spec)\n"
            "assert list(kinds.BLOCK_KINDS) and 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
