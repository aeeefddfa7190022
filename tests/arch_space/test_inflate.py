"""I3D inflation: a clip of identical frames gives the 2D network's logits."""

import re

import pytest
import torch

from arch_space import build_network, per_stage, uniform
from arch_space.inflate import build_inflated, inflate_into
from arch_space.ops import CONV_KINDS

torch.set_num_threads(1)
# Equal widths keep the (2+1)D mid width >= 2 x out (2.25 x), where its inflation is exact.
NET = dict(widths=(16, 16, 16, 16), depths=(1, 2, 1, 1), num_classes=7, clip_len=8,
           crop_size=32)


def _randomise_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


@pytest.fixture(scope="module")
def net2d():
    torch.manual_seed(0)
    model = _randomise_bn(build_network(uniform("2d", **NET))).eval()
    frame = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        logits = model(frame)  # a one-frame clip: the 2D network's own output
    return model, frame, logits


def _boring(frame, t=8):
    return frame.expand(-1, -1, t, -1, -1).contiguous()  # (B, 3, 1, H, W) -> (B, 3, T, H, W)


@pytest.mark.parametrize("kind", sorted(CONV_KINDS))
@pytest.mark.parametrize("t_pad_mode", ["zeros", "replicate"])
def test_boring_video_gives_the_2d_logits(net2d, kind, t_pad_mode):
    model2d, frame, logits2d = net2d
    # each kind's own stem; the (2+1)D stem (45 mid channels >= 2 x 16) inflates exactly too
    spec = uniform(kind, t_pad_mode=t_pad_mode, **NET)
    model = build_network(spec)
    report = inflate_into(model, model2d.state_dict())
    if kind == "3d" and t_pad_mode == "zeros":
        # I3D's repeat-and-divide sees zero padding at the clip's ends: honestly inexact
        assert not report.is_exact
        return
    assert report.is_exact, report
    with torch.no_grad():
        out = model.eval()(_boring(frame))
    torch.testing.assert_close(out, logits2d, rtol=1e-4, atol=1e-5)


def test_r2d_stem_over_the_whole_clip_inflates_exactly(net2d):
    model2d, frame, logits2d = net2d
    model = build_inflated(uniform("2d", stem_kind="r2d", **NET), model2d.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(_boring(frame)), logits2d, rtol=1e-4, atol=1e-5)


def test_mixed_placement_and_temporal_strides_inflate_exactly(net2d):
    model2d, frame, logits2d = net2d
    spec = per_stage(["3d", ["2plus1d", "p3d_b"], "p3d_c", "2d"], "3d",
                     t_pad_mode="replicate", t_kernel=5, **NET)
    model = build_inflated(spec, model2d.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(_boring(frame)), logits2d, rtol=1e-4, atol=1e-5)


def test_2plus1d_with_narrow_mid_width_is_reported_approximate(net2d):
    _model2d, _, _ = net2d
    # the (2+1)D stem has 45 mid channels for 16 outputs: exact; at 64 outputs it would not be
    narrow = dict(NET, widths=(16, 32, 32, 32))
    model2d_narrow = build_network(uniform("2d", **narrow))
    report = inflate_into(build_network(uniform("2plus1d", **narrow)), model2d_narrow.state_dict())
    assert "stage2.block1.conv1" in report.approximate and not report.is_exact


def test_inflate_false_blocks_keep_random_weights(net2d):
    model2d, _, _ = net2d
    spec = uniform("3d", **NET)
    spec = spec.replace(stages=(spec.stages[0].__class__(16, tuple(
        b.__class__(kind=b.kind, t_kernel=b.t_kernel, inflate=False)
        for b in spec.stages[0].blocks)), *spec.stages[1:]))
    model = build_network(spec)
    before = model.stage1.block1.conv1.conv.weight.clone()
    report = inflate_into(model, model2d.state_dict())
    assert torch.equal(model.stage1.block1.conv1.conv.weight, before)
    assert "stage1.block1" in report.skipped and not report.is_exact
    w2d = model2d.state_dict()["stage2.block1.conv1.conv.weight"]  # (O, I, 1, 3, 3)
    torch.testing.assert_close(model.stage2.block1.conv1.conv.weight,
                               w2d.repeat(1, 1, 3, 1, 1) / 3)


def _torchvision_layout(state_dict):
    """Rename a vidarch 2D state dict into torchvision's resnet key layout, 4D conv weights."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace(".conv.weight", ".weight")
        key = re.sub(r"^stem\.conv\.", "conv1.", key)
        key = re.sub(r"^stem\.bn\.", "bn1.", key)
        key = re.sub(r"^stage(\d+)\.block(\d+)\.",
                     lambda m: f"layer{m.group(1)}.{int(m.group(2)) - 1}.", key)
        out[key] = value.squeeze(2) if value.dim() == 5 else value
    return out


def test_torchvision_layout_state_dict(net2d):
    model2d, frame, logits2d = net2d
    tv = _torchvision_layout(model2d.state_dict())
    assert "layer2.0.downsample.0.weight" in tv and tv["conv1.weight"].dim() == 4
    model = build_inflated(uniform("3d", t_pad_mode="replicate", **NET), tv, layout="torchvision")
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(_boring(frame)), logits2d, rtol=1e-4, atol=1e-5)


def test_wrong_source_is_a_clear_error(net2d):
    model2d, _, _ = net2d
    sd = model2d.state_dict()
    del sd["stage3.block1.conv2.conv.weight"]
    with pytest.raises(KeyError, match=r"stage3\.block1\.conv2\.weight: missing"):
        build_inflated(uniform("3d", **NET), sd)
    wide = uniform("3d", **dict(NET, widths=(16, 32, 32, 32)))
    with pytest.raises(ValueError, match=r"^stage2.block1.conv1: 2D weight has shape"):
        build_inflated(wide, model2d.state_dict())
