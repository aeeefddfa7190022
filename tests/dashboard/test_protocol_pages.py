"""The study protocol on the dashboard: metric direction, constant metrics, baselines, flags,
declared contrasts and matched cost (AppTest on databases written through the real store)."""

from __future__ import annotations

import json
from pathlib import Path

import analysis
from analysis.synthetic import bottom_vs_top_trials, write_trials
from search.results.store import open_engine


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _figure(at, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def _chance_lines(fig: dict) -> list[float]:
    """Positions of the dashed reference lines (the chance line) of a figure."""
    return [round(s["y0"] if s.get("y0") == s.get("y1") else s["x0"], 6)
            for s in fig["layout"].get("shapes", []) if s.get("line", {}).get("dash") == "dash"]


def test_val_loss_answer_names_the_lowest_loss_family(app, demo_db: Path) -> None:
    at = app(demo_db, "views/overview.py")
    at.sidebar.selectbox(key="metric").set_value("val/loss").run()
    _ok(at)
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    done = df[df["state"] == "COMPLETE"]
    means = done.groupby(["family", "seed"])["val/loss"].mean().groupby("family").mean()
    answer = at.info[0].value
    assert answer.startswith(f"**{means.idxmin()}** placements score the best mean val/loss "
                             "(lower is better)"), answer
    assert any("Lower is better" in c.value for c in at.sidebar.caption)
    best = at.dataframe[0].value  # best network per family: the lowest loss first
    assert best["mean"].is_monotonic_increasing
    arch_means = done.groupby("label")["val/loss"].mean()
    assert best["label"].iloc[0] == arch_means.idxmin()


def test_constant_metrics_are_not_offered(app, tmp_path: Path) -> None:
    trials = bottom_vs_top_trials(seeds=(0, 1))[:6]
    for t in trials:  # a 4-class task: top-5 accuracy is always 1
        t.results["val/acc5"] = 1.0
    path = tmp_path / "four.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    write_trials(engine, "four", trials)
    engine.dispose()
    at = app(path)
    _ok(at)
    options = at.sidebar.selectbox(key="metric").options
    assert "val/acc5" not in options and options[0] == "val/acc1"


def test_overview_shows_baselines_flags_contrasts_and_matched_cost(app, demo_db: Path) -> None:
    at = app(demo_db, "views/overview.py")
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Chance accuracy"] == "0.100" and metrics["Majority-class accuracy"] == "0.125"
    assert "Baselines: chance 0.100" in at.info[0].value
    assert "1 did not plateau (undertrained)" in at.info[0].value
    assert 0.1 in _chance_lines(_figure(at))  # the forest plot's chance line
    best = at.dataframe[0].value
    assert {"chance", "above_chance", "train_val_gap", "flags"} <= set(best.columns)
    contrasts = at.dataframe[1].value
    assert contrasts["contrast"].iloc[0] == "bottom-heavy - top-heavy"
    assert contrasts["p_holm"].notna().all()
    assert any("cannot go below p = 2/2^n" in c.value for c in at.caption)
    levels = analysis.budget_levels(analysis.arch_summary(
        analysis.load_trials(demo_db, "bottom_vs_top")))
    # at the cheapest network's cost only it fits the budget
    at.select_slider(key="overview_budget").set_value(levels[0]).run()
    _ok(at)
    assert len(at.dataframe[2].value) == 1
    assert "acc_per_gmac" not in at.dataframe[3].value and "per_gmac" not in best


def test_pareto_page_draws_chance_and_fronts_credible_networks(app, demo_db: Path) -> None:
    at = app(demo_db, "views/pareto.py")
    _ok(at)
    assert 0.1 in _chance_lines(_figure(at))
    assert "above chance" in at.markdown[0].value
    at.checkbox(key="pareto_credible").uncheck().run()
    _ok(at)
    assert "above chance" not in at.markdown[0].value


def test_trial_page_shows_gap_chance_and_plateau(app, demo_db: Path) -> None:
    at = app(demo_db, "views/trial.py")
    _ok(at)
    facts = at.dataframe[0].value["value"]
    assert facts["chance"] == "0.100" and facts["majority class"] == "0.125"
    assert float(facts["train−val gap"]) > 0 and facts["plateaued"] == "yes"
    curves = _figure(at, len(at.get("plotly_chart")) - 1)  # after the per-layer MAC charts
    assert 0.1 in _chance_lines(curves)


def test_curves_page_draws_chance(app, demo_db: Path) -> None:
    at = app(demo_db, "views/curves.py")
    _ok(at)
    assert 0.1 in _chance_lines(_figure(at))
