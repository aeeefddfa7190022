"""The end-of-run summary (``search.summary``): direction, baselines, flags, contrasts, front."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis.synthetic import DEMO_CONTRASTS, bottom_vs_top_trials, write_trials
from search.results.schema import StudyRow
from search.results.store import open_engine, session_scope
from search.summary import print_summary

OUTCOME = SimpleNamespace(completed=0, failed=0, wall_s=0.0, interrupted=False, skipped=0,
                          skip_reasons={})


def _section(text: str, title: str) -> str:
    """The lines of one summary section, up to the next blank line after its table."""
    start = text.index(title)
    return text[start:text.index("\n\n", start)]


def _family_means(db: Path, study: str, metric: str) -> dict[str, dict[str, float]]:
    """family -> {label: mean metric over COMPLETE seeds}, read with plain SQL."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT t.family, t.label, AVG(r.value) FROM trials t JOIN results r ON "
            "r.trial_id = t.id JOIN studies s ON s.id = t.study_id WHERE s.name = ? AND "
            "t.state = 'COMPLETE' AND r.name = ? GROUP BY t.family, t.label",
            (study, metric)).fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, float]] = {}
    for family, label, mean in rows:
        out.setdefault(family, {})[label] = mean
    return out


def _summary(tmp_path: Path, objectives: list[str]) -> tuple[str, dict, Path]:
    db = tmp_path / "s.db"
    engine = open_engine(f"sqlite:///{db}", create=True)
    write_trials(engine, "bottom_vs_top", bottom_vs_top_trials(),
                 config={"study": {"objectives": objectives,
                                   "contrasts": list(DEMO_CONTRASTS)}})
    with session_scope(engine) as s:
        study_id = s.query(StudyRow.id).filter_by(name="bottom_vs_top").scalar()
    stream = io.StringIO()
    data = print_summary(engine, study_id, "bottom_vs_top", OUTCOME, f"sqlite:///{db}", stream)
    engine.dispose()
    return stream.getvalue(), data, db


def test_val_loss_ranks_the_lowest_loss_first(tmp_path: Path) -> None:
    text, data, db = _summary(tmp_path, ["val/loss", "macs"])
    assert "Ranked by val/loss (lower is better)" in text
    means = _family_means(db, "bottom_vs_top", "val/loss")
    for family, by_label in means.items():  # the best network of each family: its lowest loss
        assert data["best"][family]["label"] == min(by_label, key=by_label.get)
    lowest = min(means, key=lambda f: min(means[f].values()))
    highest = max(means, key=lambda f: min(means[f].values()))
    best = _section(text, "Best per placement family")
    assert best.index(lowest) < best.index(highest)
    # no chance filter for a loss: the front is of every COMPLETE network
    assert "Pareto front of COMPLETE networks (lower val/loss, fewer MACs)" in text


def test_accuracy_summary_shows_baselines_flags_contrasts_and_credible_front(
        tmp_path: Path) -> None:
    text, data, db = _summary(tmp_path, ["val/acc1", "macs"])
    assert "Ranked by val/acc1 (higher is better)" in text
    assert "Baselines: chance 0.100 (recorded), majority class 0.125." in text
    assert not data["constant"] and "ranks nothing" not in text
    means = _family_means(db, "bottom_vs_top", "val/acc1")
    for family, by_label in means.items():
        assert data["best"][family]["label"] == max(by_label, key=by_label.get)
    mc2 = next(a for a in data["archs"] if a["label"] == "mc2")
    assert mc2["undertrained"] and "undertrained" in _section(text, "All networks")
    assert all(a["above_chance"] for a in data["front"])
    assert "Pareto front of networks whose interval is above chance" in text
    contrasts = _section(text, "Declared contrasts")
    assert "bottom-heavy - top-heavy" in contrasts and "each vs 2D" in contrasts
    assert "top-heavy - 2D" in contrasts
    assert "p Holm" in contrasts and "0.5 at 2, 0.25 at 3" in text  # the Wilcoxon floor
    assert [r["b"] for r in data["contrasts"][1:]] == ["2D"] * 4
    assert "per GMAC" not in text


