"""Figures of ``docs/findings.md`` beyond the dashboard's, and their export to PNG.

- ``add_baselines``: chance and majority-class lines as named traces, on every accuracy figure.
- ``knob_figure``: a knob study's declared differences (A − B, 95% interval) against the knob,
  with a zero line, beside each arm's accuracy against the knob (chance and majority lines).
- ``learning_curves_figure``: each arm's mean validation curve by epoch, with how many trials
  plateaued (the protocol's convergence check), chance and majority lines.
- ``export_pngs``: every figure to PNG in one kaleido session.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures import FAMILY_COLORS, LAYOUT
from search.results import metrics

FIG_WIDTH = 900  # px of the exported PNGs
DEFAULT_BROWSER = "/usr/bin/chromium"  # Debian's chromium, for kaleido when nothing else is found
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#393b79")
BASELINES = (("chance", "dash", "#888"), ("majority class", "dot", "#444"))
NO_CHANCE = math.nan  # passed as ``chance=`` to the dashboard's figures: lines added here


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def add_baselines(fig: go.Figure, chance: Any, majority: Any, span: Sequence[Any], *,
                  vertical: bool = False, row: int | None = None, col: int | None = None,
                  showlegend: bool = True) -> go.Figure:
    """Chance and majority-class accuracy as line traces across ``span`` (two x values, or two
    y categories when ``vertical``), named ``chance 0.25`` / ``majority class 0.27``."""
    where = {"row": row, "col": col} if row is not None else {}
    for (name, dash, color), value in zip(BASELINES, (chance, majority), strict=True):
        level = _finite(value)
        if level is None or len(span) < 2:
            continue
        ends, flat = [span[0], span[-1]], [level, level]
        fig.add_trace(go.Scatter(
            x=flat if vertical else ends, y=ends if vertical else flat, mode="lines",
            name=f"{name} {level:.3g}", legendgroup=name, showlegend=showlegend,
            line={"dash": dash, "color": color, "width": 1.2}, hoverinfo="skip"), **where)
    return fig


def baseline_names(fig: go.Figure) -> list[str]:
    """Names of the baseline traces of ``fig`` (for checks: every accuracy figure has both)."""
    return [t.name for t in fig.data
            if t.name and t.name.startswith(tuple(b[0] for b in BASELINES))]


def widen_y(fig: go.Figure, *values: Any) -> None:
    """Extend an explicitly set y range so that ``values`` (baselines) stay visible."""
    rng = fig.layout.yaxis.range
    levels = [v for v in map(_finite, values) if v is not None]
    if rng is None or not levels:
        return
    lo, hi = min(rng[0], *levels), max(rng[1], *levels)
    pad = 0.03 * (hi - lo or 1)
    fig.update_yaxes(range=[lo - pad if lo < rng[0] else lo, hi + pad if hi > rng[1] else hi])


def _axis_type(values: Sequence[float]) -> str:
    positive = [v for v in values if v and v > 0]
    return "log" if positive and len(positive) == len(values) and max(values) / min(
        positive) >= 4 else "linear"


def knob_figure(differences: pd.DataFrame, arms: pd.DataFrame, *, knob_label: str,
                metric: str = metrics.VAL_ACC1) -> go.Figure:
    """Declared differences and arm accuracies against a knob, one point per variant study.

    Args:
        differences: one row per (knob value, comparison): ``knob``, ``comparison``
            ("A − B"), ``delta``, ``ci_low``, ``ci_high``, ``n_pairs``.
        arms: one row per (knob value, arm): ``knob``, ``arm``, ``mean``, ``ci_low``,
            ``ci_high``, ``chance``, ``majority``.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=(f"Δ {metric} (A − B), 95% CI over paired seeds",
                                        f"{metric} per arm, 95% CI over seeds"))
    knobs = sorted(set(differences.get("knob", [])) | set(arms.get("knob", [])))
    for i, (name, g) in enumerate(differences.groupby("comparison", sort=False)):
        g = g.sort_values("knob")
        fig.add_trace(go.Scatter(
            x=g["knob"], y=g["delta"], mode="lines+markers", name=str(name),
            legendgroup="diff", line={"color": PALETTE[i % len(PALETTE)], "width": 2},
            marker={"size": 9}, error_y=_err(g["delta"], g["ci_low"], g["ci_high"]),
            customdata=np.column_stack([g["n_pairs"], g["ci_low"], g["ci_high"]]),
            hovertemplate=("knob %{x}: Δ %{y:+.3f} [%{customdata[1]:+.3f}, "
                           "%{customdata[2]:+.3f}], %{customdata[0]} seeds<extra>" + str(name)
                           + "</extra>")), row=1, col=1)
    if knobs:
        fig.add_trace(go.Scatter(x=[knobs[0], knobs[-1]], y=[0, 0], mode="lines",
                                 name="zero: no difference", hoverinfo="skip",
                                 line={"color": "black", "width": 1}), row=1, col=1)
    for i, (name, g) in enumerate(arms.groupby("arm", sort=False)):
        g = g.sort_values("knob")
        color = FAMILY_COLORS.get(str(name), PALETTE[(i + 3) % len(PALETTE)])
        fig.add_trace(go.Scatter(
            x=g["knob"], y=g["mean"], mode="lines+markers", name=str(name), legendgroup="arm",
            line={"color": color, "dash": "dot"}, marker={"size": 8},
            error_y=_err(g["mean"], g["ci_low"], g["ci_high"])), row=1, col=2)
    if knobs and len(arms):
        add_baselines(fig, arms["chance"].mean(), arms["majority"].mean(),
                      [knobs[0], knobs[-1]], row=1, col=2)
    kind = _axis_type(knobs)
    for c in (1, 2):
        fig.update_xaxes(title_text=knob_label, type=kind, tickvals=knobs, row=1, col=c)
    fig.update_yaxes(title_text=f"Δ {metric}", row=1, col=1)
    fig.update_yaxes(title_text=metric, row=1, col=2)
    fig.update_layout(**LAYOUT, height=480, legend={"orientation": "h", "y": -0.25})
    return fig


