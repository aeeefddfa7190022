"""build_network and the conv-kind registry: shapes, backward, strides, reference presets."""

import pytest
import torch

from arch_space import build_network, per_stage, preset, uniform
from arch_space.ops import CONV_KINDS
from arch_space.spec import BLOCK_KINDS, mid_width

torch.set_num_threads(1)
STRIDES = [(1, 1), (1, 2), (2, 1), (2, 2)]  # (t_stride, s_stride)


def test_registry_matches_the_torch_free_vocabulary():
    assert set(CONV_KINDS) == set(BLOCK_KINDS)


@pytest.mark.parametrize("kind", sorted(CONV_KINDS))
@pytest.mark.parametrize("t_stride, s_stride", STRIDES)
@pytest.mark.parametrize("t_kernel", [1, 3, 5])
def test_kind_shape_backward_and_shortcut_agree(kind, t_stride, s_stride, t_kernel):
    cls = CONV_KINDS[kind]
    conv = cls(6, 10, mid_channels=7, t_kernel=t_kernel, t_stride=t_stride, s_stride=s_stride)
    x = torch.randn(2, 6, 8, 32, 32, requires_grad=True)
    y = conv(x)
    shortcut = torch.nn.Conv3d(6, 10, 1, stride=cls.shortcut_stride(t_stride, s_stride))
    assert y.shape == shortcut(x).shape == (2, 10, 8 // t_stride, 32 // s_stride, 32 // s_stride)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in conv.parameters())


@pytest.mark.parametrize("kind", sorted(CONV_KINDS))
@pytest.mark.parametrize("t_kernel", [1, 3, 5])
@pytest.mark.parametrize("block_type", ["basic", "bottleneck"])
def test_network_of_every_kind_builds_runs_and_backprops(kind, t_kernel, block_type):
    spec = uniform(kind, widths=(8, 16, 16, 32), depths=(1, 2, 1, 1), t_kernel=t_kernel,
                   block_type=block_type, num_classes=5, clip_len=8, crop_size=32)
    model = build_network(spec)
    x = torch.randn(2, 3, 8, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert model.fc.weight.grad is not None


def test_a_2d_block_in_a_time_striding_stage_builds_and_its_shortcut_agrees():
    # the spec decides strides independently of the kind
    spec = per_stage(["3d", ["2d", "3d"], "2d", "2d"], "3d", widths=(8, 8, 16, 16),
                     num_classes=3, clip_len=8, crop_size=32)
    spec = spec.replace(stages=(spec.stages[0], spec.stages[1].__class__(
        8, (spec.stages[1].blocks[0].__class__(kind="2d", t_stride=2, s_stride=2),
            spec.stages[1].blocks[1])), *spec.stages[2:]))
    model = build_network(spec)
    feats = {}
    model.stage2.block1.register_forward_hook(lambda m, i, o: feats.__setitem__("out", o.shape))
    model(torch.randn(2, 3, 8, 32, 32))
    assert feats["out"] == (2, 8, 4, 8, 8)
    assert spec.feature_sizes()["stage2.block1"] == (4, 8, 8)


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18", "r2d", "rmc3", "p3d"])
def test_feature_sizes_match_the_built_network(name):
    spec = preset(name, num_classes=4, clip_len=8, crop_size=32)
    model = build_network(spec)
    seen = {}
    for path, _ in spec.block_paths():
        model.get_submodule(path).register_forward_hook(
            lambda m, i, o, path=path: seen.__setitem__(path, tuple(o.shape[2:])))
    model(torch.randn(1, 3, 8, 32, 32))
    expected = spec.feature_sizes()
    assert seen == {k: v for k, v in expected.items() if k != "stem"}


def _n_params(spec):
    return sum(p.numel() for p in build_network(spec).parameters())


@pytest.mark.parametrize("name, params", [
    ("r3d_18", 33_371_472), ("mc3_18", 11_695_440), ("r2plus1d_18", 31_505_325)])
def test_torchvision_parameter_counts(name, params):
    assert _n_params(preset(name)) == params


def test_mid_width_rules():
    # Tran et al. 2018 eq. 1, and torchvision's per-block variant
    assert mid_width(3, 3, 64, 64) == 144
    assert mid_width(3, 3, 64, 128) == 230
    paper = build_network(preset("r2plus1d"))
    tv = build_network(preset("r2plus1d_18"))
    # first block of stage 2: paper uses (128 -> 128) for conv2, torchvision reuses (64, 128)
    assert paper.stage2.block1.conv2.spatial.out_channels == mid_width(3, 3, 128, 128) == 288
    assert tv.stage2.block1.conv2.spatial.out_channels == 230
    assert tv.stem.conv.spatial.out_channels == 45


def test_module_names_follow_spec_paths():
    model = build_network(preset("mc3_18", num_classes=10))
    names = dict(model.named_modules())
    for path, _ in model.spec.block_paths():
        assert path in names
    assert {"stem", "fc", "stage4.block2.conv2"} <= set(names)


def test_mc_and_rmc_placements():
    mc4, rmc4 = preset("mc4"), preset("rmc4")
    assert [s.blocks[0].kind for s in mc4.stages] == ["3d", "3d", "2d", "2d"]
    assert mc4.stem.kind == "3d"
    assert [s.blocks[0].kind for s in rmc4.stages] == ["2d", "2d", "3d", "3d"]
    assert rmc4.stem.kind == "2d"
    # 2D stages stride (1,2,2), 3D stages (2,2,2)
    assert [(s.blocks[0].t_stride, s.blocks[0].s_stride) for s in rmc4.stages] == [
        (1, 1), (1, 2), (2, 2), (2, 2)]
    assert preset("mc3") == preset("mc3_18") and preset("r3d") == preset("r3d_18")
    assert [b.kind for _, b in preset("p3d").block_paths()][:4] == [
        "2plus1d", "p3d_b", "p3d_c", "2plus1d"]


def test_replicate_padding_keeps_shapes():
    spec = uniform("3d", widths=(8, 8, 8, 8), depths=(1, 1, 1, 1), t_pad_mode="replicate",
                   num_classes=2, clip_len=8, crop_size=32)
    assert build_network(spec)(torch.randn(1, 3, 8, 32, 32)).shape == (1, 2)