@pytest.mark.slow
def test_summary_of_a_real_smoke_run_ranks_val_loss_lowest_first(runner) -> None:
    """``python -m search.run study=smoke study.objectives=[val/loss,macs]``, end to end."""
    out = runner.run("study.objectives=[val/loss,macs]")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "Ranked by val/loss (lower is better)" in text
    assert "Baselines: chance 0.250" in text  # 4 classes (1/classes where none was recorded)
    means = _family_means(runner.db, "smoke", "val/loss")
    assert set(means) == {"2D", "bottom-heavy"}
    lowest = min(means, key=lambda f: min(means[f].values()))
    highest = max(means, key=lambda f: min(means[f].values()))
    best = _section(text, "Best per placement family")
    assert best.index(lowest) < best.index(highest), text
    contrasts = _section(text, "Declared contrasts")
    assert "bottom-heavy - 2D" in contrasts and "p = 2/2^n (0.5 at 2)" in text


def test_a_metric_every_trial_shares_is_said_to_rank_nothing() -> None:
    from search.summary import summarize

    rows = [{"label": label, "family": family, "arch_id": label, "seed": seed,
             "state": "COMPLETE", "results": {"val/acc1": 0.25}, "macs": macs, "params": 1,
             "error": None, "plateaued": True, "train_val_gap": 0.0, "chance_acc": 0.25,
             "majority_acc": 0.3}
            for label, family, macs in (("f_r2d", "2D", 1), ("mc3", "bottom-heavy", 2))
            for seed in (0, 1)]
    data = summarize(rows, contrasts=("bottom-heavy - 2D",))
    assert data["constant"] and data["front"] == []  # [0.25, 0.25] is not above chance 0.25
    assert all("interval includes chance" in a["flags"] for a in data["archs"])
    assert "identical across seeds" in data["contrasts"][0]["note"]


def test_the_summary_checks_early_rankings_as_analysis_does(tmp_path: Path) -> None:
    """The CLI's early-ranking line is ``analysis.fidelity``'s row at the same epoch."""
    import math

    import analysis
    from search.results.fidelity import fidelity_lines

    text, data, db = _summary(tmp_path, ["val/acc1", "macs"])
    (row,) = data["fidelity"]
    table = analysis.fidelity(analysis.load_curves(db, "bottom_vs_top"),
                              analysis.load_trials(db, "bottom_vs_top"))
    expected = table[table["epoch"] == row["epoch"]].iloc[0]
    for key in ("n_networks", "spearman", "kendall", "spearman_low", "kendall_high"):
        assert math.isclose(row[key], expected[key]), key
    assert row["epoch"] == 1  # no ASHA: the first epoch that ranks anything
    assert fidelity_lines([row])[0] in text.replace("\n", " ") or \
        fidelity_lines([row])[0][:60] in text


def test_searched_networks_of_older_databases_get_placement_names_and_families(
        tmp_path: Path) -> None:
    """Before placement names, searches stored ``arch-<hash>`` labels and one family "search"."""
    from analysis.synthetic import random_trials

    db = tmp_path / "old.db"
    engine = open_engine(f"sqlite:///{db}", create=True)
    trials = random_trials(6, pruned_frac=0.0)
    for t in trials:
        t.label, t.family = f"arch-{t.spec.arch_id[:8]}", "search"
    write_trials(engine, "old_search", trials, kind="tpe")
    with session_scope(engine) as s:
        study_id = s.query(StudyRow.id).filter_by(name="old_search").scalar()
    stream = io.StringIO()
    data = print_summary(engine, study_id, "old_search", OUTCOME, f"sqlite:///{db}", stream)
    engine.dispose()
    from analysis.placement import describe
    from arch_space.naming import placement_name

    by_arch = {a["arch_id"]: a for a in data["archs"]}
    for t in trials:
        assert by_arch[t.spec.arch_id]["label"] == placement_name(t.spec)
        assert by_arch[t.spec.arch_id]["family"] == describe(t.spec).family
    assert "search" not in data["best"] and "arch-" not in stream.getvalue()
