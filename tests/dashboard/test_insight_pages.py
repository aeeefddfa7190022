"""One AppTest per page added for issue 12 (Budget, Importance, Compare, the fidelity check),
on the synthetic demo database and on a real study=smoke run."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest

import analysis


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _plots(at) -> int:
    return len(at.get("plotly_chart"))


def _answer_table(at):
    tables = [d.value for d in at.dataframe if "answer" in d.value.columns]
    assert len(tables) == 1
    return tables[0].set_index("answer")


def _assert_page_answers_like_at_budget(at, db: Path, study: str, value: float,
                                        axis: str = "macs") -> None:
    """``value`` in the slider's unit (MMACs, k params, ms)."""
    from analysis.budget import COST_AXES

    expected = analysis.at_budget(analysis.load_trials(db, study),
                                  **{axis: value * COST_AXES[axis][1]})
    assert at.info[0].value == "\n\n".join(expected.sentences)
    table = _answer_table(at)
    best = expected.best
    assert best is not None
    row = table.loc["best network"]
    assert row["network"] == best["name"] and row["family"] == best["family"]
    assert row["mean"] == pytest.approx(best["mean"])
    for bound in ("ci_low", "ci_high"):
        assert (math.isnan(row[bound]) and math.isnan(best[bound])) or \
            row[bound] == pytest.approx(best[bound])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best network"] == best["name"]
    assert metrics["Best family"] == expected.best_family["family"]
    family = table.loc["best family"]
    assert family["family"] == expected.best_family["family"]
    assert family["mean"] == pytest.approx(expected.best_family["mean"])
    pairs = {"bottom − top-heavy": expected.bottom_vs_top,
             "bottom − top-heavy, matched cost": None if expected.bottom_vs_top is None
             or expected.bottom_vs_top["matched"] else expected.matched}
    for what, pair in pairs.items():
        if pair is None:
            assert what not in table.index
        else:
            assert table.loc[what, "network"] == f"{pair['bottom']} − {pair['top']}"
            assert table.loc[what, "mean"] == pytest.approx(pair["delta"])
            assert table.loc[what, "ci_low"] == pytest.approx(pair["ci_low"])


def test_budget_is_the_front_door_and_answers_like_at_budget(app, demo_db: Path) -> None:
    at = app(demo_db)
    _ok(at)
    assert at.title[0].value == "What to pick under a budget"
    assert _plots(at) == 1
    slider = at.slider(key="budget_macs")
    _assert_page_answers_like_at_budget(at, demo_db, "bottom_vs_top", slider.value)
    assert "bottom − top-heavy, matched cost" in _answer_table(at).index  # at the median cost
    for mmacs in (slider.min + 0.6 * (slider.max - slider.min), slider.max):
        at.slider(key="budget_macs").set_value(mmacs).run()
        _ok(at)
        _assert_page_answers_like_at_budget(at, demo_db, "bottom_vs_top",
                                            at.slider(key="budget_macs").value)


def test_budget_on_parameters_and_on_another_study(app, demo_db: Path) -> None:
    at = app(demo_db)
    at.radio(key="budget_axis").set_value("params").run()
    _ok(at)
    assert at.slider(key="budget_params").label == "Budget (k params)"
    at.sidebar.selectbox(key="study").set_value("random_placement").run()
    _ok(at)
    assert _plots(at) == 1


def _fanova_values(at) -> list[float]:
    """The finite fANOVA bars of the importance figure (the page's first chart)."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    values: list[float] = []
    for trace in (t for t in spec["data"] if t.get("name") == "fANOVA"):
        x = trace.get("x") or []
        if isinstance(x, dict):  # plotly 7 ships arrays as base64 typed buffers
            x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist()
        values += [float(v) for v in x if isinstance(v, int | float) and math.isfinite(v)]
    return values


def test_importance_page(app, demo_db: Path) -> None:
    at = app(demo_db, "views/importance.py")
    _ok(at)
    assert at.title[0].value == "Which choice matters, and where"
    assert _plots(at) == 2  # Optuna importances, per-position heatmap
    assert any("Most explained" in m.value for m in at.markdown)
    # fANOVA's forest is on for a small study and can be switched off (and back on)
    toggle = at.toggle(key="importance_fanova")
    assert toggle.value is True
    assert _fanova_values(at)
    toggle.set_value(False).run()
    _ok(at)
    assert not _fanova_values(at)
    at.toggle(key="importance_fanova").set_value(True).run()
    assert _fanova_values(at)
    at.radio(key="importance_level").set_value("stage").run()
    _ok(at)
    at.sidebar.selectbox(key="study").set_value("random_placement").run()
    _ok(at)
    assert any("parameters the search sampled" in c.value for c in at.caption)


def test_compare_page(app, demo_db: Path) -> None:
    at = app(demo_db, "views/compare.py")
    _ok(at)
    assert at.title[0].value == "Compare networks"
    assert _plots(at) == 1  # parallel coordinates
    at.multiselect(key="parcoords_fields").set_value(["kind", "t_kernel"]).run()
    _ok(at)
    assert any("A − B" in m.value for m in at.markdown)
    blocks = next(d.value for d in at.dataframe if "differs" in d.value.columns)
    assert (blocks["differs"] == "≠").any()
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    mc3, rmc3 = (df.loc[df["label"] == name, "arch_id"].iloc[0] for name in ("mc3", "rmc3"))
    at.selectbox(key="diff_a").set_value(mc3).run()
    at.selectbox(key="diff_b").set_value(rmc3).run()
    _ok(at)
    blocks = next(d.value for d in at.dataframe if "differs" in d.value.columns)
    # MC3 is 3D up to stage 1, rMC3 from stage 2 on: every layer differs, by its kind
    assert (blocks["differs"] == "≠").all() and blocks["changed"].str.contains("kind").all()
    cross = next(d.value for d in at.dataframe if "study" in d.value.columns)
    assert cross["study"].tolist() == ["bottom_vs_top"]


def test_curves_page_checks_early_rankings(app, demo_db: Path) -> None:
    at = app(demo_db, "views/curves.py")
    _ok(at)
    assert any(m.value.startswith("Ranking at epoch 1") for m in at.markdown)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["views/budget.py", "views/importance.py", "views/compare.py",
                                  "views/curves.py"])
def test_new_pages_on_a_real_smoke_study(app, smoke_db: Path, page: str) -> None:
    at = app(smoke_db, page)
    _ok(at)
    assert at.sidebar.selectbox(key="study").value == "smoke"
    assert _plots(at) >= 1
    if page == "views/budget.py":
        _assert_page_answers_like_at_budget(at, smoke_db, "smoke",
                                            at.slider(key="budget_macs").value)


@pytest.mark.slow
def test_budget_on_measured_latency_of_a_real_smoke_study(app, smoke_db: Path) -> None:
    """Each trial times its network on its device (hardware.latency_runs): latency is an axis."""
    df = analysis.load_trials(smoke_db, "smoke")
    assert (df.loc[df["state"] == "COMPLETE", "latency_ms"] > 0).all()
    at = app(smoke_db)
    at.radio(key="budget_axis").set_value("latency_ms").run()
    _ok(at)
    slider = at.slider(key="budget_latency_ms")
    assert slider.label == "Budget (ms)"
    for value in (slider.value, slider.max):
        at.slider(key="budget_latency_ms").set_value(value).run()
        _ok(at)
        _assert_page_answers_like_at_budget(at, smoke_db, "smoke",
                                            at.slider(key="budget_latency_ms").value,
                                            axis="latency_ms")
