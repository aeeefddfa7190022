"""Figures of the budget, importance and fidelity analyses (pure frame -> plotly figure)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import analysis
from analysis import insight_figures as figs


def test_budget_figure_names_every_network_in_mmacs_with_budget_and_chance(
        demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    answer = analysis.at_budget(df, macs=15e9)
    fig = figs.budget_figure(answer, chance=0.1)
    texts = [a.text for a in fig.layout.annotations]
    assert set(answer.networks["name"]) <= set(texts)  # every point is named
    assert "budget 15,000 MMACs" in texts and "chance 0.1" in texts
    assert fig.layout.xaxis.title.text == "MMACs per clip"
    xs = [x for t in fig.data if t.name in set(df["family"]) for x in t.x]
    assert max(xs) == pytest.approx(df["macs"].max() / 1e6)
    assert any(t.name == "best under the budget" for t in fig.data)


def test_labels_of_crowded_points_spread_out_and_none_is_dropped() -> None:
    x, y = [1.0, 1.0, 1.0, 5.0], [0.5, 0.5, 0.5, 0.9]  # three points on top of each other
    labels = ["alpha", "beta", "gamma", "delta"]
    offsets = figs.label_offsets(x, y, labels)
    assert len(offsets) == 4 and len(set(offsets[:3])) == 3  # each label its own place
    boxes = []
    for (ax, ay), text in zip(offsets[:3], labels[:3], strict=True):  # points at pixel (0, 0)
        w, h = figs.CHAR_W * len(text) / 2 + 2, figs.LABEL_H / 2
        boxes.append((ax - w, -ay - h, ax + w, -ay + h))  # ay is screen-down: centre at -ay
    for i in range(3):
        for j in range(i):
            assert figs._overlap(boxes[i], boxes[j]) == 0
    assert figs.label_offsets([1.0], [1.0], [""]) == [(0.0, 0.0)]


def test_heatmap_and_importance_figures_show_what_cannot_be_estimated() -> None:
    effects = pd.DataFrame([
        {"position": "stem", "field": "kind", "subset": "all networks", "n": 12, "n_levels": 2,
         "eta2": 0.5, "omega2": 0.4, "ci_low": 0.1, "ci_high": 0.7, "note": ""},
        {"position": "stem", "field": "t_kernel", "subset": "only where temporal", "n": 0,
         "n_levels": 0, "eta2": float("nan"), "omega2": float("nan"), "ci_low": float("nan"),
         "ci_high": float("nan"), "note": "never temporal"}])
    heat = figs.position_heatmap(effects).data[0]
    assert "0.40<br>[0.10, 0.70]<br>n=12" in heat.text.ravel().tolist()
    assert "never temporal" in heat.text.ravel().tolist()
    empty = figs.importance_figure(pd.DataFrame(columns=["param", "ped_anova", "fanova"]))
    assert "No searched choice" in empty.layout.annotations[0].text
