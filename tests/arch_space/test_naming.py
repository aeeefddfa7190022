"""Readable placement names for networks without a preset name."""

from __future__ import annotations

import pytest

from analysis.synthetic import make_spec
from arch_space.naming import placement_name
from arch_space.presets import preset


@pytest.mark.parametrize(("name", "expected"), [
    ("r2d", "r2d:s0 | 2d:s1-s4"),
    ("mc3", "3d:s0-s1 | 2d:s2-s4"),
    ("rmc3", "2d:s0-s1 | 3d:s2-s4"),
    ("r3d", "3d:s0-s4"),
    ("r2plus1d", "2plus1d:s0-s4"),
])
def test_presets_read_as_their_placement(name: str, expected: str) -> None:
    assert placement_name(preset(name)) == expected


def test_blocks_inside_a_stage_and_extents_other_than_three() -> None:
    spec = make_spec(["3d", "3d", "2d", "3d", "3d", "p3d_b", "2d", "2d", "2d"],
                     t_kernels=[3, 5, 3, 3, 3, 3, 3, 3, 3])
    assert placement_name(spec) == ("3d:s0 | 3d(t5):s1.1 | 2d:s1.2 | 3d:s2 | p3d_b:s3.1 | "
                                    "2d:s3.2-s4")
    spec = make_spec(["2d", "3d", "3d", "3d", "2d", "2d", "2d", "2d", "3d"])
    assert placement_name(spec) == "2d:s0 | 3d:s1-s2.1 | 2d:s2.2-s4.1 | 3d:s4.2"


def test_different_placements_get_different_names() -> None:
    names = {placement_name(make_spec(k)) for k in (
        ["3d"] * 9, ["2d"] * 9, ["3d"] + ["2d"] * 8, ["2d"] * 8 + ["3d"],
        ["2d", "3d", "2d", "2d", "2d", "2d", "2d", "2d", "2d"])}
    assert len(names) == 5


@pytest.mark.parametrize(("name", "family"), [
    ("r2d", "2D"), ("f_r2d", "2D"), ("mc3", "bottom-heavy"), ("rmc3", "top-heavy"),
    ("rmc2", "top-heavy"), ("r3d", "uniform 3D"), ("r2plus1d", "uniform (2+1)D"),
])
def test_presets_fall_in_their_placement_family(name: str, family: str) -> None:
    from arch_space.naming import placement_family

    assert placement_family(preset(name)) == family


def test_a_gap_between_temporal_runs_is_mixed() -> None:
    from arch_space.naming import placement_family

    spec = make_spec(["3d", "2d", "2d", "2d", "2d", "2d", "2d", "2d", "3d"])
    assert placement_family(spec) == "mixed"
