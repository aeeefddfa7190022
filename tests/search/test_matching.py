"""Matched compute (``study.match``): every arm of a grid study within +-5% of one target, the
scale and deviation kept per arm, shown by ``--dry-run`` before training, bad values refused."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from arch_space.estimate import estimate_macs, estimate_params
from search.design.composing import ConfigError, compose, to_run_config
from search.design.matching import MATCH_TOL, auto_multiple
from search.design.resuming import check_resumable, snapshot
from search.design.studies import StudyError, build_design
from search.run import main

REPO = Path(__file__).resolve().parents[2]


def _design(*overrides: str):
    return build_design(to_run_config(compose(list(overrides))))


@pytest.mark.parametrize(("study", "mode"), [("bottom_vs_top", "macs"), ("conv_kinds", "params"),
                                             ("temporal_extent", "macs"), ("inflation", "params")])
def test_every_arm_within_tolerance_of_one_target(study, mode):
    plain = _design(f"study={study}", "study.match=none")
    design = _design(f"study={study}", f"study.match={mode}")
    cost = estimate_macs if mode == "macs" else estimate_params
    target = design.matching.target
    assert design.matching.mode == mode
    for before, cell in zip(plain.cells, design.cells, strict=True):
        assert cell.label == before.label and cell.family == before.family
        assert cell.spec.kinds() == before.spec.kinds()  # placement kept: only widths move
        assert abs(cost(cell.spec) - target) <= MATCH_TOL * target, cell.label
        assert cell.matching["match"] == mode and cell.matching["match_target"] == target
        assert cell.matching["match_deviation"] == pytest.approx(cost(cell.spec) / target - 1,
                                                                 abs=1e-4)
        if cell.spec == before.spec:
            assert cell.matching["match_scale"] == 1.0
    # the default target is the median arm's cost: that arm keeps its widths
    costs = sorted(cost(c.spec) for c in plain.cells)
    assert target == costs[(len(costs) - 1) // 2]


def test_unmatched_bottom_vs_top_spans_2x_and_matched_spans_under_10_percent():
    plain = [estimate_macs(c.spec) for c in _design("study=bottom_vs_top",
                                                    "study.match=none").cells]
    matched = [estimate_macs(c.spec) for c in _design("study=bottom_vs_top").cells]
    assert max(plain) / min(plain) > 1.9
    assert max(matched) / min(matched) <= (1 + MATCH_TOL) / (1 - MATCH_TOL)


def test_shipped_grid_studies_match_compute_by_default_and_smoke_does_not():
    for study in ("bottom_vs_top", "bottom_vs_top_data", "placement_crossover"):
        assert to_run_config(compose([f"study={study}"])).study.match == "macs", study
    # the parameter-matched studies: conv kinds, kernel extents, factorization
    for study in ("conv_kinds", "inflation", "temporal_extent", "factorization"):
        assert to_run_config(compose([f"study={study}"])).study.match == "params", study
    assert _design("study=smoke").matching is None


def test_target_by_count_or_by_arm_label():
    by_label = _design("study=bottom_vs_top", "study.match_target=rmc3")
    plain = {c.label: c.spec for c in _design("study=bottom_vs_top", "study.match=none").cells}
    rmc3 = next(c for c in by_label.cells if c.label == "rmc3")
    assert rmc3.spec == plain["rmc3"] and rmc3.matching["match_scale"] == 1.0
    assert by_label.matching.target == estimate_macs(plain["rmc3"])
    assert "rmc3" in by_label.matching.rule
    counted = _design("study=bottom_vs_top", "study.match_target=12M")
    assert counted.matching.target == 12_000_000
    assert all(abs(estimate_macs(c.spec) / 12e6 - 1) <= MATCH_TOL for c in counted.cells)


def test_width_multiple_follows_the_narrowest_width():
    from arch_space.presets import uniform

    assert auto_multiple([uniform("3d", widths=(8, 16, 32, 64))]) == 1
    assert auto_multiple([uniform("3d", widths=(16, 32, 64, 128))]) == 2
    assert auto_multiple([uniform("3d")]) == 8  # ResNet-18 widths
    design = _design("study=conv_kinds", "study.match=macs", "study.match_multiple=2")
    assert design.matching.multiple == 2
    assert all(w % 2 == 0 for c in design.cells for w in
               [c.spec.stem.width, *(s.width for s in c.spec.stages)])


BAD = [
    (["study.match=foo"], r"^study\.match: unknown value 'foo'"),
    (["study.match_target=lots"], r"^study\.match_target: expected a number"),
    (["study.match_target=1k"], r"^study\.match_target: arm 'f_r2d' cannot be scaled to within "
                                r"5% of 1.00k MACs "
                                r"\(study\.match_target\): closest width scaling gives "),
    (["study.match_multiple=0"], r"^study\.match_multiple: must be >= 1"),
    (["study.match=none", "study.match_target=20M"], r"^study\.match_target: '20M' is set but "),
    (["study=free_search", "study.match=macs"], r"^study\.match: a search design"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_match_settings_name_their_key(overrides, message):
    overrides = overrides if overrides[0].startswith("study=") else ["study=bottom_vs_top",
                                                                      *overrides]
    with pytest.raises(StudyError, match=message):
        _design(*overrides)


@pytest.mark.parametrize(("overrides", "key"), [(["study.match=foo"], "study.match:"),
                                                (["study.match_target=1k"], "study.match_target:"),
                                                (["study.match_target=lots"],
                                                 "study.match_target:")])
def test_bad_match_through_the_entry_point_is_one_line_exit_2_database_untouched(
        overrides, key, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "studies.db"
    assert main(["study=bottom_vs_top", *overrides, f"storage=sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {key}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
    assert main(["study=bottom_vs_top", *overrides, "--dry-run"]) == 2


def _table(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 8 and re.fullmatch(r"\d+\.\d\d", cells[-4]):
            rows[cells[0]] = cells
    return rows


def test_dry_run_shows_every_arm_within_5_percent_and_stores_nothing(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["study=bottom_vs_top", "study.match=macs", "--dry-run"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    target = float(re.search(r"target (\d+\.\d+)M MACs", head).group(1))
    rows = _table(out)
    labels = [c.label for c in _design("study=bottom_vs_top").cells]
    assert list(rows) == labels
    for label, cells in rows.items():
        macs = float(cells[-4])
        assert abs(macs / target - 1) <= MATCH_TOL, label
        assert re.fullmatch(r"x\d\.\d\d", cells[-2]) and re.fullmatch(r"[+-]\d\.\d%", cells[-1])
    assert "span: MACs x1.0" in out
    assert list(tmp_path.iterdir()) == []  # no database, nothing

    assert main(["study=bottom_vs_top", "study.match=none", "--dry-run"]) == 0
    plain = _table(capsys.readouterr().out)
    spread = [float(c[-4]) for c in plain.values()]
    assert max(spread) / min(spread) > 1.9 and all(c[-1] == "-" for c in plain.values())


def test_dry_run_loads_neither_torch_nor_ray_nor_av():
    code = ("import sys; from search.run import main; "
            "rc = main(['study=bottom_vs_top', 'study.match=macs', '--dry-run']); "
            "print(rc, sorted(m for m in ('torch', 'ray', 'av') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []"


def test_studies_stored_before_the_match_key_resume_unmatched_and_refuse_a_match():
    old = snapshot(to_run_config(compose(["study=bottom_vs_top", "study.match=none"])))
    for key in ("match", "match_target", "match_multiple"):
        del old["study"][key]  # as stored before the key existed
    stored = json.dumps(old)
    unmatched = snapshot(to_run_config(compose(["study=bottom_vs_top", "study.match=none"])))
    assert check_resumable(stored, unmatched, "bottom_vs_top") is False
    matched = snapshot(to_run_config(compose(["study=bottom_vs_top"])))
    with pytest.raises(ConfigError, match=r"^study\.match: study 'bottom_vs_top' exists with "
                                          r"study\.match='none', not 'macs'"):
        check_resumable(stored, matched, "bottom_vs_top")


@pytest.mark.slow  # fvcore traces every arm: about a minute on a loaded 2-core machine
@pytest.mark.parametrize("study", ["bottom_vs_top", "conv_kinds"])
def test_matched_arms_cost_what_fvcore_counts(study):
    from arch_space.cost import measure_cost

    for cell in _design(f"study={study}").cells:
        report = measure_cost(cell.spec)  # the count the driver stores
        assert report.macs == estimate_macs(cell.spec), cell.label
        assert report.params == estimate_params(cell.spec), cell.label


@pytest.mark.slow
def test_matched_smoke_study_through_the_real_driver(runner):
    """study=smoke matched on MACs: the stored (fvcore) MACs of both arms sit within 5% of the
    target, and every trial row carries the arm's scale and deviation."""
    out = runner.run("study.match=macs", "study.seeds=[0]")
    assert out.returncode == 0, out.stderr[-3000:]
    conn = sqlite3.connect(runner.db)
    try:
        rows = conn.execute("SELECT t.label, t.params_json, a.macs, a.spec_json FROM trials t "
                            "JOIN archs a ON a.arch_id = t.arch_id ORDER BY t.label").fetchall()
        config = json.loads(conn.execute("SELECT config_json FROM studies").fetchone()[0])
    finally:
        conn.close()
    assert config["study"]["match"] == "macs"
    design = _design("study=smoke", "study.match=macs", "study.seeds=[0]")
    assert [r[0] for r in rows] == sorted(c.label for c in design.cells)
    for label, params_json, macs, spec_json in rows:
        info = json.loads(params_json)
        assert info["match"] == "macs" and info["match_target"] == design.matching.target
        assert abs(macs / info["match_target"] - 1) <= MATCH_TOL, label
        assert info["match_deviation"] == pytest.approx(macs / info["match_target"] - 1,
                                                        abs=1e-4)
        cell = next(c for c in design.cells if c.label == label)
        assert spec_json == cell.spec.to_json() and info == dict(cell.matching)
