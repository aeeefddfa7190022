"""geometry.walk, the one walk of a spec: its per-layer channels, sizes and shortcuts are what the
built network does; feature sizes and cost read it; the temporal-stride rule and its guard."""

from __future__ import annotations

import pytest
import torch

from arch_space.builder import build_network
from arch_space.geometry import t_stride_by_kind, walk
from arch_space.presets import per_stage, preset
from arch_space.space import SearchSpace
from arch_space.spec import SpecError

torch.set_num_threads(1)


def _observed(spec, clip):
    """(channels in, channels out, size in, size out) of the stem and every block, by hooks."""
    model = build_network(spec)
    seen = {}
    for path in ["stem", *(p for p, _ in spec.block_paths())]:
        model.get_submodule(path).register_forward_hook(
            lambda m, i, o, path=path: seen.__setitem__(
                path, (i[0].shape[1], o.shape[1], tuple(i[0].shape[2:]), tuple(o.shape[2:]))))
    model(torch.randn(1, 3, *clip))
    return seen


@pytest.mark.parametrize("name", ["r3d_18", "r2d", "rmc3", "p3d", "r2plus1d"])
def test_walk_is_what_the_network_does(name):
    spec = preset(name, num_classes=4, clip_len=8, crop_size=32)
    layers = walk(spec)
    seen = _observed(spec, (8, 32, 32))
    assert {lay.path: (lay.c_in, lay.c_out, lay.size_in, lay.size_out) for lay in layers} == seen
    assert spec.feature_sizes() == {lay.path: lay.size_out for lay in layers}


def test_walk_of_a_bottleneck_network_and_its_shortcuts():
    spec = per_stage(["3d", ["2d", "p3d_c"], "2plus1d"], "2plus1d", widths=(8, 8, 16),
                     depths=(2, 2, 1), block_type="bottleneck", num_classes=3, clip_len=8,
                     crop_size=24)
    model = build_network(spec)
    layers = walk(spec)
    assert _observed(spec, (8, 24, 24)) == {
        lay.path: (lay.c_in, lay.c_out, lay.size_in, lay.size_out) for lay in layers}
    for lay in layers[1:]:  # the builder makes a projection exactly where the walk says
        assert (model.get_submodule(lay.path).downsample is not None) == lay.projection
    assert [lay.projection for lay in layers[1:]] == [True, False, True, False, True]


def test_walk_at_another_clip_and_its_errors():
    spec = preset("r3d_18", num_classes=4)
    assert walk(spec, (8, 16, 24))[-1].size_out == (1, 1, 2)  # 24 -> 12, 12, 6, 3, 2
    with pytest.raises(SpecError, match=r"^stage4\.block1\.t_stride: strides a 1-frame feature "
                                        r"map; clip_len 4 is too short"):
        walk(spec, (4, 112, 112))


def test_the_temporal_stride_rule_and_its_guard():
    assert t_stride_by_kind("3d", 2) == 2 and t_stride_by_kind("p3d_a", 2) == 2
    assert t_stride_by_kind("2d", 2) == 1 and t_stride_by_kind("3d", 1) == 1
    assert t_stride_by_kind("3d", 2, frames=2) == 2 and t_stride_by_kind("3d", 2, frames=1) == 1
    with pytest.raises(SpecError, match="unknown conv kind 'x'"):
        t_stride_by_kind("x", 2)
    # presets follow the rule without the guard (a too-short clip names the block) ...
    with pytest.raises(SpecError, match=r"^stage3\.block1\.t_stride: strides a 1-frame"):
        preset("r3d_18", clip_len=2)
    # ... a space's "by_kind" strides with it: one frame left is not halved again
    space = SearchSpace.from_yaml({"base": {"clip": "2x32x32", "block": {"kind": "3d"}}})
    (spec,) = space.enumerate()
    assert [s.blocks[0].t_stride for s in spec.stages] == [1, 2, 1, 1]
    assert spec.feature_sizes()["stage4.block2"] == (1, 2, 2)
