"""scale_to_params (the twin of scale_to_macs) and scaled widths the estimate still counts
exactly: odd widths, (2+1)D stems whose mid width follows the scaled width, every kind."""

from __future__ import annotations

import pytest

from arch_space.cost import estimate_macs, estimate_params, measure_cost
from arch_space.presets import p3d_mix, preset, uniform
from arch_space.scaling import format_count, scale_to_macs, scale_to_params, width_scale
from arch_space.spec import mid_width

TINY = dict(widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), num_classes=4, clip_len=8,
            crop_size=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_scale_to_params_meets_a_parameter_target():
    target = estimate_params(preset("r3d"))
    for name in ("mc3", "f_r2d", "r2plus1d", "rmc4"):
        spec = preset(name)
        scaled = scale_to_params(spec, target)
        assert abs(estimate_params(scaled) - target) <= 0.02 * target, name
        assert scaled.kinds() == spec.kinds()
        assert all(w % 8 == 0 for w in [scaled.stem.width, *(s.width for s in scaled.stages)])
    spec = preset("r3d")
    assert scale_to_params(spec, target) is spec
    with pytest.raises(ValueError, match=r"^target_params: closest width scaling gives .* params"):
        scale_to_params(preset("mc3"), 10, tol=0.01)
    with pytest.raises(ValueError, match=r"^target_params: must be positive"):
        scale_to_params(spec, 0)


@pytest.mark.parametrize(("make", "factor"), [(lambda: uniform("2plus1d", **TINY), 0.7),
                                              (lambda: p3d_mix(**TINY), 1.3),
                                              (lambda: uniform("3d", **TINY), 1.3),
                                              (lambda: uniform("2d", **TINY), 0.7)],
                         ids=["2plus1d", "p3d_mix", "3d", "2d"])
def test_scaled_tiny_nets_count_the_same_in_the_estimate_and_fvcore(make, factor):
    spec = make()
    target = round(estimate_macs(spec) * factor ** 2)
    scaled = scale_to_macs(spec, target, multiple=1)
    assert abs(estimate_macs(scaled) / target - 1) <= 0.02
    if scaled.stem.kind == "2plus1d":
        assert scaled.stem.mid_width == mid_width(3, 7, 3, scaled.stem.width)
    report = measure_cost(scaled)
    assert report.macs == estimate_macs(scaled)
    assert report.params == estimate_params(scaled)
    assert width_scale(spec, scaled) == pytest.approx(factor, rel=0.15)


def test_width_scale_and_format_count():
    spec = uniform("3d", **TINY)
    assert width_scale(spec, spec) == 1.0
    assert format_count(15_089_920) == "15.09M" and format_count(999) == "999"
