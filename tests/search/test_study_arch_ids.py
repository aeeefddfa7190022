"""The cells of every shipped grid study keep the arch_ids recorded in ``study_arch_ids.json``
(their stored results stay theirs), unmatched (``study.match=none``: matched arms are other
networks, with other widths).

The ids were recorded when every (2+1)D stem had VMZ's 45 mid channels. An 8-channel (2+1)D stem
now follows eq. (1) of Tran et al. 2018 (20 mid channels): a different network, so those cells
get new ids on purpose, and pinning their stem back to 45 gives the recorded id exactly (nothing
else about them moved).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from arch_space.spec import VMZ_STEM_MID
from search.design.composing import compose, options, to_run_config
from search.design.studies import build_design

RECORDED = json.loads((Path(__file__).with_name("study_arch_ids.json")).read_text())
# Studies added after the (2+1)D stem rule: their arch_ids as first shipped.
RECORDED_SINCE = json.loads((Path(__file__).with_name("study_arch_ids_since_0003.json")).read_text())


def _cells(study: str, *overrides: str) -> dict:
    design = build_design(to_run_config(compose([f"study={study}", *overrides])))
    return {c.label: c.spec for c in design.cells}


def test_every_grid_study_is_recorded():
    assert set(RECORDED) | set(RECORDED_SINCE) == set(options("study")) - {"free_search"}


@pytest.mark.parametrize("study", sorted(RECORDED_SINCE))
def test_newer_study_cells_keep_their_arch_ids(study):
    cells = _cells(study)
    assert {label: spec.arch_id for label, spec in cells.items()} == RECORDED_SINCE[study]


@pytest.mark.parametrize("study", sorted(RECORDED))
def test_study_cells_keep_their_arch_ids(study):
    cells = _cells(study, "study.match=none")
    assert set(cells) == set(RECORDED[study])
    for label, spec in cells.items():
        if spec.stem.kind != "2plus1d":
            assert spec.arch_id == RECORDED[study][label], label
            continue
        assert spec.stem.mid_width < VMZ_STEM_MID  # the paper's rule for a narrow stem
        assert spec.arch_id != RECORDED[study][label], label
        as_before = spec.replace(stem=dataclasses.replace(spec.stem, mid_width=VMZ_STEM_MID))
        assert as_before.arch_id == RECORDED[study][label], label
