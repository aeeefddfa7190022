"""One AppTest per dashboard page, on a database filled through the real store."""

from __future__ import annotations

from pathlib import Path

from dashboard.common import default_db


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _plots(at) -> int:
    return len(at.get("plotly_chart"))


def test_overview(app, demo_db: Path) -> None:
    at = app(demo_db, "views/overview.py")
    _ok(at)
    assert at.title[0].value == "Study · bottom_vs_top"
    assert at.sidebar.selectbox(key="study").value == "bottom_vs_top"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Trials"] == "33" and labels["Pruned"] == "1" and labels["Failed"] == "1"
    answer = at.info[0].value
    assert "Bottom-heavy vs top-heavy" in answer and "GMACs" in answer
    assert _plots(at) == 1 and len(at.dataframe) >= 2


def test_overview_other_study_and_metric(app, demo_db: Path) -> None:
    at = app(demo_db, "views/overview.py")
    at.sidebar.selectbox(key="study").set_value("random_placement").run()
    _ok(at)
    assert at.title[0].value == "Study · random_placement"
    at.sidebar.selectbox(key="metric").set_value("val/acc5").run()
    _ok(at)
    assert "val/acc5" in at.info[0].value


def test_pareto(app, demo_db: Path) -> None:
    at = app(demo_db, "views/pareto.py")
    _ok(at)
    assert at.title[0].value == "Pareto front"
    assert _plots(at) == 1
    at.radio(key="pareto_cost").set_value("params").run()
    _ok(at)
    assert "Pareto-optimal" in at.markdown[0].value


def test_placement(app, demo_db: Path) -> None:
    at = app(demo_db, "views/placement.py")
    _ok(at)
    assert at.title[0].value == "Placement"
    assert _plots(at) == 2  # heatmap, marginal effects
    at.slider(key="placement_top").set_value(5).run()
    _ok(at)
    assert not any("a sample of" in c.value for c in at.caption)


def test_placement_effects_of_a_large_study_read_a_sample_and_say_so(app, demo_db: Path,
                                                                     monkeypatch) -> None:
    import dashboard.common

    monkeypatch.setattr(dashboard.common, "MARGINAL_NETWORKS", 4)  # bottom_vs_top has 11
    at = app(demo_db, "views/placement.py")
    _ok(at)
    assert any("over a sample of 4 of its 11 networks" in c.value for c in at.caption)
    marginal = at.get("plotly_chart")[1]
    assert marginal is not None


def test_curves(app, demo_db: Path) -> None:
    at = app(demo_db, "views/curves.py")
    _ok(at)
    assert at.title[0].value == "Learning curves"
    assert _plots(at) == 2  # curves, early-vs-final ranking
    at.selectbox(key="curves_by").set_value("label").run()
    at.selectbox(key="curves_metric").set_value("train/loss").run()
    _ok(at)
    assert _plots(at) == 2


def test_trial_detail_side_by_side(app, demo_db: Path) -> None:
    at = app(demo_db, "views/trial.py")
    _ok(at)
    assert at.title[0].value == "Trial detail"
    assert at.selectbox(key="trial_b").value is not None  # a runner-up of another family
    assert _plots(at) == 3  # two per-layer MAC charts and the curves
    at.selectbox(key="trial_b").select_index(0).run()  # "—"
    _ok(at)
    assert _plots(at) == 2


def test_trial_table_filters_and_download(app, demo_db: Path) -> None:
    at = app(demo_db, "views/table.py")
    _ok(at)
    assert at.title[0].value == "Trials"
    assert any("33 of 33 trials" in c.value for c in at.caption)
    at.multiselect(key="table_states").set_value(["PRUNED"]).run()
    _ok(at)
    assert any("1 of 33 trials" in c.value for c in at.caption)
    assert len(at.get("download_button")) == 2


def test_db_from_the_command_line() -> None:
    assert default_db(["--db", "runs/x.db"]) == "runs/x.db"
    assert default_db(["--server.port", "1"]).endswith(".db")


def test_every_page_on_a_tiny_study(app, tmp_path: Path) -> None:
    from analysis.synthetic import bottom_vs_top_trials, write_trials
    from search.results.store import open_engine

    path = tmp_path / "tiny.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    write_trials(engine, "tiny", bottom_vs_top_trials(seeds=(0,))[:2])  # one seed, two archs
    engine.dispose()
    at = app(path, "views/overview.py")
    _ok(at)
    assert any("Only one seed" in i.value for i in at.info)
    for page in ("views/budget.py", "views/pareto.py", "views/placement.py", "views/curves.py",
                 "views/trial.py", "views/table.py", "views/importance.py", "views/compare.py"):
        at.switch_page(page).run()
        _ok(at)
