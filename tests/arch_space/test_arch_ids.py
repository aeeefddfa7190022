"""arch_ids are the keys of stored results: every preset and every shipped space keeps its ids.

``arch_ids.json`` was recorded before the (2+1)D stem's mid width began to follow the paper's
rule; a change to the spec's fields or their serialisation that moves an id fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arch_space.presets import list_presets, preset
from arch_space.space import SearchSpace

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
    assert [s.arch_id for s in SearchSpace.from_yaml(name).enumerate()] == RECORDED["spaces"][name]
