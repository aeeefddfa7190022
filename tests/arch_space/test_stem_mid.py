"""The (2+1)D stem's mid width: eq. (1) of Tran et al. 2018 for the stem's own width, VMZ's 45
where a reference preset pins it; builder, torch-free estimate and fvcore agree on both."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from arch_space import build_network, preset, uniform
from arch_space.cost import estimate_macs, estimate_params, measure_cost
from arch_space.scaling import scale_widths
from arch_space.spec import VMZ_STEM_MID, ArchSpec, StemSpec, mid_width, stem_mid_width

TINY = dict(num_classes=4, clip_len=8, crop_size=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_rule_for_the_stems_own_width():
    # M = floor(t k^2 Cin Cout / (k^2 Cin + t Cout)) with t=3, k=7, Cin=3 (RGB)
    assert mid_width(3, 7, 3, 8) == 3 * 49 * 3 * 8 // (49 * 3 + 3 * 8) == 20
    spec = uniform("2plus1d", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), **TINY)
    assert spec.stem.mid_width == 20 == stem_mid_width(spec.stem)
    # the pair then has about the parameters of the 3x7x7 conv it replaces (eq. 1's purpose)
    pair = 3 * 49 * 20 + 20 * 3 * 8
    assert abs(pair - 3 * 49 * 3 * 8) <= 0.1 * 3 * 49 * 3 * 8
    wide = uniform("2plus1d", widths=(64, 128, 256, 512), **TINY)
    assert wide.stem.mid_width == mid_width(3, 7, 3, 64) == 83  # not VMZ's 45
    assert uniform("3d", **TINY).stem.mid_width == 45  # inert: no mid conv, old JSON kept


def test_vmz_presets_pin_45_and_reproduce_torchvision():
    for name in ("r2plus1d_18", "r2plus1d", "r2plus1d_34", "p3d"):
        assert preset(name).stem.mid_width == VMZ_STEM_MID == 45
    spec = preset("r2plus1d_18")
    assert estimate_params(spec) == 31_505_325  # torchvision's published figures
    assert round(estimate_macs(spec, (16, 112, 112)) / 1e9, 3) == 40.519


def test_builder_estimate_and_fvcore_agree_on_the_rule_stem():
    spec = uniform("2plus1d", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), **TINY)
    model = build_network(spec)
    assert model.stem.conv.spatial.out_channels == 20
    assert model.stem.conv.temporal.in_channels == 20
    report = measure_cost(spec)
    assert report.macs == estimate_macs(spec)
    assert report.params == estimate_params(spec)
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 4)


def test_narrow_stem_no_longer_dominates_the_network():
    spec = uniform("2plus1d", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), **TINY)
    vmz = spec.replace(stem=dataclasses.replace(spec.stem, mid_width=45))
    stem_macs = {s.arch_id: measure_cost(s).per_layer[0]["macs"] for s in (spec, vmz)}
    assert stem_macs[spec.arch_id] < 0.5 * stem_macs[vmz.arch_id]
    assert estimate_macs(spec) < estimate_macs(vmz)


def test_json_holds_the_number_and_round_trips():
    spec = uniform("2plus1d", widths=(8, 16), depths=(1, 1), **TINY)
    data = spec.to_dict()
    assert data["stem"]["mid_width"] == 20
    assert ArchSpec.from_json(spec.to_json()) == spec
    data["stem"]["mid_width"] = None  # a null mid width is resolved by the rule
    assert ArchSpec.from_dict(data) == spec
    data["stem"]["mid_width"] = 45  # an explicit one is kept
    assert ArchSpec.from_dict(data).stem.mid_width == 45
    assert StemSpec(kind="2plus1d").mid_width is None  # resolved only inside an ArchSpec


def test_scaling_derives_the_stem_mid_again():
    spec = preset("r2plus1d_18", **TINY)
    half = scale_widths(spec, 0.5)
    assert half.stem.width == 32
    assert half.stem.mid_width == mid_width(3, 7, 3, 32)
    assert measure_cost(half).macs == estimate_macs(half)
