"""Placement descriptors and family labels of known networks; MAC estimates vs published ones."""

from __future__ import annotations

import math

import pytest

from analysis.placement import arch_features, describe, estimate_layer_macs, family_of
from arch_space.presets import preset
from arch_space.spec import ArchSpec


@pytest.mark.parametrize(("name", "family"), [
    ("r2d", "2D"), ("f_r2d", "2D"),
    ("mc2", "bottom-heavy"), ("mc3", "bottom-heavy"), ("mc3_18", "bottom-heavy"),
    ("mc5", "bottom-heavy"),
    ("rmc2", "top-heavy"), ("rmc3", "top-heavy"), ("rmc5", "top-heavy"),
    ("r3d_18", "uniform 3D"), ("r2plus1d_18", "uniform (2+1)D"), ("p3d", "uniform (2+1)D"),
])
def test_family_of_paper_placements(name: str, family: str) -> None:
    assert describe(preset(name)).family == family


def test_mixed_and_edge_patterns() -> None:
    # stem, then blocks: temporal in the middle only, or at both ends
    assert family_of([False, False, True, True, False], ["2d", "3d", "3d", "2d"]) == "mixed"
    assert family_of([True, False, False, False, True], ["2d", "2d", "2d", "3d"]) == "mixed"
    assert family_of([True] * 5, ["3d", "2plus1d", "3d", "3d"]) == "mixed"
    assert family_of([True] * 5, ["2plus1d", "p3d_b", "p3d_c", "2plus1d"]) == "uniform (2+1)D"


def test_centre_of_mass_and_halves() -> None:
    mc3, rmc3 = describe(preset("mc3")), describe(preset("rmc3"))
    # mc3: stem + stage1 temporal = layers 0, 1, 2 of 9 -> depths 0, 1/8, 2/8
    assert mc3.t_com == pytest.approx(1 / 8)
    assert mc3.t_share_bottom == pytest.approx(1.0) and mc3.t_share_top == pytest.approx(0.0)
    assert rmc3.t_com > 0.5 and rmc3.t_share_top > 0.5
    assert mc3.n_temporal == 3
    two_d = describe(preset("r2d"))
    assert two_d.n_temporal == 0 and math.isnan(two_d.t_com) and two_d.temporal_mac_frac == 0


@pytest.mark.parametrize(("name", "gmacs"), [
    ("r3d_18", 40.70), ("mc3_18", 43.34), ("r2plus1d_18", 40.52),  # torchvision's model docs
])
def test_estimated_macs_match_torchvision(name: str, gmacs: float) -> None:
    total = sum(estimate_layer_macs(preset(name)).values()) / 1e9
    assert total == pytest.approx(gmacs, abs=0.01)


def test_stem_macs_by_formula() -> None:
    spec = preset("r3d_18")
    t, h, w = spec.feature_sizes()["stem"]
    assert estimate_layer_macs(spec)["stem"] == 3 * 7 * 7 * 3 * 64 * t * h * w


def test_arch_features_flattens_the_spec() -> None:
    spec = preset("mc3")
    feats = arch_features(spec.to_json())
    assert feats["stem.kind"] == "3d"
    assert feats["stage1.block1.kind"] == "3d" and feats["stage2.block1.kind"] == "2d"
    assert feats["stage2.block1.t_kernel"] == 1 and feats["stage1.block1.t_kernel"] == 3
    assert feats["stage1.block1.inflate"] in (True, False)
    assert feats["family"] == "bottom-heavy"
    assert ArchSpec.from_json(spec.to_json()) == spec


def test_parse_spec_equals_from_json() -> None:
    from analysis.placement import parse_spec
    from arch_space.presets import list_presets
    from arch_space.spec import SpecError

    for name in list_presets():
        spec = preset(name)
        assert parse_spec(spec.to_json()) == spec
    bad = preset("mc3").to_dict()
    bad["stages"][0]["blocks"][0]["colour"] = "red"
    import json
    with pytest.raises(SpecError, match=r"stage1\.block1\.colour"):
        parse_spec(json.dumps(bad))