def _err(mean: pd.Series, low: pd.Series, high: pd.Series) -> dict[str, Any]:
    plus = (high - mean).fillna(0).clip(lower=0).to_numpy()
    minus = (mean - low).fillna(0).clip(lower=0).to_numpy()
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus,
            "thickness": 1.2, "width": 4}


def learning_curves_figure(curves: pd.DataFrame, trials: pd.DataFrame, *, by: str = "arm",
                           metric: str = metrics.VAL_ACC1) -> go.Figure:
    """Each arm's mean ``metric`` by epoch over its trials, with the trials that plateaued
    counted in the legend (trials a stopper ended: ``curve_summary(..., hold_last=True)``).

    Args:
        curves: ``curve_summary`` by ``by`` (``epoch``, ``mean``, ``ci_low``, ``ci_high``, ``n``).
        trials: the COMPLETE trials with ``by``, ``plateaued``, ``chance``, ``majority``.
    """
    fig = go.Figure()
    for i, (name, g) in enumerate(curves.groupby(by, sort=False)):
        g = g.sort_values("epoch")
        t = trials[trials[by] == name]
        plateau = t["plateaued"] if "plateaued" in t else pd.Series(dtype=object)
        done = int(plateau.fillna(False).astype(bool).sum())
        color = FAMILY_COLORS.get(str(name), PALETTE[i % len(PALETTE)])
        fig.add_trace(go.Scatter(
            x=g["epoch"], y=g["mean"], mode="lines+markers", name=f"{name} ({done}/{len(t)} "
            "plateaued)", line={"color": color}, error_y=_err(g["mean"], g["ci_low"],
                                                               g["ci_high"]),
            customdata=g["n"], hovertemplate=f"{name} epoch %{{x}}: %{{y:.3f}} "
                                             f"(%{{customdata}} trials)<extra></extra>"))
    epochs = sorted(curves["epoch"].dropna().unique().tolist()) if len(curves) else []
    if metrics.is_accuracy(metric) and epochs:
        add_baselines(fig, trials.get("chance", pd.Series(dtype=float)).mean(),
                      trials.get("majority", pd.Series(dtype=float)).mean(),
                      [epochs[0], epochs[-1]])
    fig.update_layout(**LAYOUT, title=f"{metric} by epoch: mean and 95% CI over trials",
                      xaxis_title="epoch", yaxis_title=metric, height=460,
                      legend_title="arm (trials whose curve plateaued)")
    return fig


def ensure_browser() -> None:
    """Point kaleido at Debian's chromium (``BROWSER_PATH``, read by choreographer) unless set.

    Kaleido 1.x drives a Chrome it looks up on PATH under Chrome's names; Debian's binary is
    ``/usr/bin/chromium``, which it does not always find.
    """
    if not os.environ.get("BROWSER_PATH") and Path(DEFAULT_BROWSER).exists():
        os.environ["BROWSER_PATH"] = DEFAULT_BROWSER


def export_pngs(figs: dict[Path, go.Figure]) -> None:
    """Write every figure as PNG in one kaleido session; ``RuntimeError`` (one line) on failure."""
    if not figs:
        return
    ensure_browser()
    import plotly.io as pio

    paths = list(figs)
    try:
        pio.write_images([figs[p] for p in paths], paths, format="png", width=FIG_WIDTH,
                         height=[int(figs[p].layout.height or 500) for p in paths], scale=1)
    except Exception as exc:  # kaleido raises many types (no Chrome, timeouts, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeError(f"cannot export PNG figures ({first}); kaleido needs Chrome or "
                           f"Chromium (apt-get install chromium, or set BROWSER_PATH) — or "
                           f"rerun with --no-figures to write the tables only") from None

