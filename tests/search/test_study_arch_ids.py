"""The cells of every shipped grid study keep the arch_ids recorded in ``study_arch_ids.json``
(their stored results stay theirs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.run import compose, options, to_run_config
from search.studies import build_design

RECORDED = json.loads((Path(__file__).with_name("study_arch_ids.json")).read_text())


def _cells(study: str, *overrides: str) -> dict[str, str]:
    design = build_design(to_run_config(compose([f"study={study}", *overrides])))
    return {c.label: c.spec.arch_id for c in design.cells}


def test_every_grid_study_is_recorded():
    assert set(RECORDED) == set(options("study")) - {"free_search"}


@pytest.mark.parametrize("study", sorted(RECORDED))
def test_study_cells_keep_their_arch_ids(study):
    assert _cells(study) == RECORDED[study]
