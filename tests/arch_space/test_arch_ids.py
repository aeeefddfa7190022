"""arch_ids are the keys of stored results: every preset and every shipped space keeps its ids.

``arch_ids.json`` was recorded before the (2+1)D stem's mid width began to follow the paper's
rule; a change to the spec's fields or their serialisation that moves an id fails here. The one
id that moved on purpose: the width-scaled R(2+1)D of ``iso_mac_placements``, whose stem mid
width used to be VMZ's 45 times the width factor and now follows eq. (1) for its scaled width.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arch_space.presets import list_presets, preset
from arch_space.space import SearchSpace
from arch_space.spec import stem_mid_width

RECORDED = json.loads((Path(__file__).with_name("arch_ids.json")).read_text())


def test_every_preset_is_recorded():
    assert sorted(RECORDED["presets"]) == list_presets()


@pytest.mark.parametrize("name", sorted(RECORDED["presets"]))
def test_preset_arch_id_unchanged(name):
    assert preset(name).arch_id == RECORDED["presets"][name]
    small = preset(name, num_classes=10, clip_len=8, crop_size=16)
    assert small.arch_id == RECORDED["presets_8x16x16_10"][name]


@pytest.mark.parametrize("name", sorted(RECORDED["spaces"]))
def test_space_arch_ids_unchanged(name):
    specs = SearchSpace.from_yaml(name).enumerate()
    assert len(specs) == len(RECORDED["spaces"][name])
    for spec, recorded in zip(specs, RECORDED["spaces"][name], strict=True):
        if name == "iso_mac_placements" and spec.stem.kind == "2plus1d":
            assert spec.arch_id != recorded
            assert spec.stem.mid_width == stem_mid_width(spec.stem) != 45
        else:
            assert spec.arch_id == recorded
