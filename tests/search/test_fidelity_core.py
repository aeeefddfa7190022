"""``search.results.fidelity``: the torch- and pandas-free rank agreement the CLI summary prints."""

from __future__ import annotations

import math

import pytest

from search.results.fidelity import agreement_row, epoch_fidelity, fidelity_lines


def test_a_perfect_early_ranking_agrees_and_a_reversed_one_disagrees() -> None:
    final = {f"n{i}": i / 10 for i in range(8)}
    same = agreement_row({k: v / 2 for k, v in final.items()}, final, higher=True, n_boot=200)
    assert same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)
    assert same["same_best"]
    assert same["n_networks"] == 8
    reverse = agreement_row({k: -v for k, v in final.items()}, final, higher=True, n_boot=200)
    assert reverse["spearman"] == pytest.approx(-1.0) and not reverse["same_best"]
    assert "does not reliably predict" in fidelity_lines([{"epoch": 1, **reverse}])[0]


def test_too_few_networks_give_no_correlation_and_say_so() -> None:
    rows = epoch_fidelity({1: {"a": 0.1, "b": 0.2}}, {"a": 0.3, "b": 0.4}, higher=True)
    assert rows[0]["n_networks"] == 2 and math.isnan(rows[0]["spearman"])
    assert fidelity_lines(rows)[0].startswith("Early ranking check: not enough")


def test_the_asha_cut_is_reported_when_it_has_a_correlation() -> None:
    final = {f"n{i}": float(i) for i in range(6)}
    early = {1: {k: -v for k, v in final.items()}, 2: dict(final)}
    line = fidelity_lines(epoch_fidelity(early, final, higher=True, n_boot=100),
                          grace_epochs=2)[0]
    assert line.startswith("Ranking at epoch 2 (ASHA's first cut) agrees well")


def test_too_few_networks_get_a_coefficient_but_no_interval() -> None:
    """Three networks (placement_crossover's arms): a bootstrap over 3 pairs is mostly ties, so
    the interval is withheld and the summary says the ranking cannot be judged."""
    early = {"a": 0.3, "b": 0.5, "c": 0.4}
    final = {"a": 0.9, "b": 0.3, "c": 0.8}
    row = agreement_row(early, final, higher=True)
    assert row["n_networks"] == 3 and row["spearman"] == -1.0
    assert all(math.isnan(row[k]) for k in ("spearman_low", "spearman_high", "kendall_low",
                                            "kendall_high"))
    line = fidelity_lines([{**row, "epoch": 1}])[0]
    assert "cannot be judged" in line and "(no interval)" in line
    five = agreement_row({**early, "d": 0.6, "e": 0.7}, {**final, "d": 0.5, "e": 0.6}, True)
    assert math.isfinite(five["spearman_low"]) and five["spearman_low"] <= five["spearman"]
