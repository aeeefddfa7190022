"""What a study declares before its data: metric directions and contrasts (grammar, checks)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import stats as sps

from search.results import metrics
from search.results.contrasts import (
    ContrastError,
    Groups,
    evaluate,
    expand,
    expand_all,
    floor_note,
    parse,
)
from search.results.seed_stats import holm, paired_contrast, wilcoxon_floor
from search.run import main

PLACEMENT = Groups({"f_r2d": "2D", "r3d": "uniform 3D", "mc3": "bottom-heavy",
                    "mc4": "bottom-heavy", "rmc3": "top-heavy", "rmc4": "top-heavy"})


# --- metric facts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "mode"), [
    ("val/acc1", "max"), ("train/acc1", "max"), ("val/acc5", "max"), ("val/loss", "min"),
    ("train/loss", "min"), ("macs", "min"), ("gmacs", "min"), ("latency_ms", "min"),
    ("train_val_gap", "min")])
def test_directions_known_from_names(name: str, mode: str) -> None:
    assert metrics.direction(name) == mode


def test_declared_directions_and_their_errors() -> None:
    assert not metrics.has_direction("val/f1")
    with pytest.raises(metrics.DirectionError, match=r"study\.directions"):
        metrics.direction("val/f1")
    declared = metrics.parse_directions(["val/f1:max", "cost/usd:min"])
    assert metrics.direction("val/f1", declared) == "max"
    assert metrics.direction("cost/usd", declared) == "min"
    for bad, why in ((["val/f1:up"], "write 'metric:max'"), (["val/loss:max"], "cannot be"),
                     (["val/f1:max", "val/f1:min"], "both ways")):
        with pytest.raises(metrics.DirectionError, match=why):
            metrics.parse_directions(bad)
    assert metrics.is_constant([1.0, 1.0, 1.0]) and not metrics.is_constant([1.0])
    assert not metrics.is_constant([0.5, 0.75])


# --- the grammar -------------------------------------------------------------------------------


def test_parse_both_forms() -> None:
    diff = parse("bottom-heavy - top-heavy")
    assert (diff.first, diff.second, diff.is_each) == ("bottom-heavy", "top-heavy", False)
    assert parse("bottom-heavy \u2212 top-heavy").second == "top-heavy"  # U+2212 minus
    each = parse("each vs 2D")
    assert each.is_each and each.second == "2D"
    for bad in ("bottom-heavy-top-heavy", "mc3 - mc3", "each vs", "mc3", " - mc3"):
        with pytest.raises(ContrastError):
            parse(bad)


def test_expand_resolves_networks_first_then_families() -> None:
    assert expand(parse("mc3 - rmc3"), PLACEMENT) == [("mc3", "rmc3")]
    assert expand(parse("each vs 2D"), PLACEMENT) == [
        ("uniform 3D", "2D"), ("bottom-heavy", "2D"), ("top-heavy", "2D")]
    assert expand(parse("each vs rmc4"), PLACEMENT)[0] == ("f_r2d", "rmc4")
    assert PLACEMENT.members("bottom-heavy") == ["mc3", "mc4"]
    with pytest.raises(ContrastError, match=r"no network or family 'mc9'.*networks f_r2d"):
        expand(parse("mc9 - rmc3"), PLACEMENT)
    with pytest.raises(ContrastError, match="share network"):
        expand(parse("mc3 - bottom-heavy"), PLACEMENT)
    with pytest.raises(ContrastError, match="already declared"):
        expand_all(["mc3 - rmc3", "rmc3 - mc3"], PLACEMENT)


# --- the statistics ----------------------------------------------------------------------------


def test_paired_contrast_and_holm_against_scipy() -> None:
    diffs = [0.031, 0.018, 0.044, 0.026, 0.012]
    out = paired_contrast(diffs)
    assert out["n_pairs"] == 5 and out["delta"] == pytest.approx(sum(diffs) / 5)
    assert out["p_t"] == pytest.approx(sps.ttest_1samp(diffs, 0.0).pvalue)
    half = sps.t.ppf(0.975, 4) * sps.tstd(diffs) / math.sqrt(5)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((out["delta"] - half,
                                                             out["delta"] + half))
    # five positive differences: the exact signed-rank test sits on its floor 2/2^5
    assert out["p_wilcoxon"] == pytest.approx(wilcoxon_floor(5)) == pytest.approx(0.0625)
    same = paired_contrast([0.1, 0.1, 0.1])
    assert math.isnan(same["p_t"]) and math.isnan(same["ci_low"])
    # Holm by hand: sorted 0.01, 0.02, 0.04 of m=3 -> 0.03, max(0.03, 0.04), max(.., 0.04)
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04],
                                                               nan_ok=True)


def test_evaluate_pairs_seeds_where_every_network_completed() -> None:
    values = {("mc3", 0): 0.60, ("mc3", 1): 0.62, ("mc3", 2): 0.64,
              ("mc4", 0): 0.70, ("mc4", 1): 0.72,  # mc4 lost seed 2: bottom-heavy has 0, 1
              ("rmc3", 0): 0.55, ("rmc3", 1): 0.56, ("rmc3", 2): 0.60,
              ("rmc4", 0): 0.57, ("rmc4", 1): 0.58, ("rmc4", 2): 0.59}
    rows = evaluate(["bottom-heavy - top-heavy", "mc3 - rmc3"], values, PLACEMENT)
    family, single = rows
    assert family["n_pairs"] == 2 and single["n_pairs"] == 3
    assert family["delta"] == pytest.approx(((0.65 - 0.56) + (0.67 - 0.57)) / 2)
    assert family["favours"] == "bottom-heavy" and family["wilcoxon_floor"] == 0.5
    assert "0.5 at 2, 0.25 at 3" in floor_note(r["n_pairs"] for r in rows)
    assert floor_note([6, 1]) == ""
    # Holm over the study's two comparisons: the smaller p doubled, the larger kept above it
    small, large = sorted((family, single), key=lambda r: r["p_t"])
    assert small["p_holm"] == pytest.approx(min(1.0, 2 * small["p_t"]))
    assert large["p_holm"] == pytest.approx(min(1.0, max(2 * small["p_t"], large["p_t"])))
    losses = evaluate(["mc3 - rmc3"], values, PLACEMENT, mode="min")
    assert losses[0]["favours"] == "rmc3"  # a higher loss favours the other group
    missing = evaluate(["mc9 - rmc3"], values, PLACEMENT)
    assert missing[0]["n_pairs"] == 0 and "mc9" in missing[0]["note"]


# --- validated with the config: one line, exit 2, nothing written ------------------------------


@pytest.mark.parametrize(("override", "expected"), [
    ("study.contrasts=[mc3 - 2D]", "study.contrasts: 'mc3 - 2D': no network or family 'mc3'"),
    ("study.contrasts=[bottom-heavy-2D]", "study.contrasts: 'bottom-heavy-2D': write 'A - B'"),
    ("study.contrasts=[each vs 2D,bottom-heavy - 2D]", "study.contrasts: 'bottom-heavy - 2D': "
                                                       "bottom-heavy vs 2D is already declared"),
    ("study.directions=[val/loss:max]", "study.directions: 'val/loss' is better when lower"),
    ("study.objectives=[val/f1]", "study.objectives: 'val/f1' has no known direction"),
])
def test_bad_declarations_are_one_line_exit_2(override: str, expected: str, tmp_path: Path,
                                              monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["study=smoke", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_contrasts_in_a_free_search_are_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["study=free_search", "study.contrasts=[bottom-heavy - top-heavy]"]) == 2
    assert "study.contrasts: a free search" in capsys.readouterr().err


def test_declared_directions_from_the_command_line_pass() -> None:
    from search.design.composing import compose, to_run_config
    from search.design.studies import build_design

    cfg = to_run_config(compose(["study=smoke", "study.objectives=[val/f1,macs]",
                                 "study.directions=[val/f1:max]"]))
    assert build_design(cfg).total == 4
