"""Figures are pure functions of analysis frames."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

import analysis
from analysis import figures


def test_every_figure_builds(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    summary = analysis.arch_summary(df)
    front = analysis.pareto_front(summary, (("mean", "max"), ("gmacs", "min")),
                                  complete_only=False)
    pareto = figures.pareto_figure(summary, front)
    names = [t.name for t in pareto.data]
    assert "Pareto front" in names and any(n.startswith("bottom-heavy") for n in names)
    assert pareto.data[0].error_y.array is not None
    heat = figures.placement_heatmap(summary, top=5)
    assert len(heat.data[0].y) == 5 and heat.data[0].x[0] == "stem"
    curves = analysis.load_curves(demo_db, "bottom_vs_top", names=["val/acc1"])
    band = figures.curves_figure(analysis.curve_summary(curves, df))
    assert any(t.fill == "toself" for t in band.data)
    _, layers, _ = analysis.load_arch(demo_db, df["arch_id"].iloc[0])
    out = [figures.compare_figure(analysis.compare(df)),
           figures.marginal_figure(analysis.marginal_effects(df)),
           figures.layer_macs_figure(layers),
           figures.trial_curves_figure(curves, ["val/acc1"]),
           figures.empty_figure("nothing")]
    assert all(isinstance(f, go.Figure) for f in (pareto, heat, band, *out))


def test_many_points_use_webgl() -> None:
    import numpy as np
    import pandas as pd

    n = figures.WEBGL_ABOVE + 1
    summary = pd.DataFrame({"arch_id": [f"a{i}" for i in range(n)], "family": "mixed",
                            "label": None, "n": 1, "mean": np.linspace(0, 1, n),
                            "ci_low": np.nan, "ci_high": np.nan, "gmacs": np.linspace(1, 2, n)})
    fig = figures.pareto_figure(summary)
    assert isinstance(fig.data[0], go.Scattergl)
