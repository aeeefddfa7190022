"""Plotly figures over analysis frames: pure DataFrame → Figure, shared with the dashboard.

Every function takes the frames that ``analysis`` computes (``arch_summary``, ``compare``,
``marginal_effects``, ``curve_summary``, ``layer_costs``) and returns a ``go.Figure``; none reads
the database. Colours are fixed per family and per conv kind so that pages agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.placement import FAMILIES
from search.results import metrics
from search.results.metrics import VAL_ACC1

FAMILY_COLORS: dict[str, str] = {
    "2D": "#7f7f7f", "bottom-heavy": "#1f77b4", "top-heavy": "#d62728",
    "uniform 3D": "#9467bd", "uniform (2+1)D": "#2ca02c", "mixed": "#ff7f0e",
    "unknown": "#bcbd22",
}
KIND_COLORS: dict[str, str] = {
    "2d": "#c7c7c7", "r2d": "#9e9e9e", "3d": "#d62728", "2plus1d": "#1f77b4",
    "p3d_b": "#17becf", "p3d_c": "#9467bd",
}
WEBGL_ABOVE = 1000  # points; SVG draws one element per point, WebGL scales to 100k
LAYOUT: dict[str, Any] = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50,
                                                                   "b": 50}}


def _ordered(values: Sequence[str]) -> list[str]:
    known = [f for f in FAMILIES if f in set(values)]
    return known + sorted(set(values) - set(known), key=str)


def _err(mean: pd.Series, low: pd.Series, high: pd.Series) -> dict[str, Any]:
    plus = (high - mean).fillna(0).clip(lower=0).to_numpy()
    minus = (mean - low).fillna(0).clip(lower=0).to_numpy()
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus,
            "thickness": 1, "width": 2}


def chance_of(table: pd.DataFrame, metric: str, chance: float | None = None) -> float | None:
    """The chance level to draw for ``metric``: ``chance`` if given, else the mean of the
    table's ``chance`` column; None for metrics that are not accuracies."""
    if not metrics.is_accuracy(metric):
        return None
    if chance is None and "chance" in table and table["chance"].notna().any():
        chance = float(table["chance"].mean())
    return chance if chance is not None and np.isfinite(chance) else None


def _chance_line(fig: go.Figure, chance: float | None, *, vertical: bool = False,
                 **where: Any) -> None:
    """A dashed line at chance accuracy, labelled."""
    if chance is None:
        return
    style = {"line_dash": "dash", "line_color": "#888", "line_width": 1,
             "annotation_text": f"chance {chance:.3g}", "annotation_font_color": "#666"}
    if vertical:
        fig.add_vline(x=chance, annotation_position="top", **style, **where)
    else:
        fig.add_hline(y=chance, annotation_position="bottom right", **style, **where)


def pareto_figure(summary: pd.DataFrame, front: pd.DataFrame | None = None, *,
                  metric: str = metrics.VAL_ACC1, cost: str = metrics.GMACS,
                  color: str = "family", chance: float | None = None) -> go.Figure:
    """Accuracy vs cost, one point per arch (mean over seeds, error bars = seed CI).

    Args:
        summary: ``arch_summary`` (columns ``mean, ci_low, ci_high, n``, ``cost``, ``color``).
        front: the Pareto-optimal rows of ``summary`` (drawn as a step line), or None.
        chance: chance accuracy, drawn as a line (default: ``summary``'s ``chance`` column;
            none for metrics that are not accuracies).
    """
    fig = go.Figure()
    scatter = go.Scattergl if len(summary) > WEBGL_ABOVE else go.Scatter
    for group in _ordered(summary[color].astype(str).tolist()) if len(summary) else []:
        g = summary[summary[color].astype(str) == group]
        labels = g["label"].fillna("").astype(str) if "label" in g else pd.Series("", g.index)
        custom = np.column_stack([g["arch_id"], labels, g["n"], g["ci_low"], g["ci_high"]])
        fig.add_trace(scatter(
            x=g[cost], y=g["mean"], mode="markers", name=f"{group} ({len(g)})",
            marker={"color": FAMILY_COLORS.get(group), "size": 9 if len(g) < 500 else 5,
                    "line": {"width": 0.5, "color": "white"}},
            error_y=_err(g["mean"], g["ci_low"], g["ci_high"]) if len(summary) <= 5000 else None,
            customdata=custom,
            hovertemplate=("<b>%{customdata[1]}</b> %{customdata[0]}<br>"
                           f"{metric} %{{y:.4f}} [%{{customdata[3]:.4f}}, %{{customdata[4]:.4f}}]"
                           "<br>seeds %{customdata[2]}<br>"
                           f"{cost} %{{x:.4g}}<extra>{group}</extra>"),
        ))
    if front is not None and len(front):
        f = front.sort_values(cost)
        fig.add_trace(go.Scatter(x=f[cost], y=f["mean"], mode="lines", line_shape="hv",
                                 name="Pareto front", hoverinfo="skip",
                                 line={"color": "black", "width": 1.5, "dash": "dot"}))
    chance = chance_of(summary, metric, chance)
    if len(summary):
        fig.update_yaxes(range=_y_range(summary["mean"], summary["ci_low"], summary["ci_high"],
                                        chance))
    _chance_line(fig, chance)
    fig.update_layout(**LAYOUT, title=f"{metric} vs {cost} (mean over seeds, 95% CI)",
                      xaxis_title="GMACs per clip" if cost == "gmacs" else cost,
                      yaxis_title=metric, legend_title="placement family", height=520)
    return fig


def _y_range(mean: pd.Series, low: pd.Series, high: pd.Series,
             chance: float | None = None) -> list[float]:
    """Axis range that shows every mean, the CIs and the chance line, but lets a huge CI (two
    seeds) run off the plot rather than squash the points into a line."""
    top, bottom = float(mean.max()), float(mean.min())
    if chance is not None:
        top, bottom = max(top, chance), min(bottom, chance)
    spread = max(top - bottom, 1e-3)
    lo = max(min(bottom, float(np.nanmin(low.to_numpy(dtype=float, na_value=np.nan)))
                 if low.notna().any() else bottom), bottom - spread)
    hi = min(max(top, float(np.nanmax(high.to_numpy(dtype=float, na_value=np.nan)))
                 if high.notna().any() else top), top + spread)
    pad = 0.05 * (hi - lo or spread)
    return [lo - pad, hi + pad]


def compare_figure(table: pd.DataFrame, *, metric: str = metrics.VAL_ACC1,
                   color: str = "group", chance: float | None = None) -> go.Figure:
    """Forest plot of a ``compare`` table: group means with 95% CIs beside their mean cost.

    ``color`` names the column whose family colours the rows (e.g. ``family`` when the groups
    are single networks). The chance line is drawn for accuracy metrics (``chance_of``); cost
    stands beside the metric, not divided into it (compare at matched cost instead).
    """
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        column_widths=[0.7, 0.3],
                        subplot_titles=(f"{metric}: mean and 95% CI over seeds",
                                        "mean GMACs per clip"))
    groups = table["group"].astype(str)
    colors = [FAMILY_COLORS.get(str(g), "#444") for g in table[color]]
    fig.add_trace(go.Scatter(
        x=table["mean"], y=groups, mode="markers", marker={"size": 11, "color": colors},
        error_x=_err(table["mean"], table["ci_low"], table["ci_high"]), showlegend=False,
        customdata=np.column_stack([table["n"], table["ci_low"], table["ci_high"]]),
        hovertemplate="%{y}: %{x:.4f} [%{customdata[1]:.4f}, %{customdata[2]:.4f}], "
                      "n=%{customdata[0]}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=table["gmacs"], y=groups, orientation="h",
                         marker_color=colors, showlegend=False,
                         hovertemplate="%{y}: %{x:.4g} GMACs<extra></extra>"), row=1, col=2)
    _chance_line(fig, chance_of(table, metric, chance), vertical=True, row=1, col=1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(**LAYOUT, height=120 + 40 * len(table))
    return fig


def effect_lines_figure(table: pd.DataFrame, x: str, line: str, *,
                        metric: str = metrics.VAL_ACC1, chance: float | None = None) -> go.Figure:
    """Group means with 95% CIs against a numeric ``x``, one line per value of ``line``.

    ``table`` is a ``compare`` table with the columns ``x`` and ``line`` added (e.g. the
    temporal extent ``t_kernel`` and the clip length ``clip_len`` of each group).
    """
    fig = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]
    values = sorted(table[line].dropna().unique().tolist()) if len(table) else []
    for i, value in enumerate(values):
        g = table[table[line] == value].sort_values(x)
        fig.add_trace(go.Scatter(
            x=g[x], y=g["mean"], mode="lines+markers", name=f"{line} = {value}",
            line={"color": palette[i % len(palette)]},
            error_y=_err(g["mean"], g["ci_low"], g["ci_high"]),
            customdata=np.column_stack([g["n"], g["ci_low"], g["ci_high"]]),
            hovertemplate=(f"{x} %{{x}}: %{{y:.4f}} [%{{customdata[1]:.4f}}, "
                           f"%{{customdata[2]:.4f}}], n=%{{customdata[0]}}<extra>{line} = "
                           f"{value}</extra>")))
    _chance_line(fig, chance_of(table, metric, chance))
    fig.update_layout(**LAYOUT, title=f"{metric} by {x} and {line} (mean, 95% CI over seeds)",
                      xaxis_title=x, yaxis_title=metric, legend_title=line, height=460)
    if len(table):
        fig.update_xaxes(tickvals=sorted(table[x].dropna().unique().tolist()))
    return fig


def placement_heatmap(summary: pd.DataFrame, *, metric: str = metrics.VAL_ACC1,
                      top: int = 60, mode: str | None = None) -> go.Figure:
    """Stage × block map of conv kinds, one row per arch, best ``metric`` (in its direction)
    at the top."""
    kind_cols = [c for c in summary.columns if c.endswith(".kind")]
    mode = mode or metrics.direction(metric)
    rows = summary.sort_values("mean", ascending=mode == metrics.MIN).head(top)
    kinds = sorted({str(k) for c in kind_cols for k in rows[c].dropna()},
                   key=lambda k: list(KIND_COLORS).index(k) if k in KIND_COLORS else 99)
    code = {k: i for i, k in enumerate(kinds)}
    z = np.array([[code.get(str(v), np.nan) for v in rows[c]] for c in kind_cols]).T
    labels = rows["label"].fillna("").astype(str) if "label" in rows else pd.Series("", rows.index)
    ylabels = [f"{i + 1}. {lab or aid[:8]} {m:.3f}"
               for i, (lab, aid, m) in enumerate(zip(labels, rows["arch_id"], rows["mean"],
                                                     strict=True))]
    n = max(len(kinds), 1)
    scale = []
    for i, k in enumerate(kinds):
        color = KIND_COLORS.get(k, "#444")
        scale += [[i / n, color], [(i + 1) / n, color]]
    text = np.array([[str(v) for v in rows[c]] for c in kind_cols]).T
    fig = go.Figure(go.Heatmap(
        z=z, x=[c.removesuffix(".kind") for c in kind_cols], y=ylabels, text=text,
        zmin=-0.5, zmax=n - 0.5, colorscale=scale or [[0, "#fff"], [1, "#fff"]],
        xgap=1, ygap=1, hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>",
        colorbar={"tickvals": list(range(n)), "ticktext": kinds, "title": "conv kind"}))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(**LAYOUT, title=f"Placement of conv kinds, archs sorted by {metric}",
                      height=max(320, 120 + 16 * len(rows)), xaxis_title="layer (bottom → top)")
    return fig


def marginal_figure(effects: pd.DataFrame, *, metric: str = VAL_ACC1) -> go.Figure:
    """Each position's marginal effect (kind vs all trials) on ``metric`` and on GMACs."""
    positions = list(dict.fromkeys(effects["position"]))
    kinds = sorted(set(effects["kind"]),
                   key=lambda k: list(KIND_COLORS).index(k) if k in KIND_COLORS else 99)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"Δ {metric} vs the mean of all trials",
                                        "Δ GMACs vs the mean of all trials"))
    for kind in kinds:
        k = effects[effects["kind"] == kind].set_index("position").reindex(positions)
        color = KIND_COLORS.get(kind, "#444")
        fig.add_trace(go.Bar(x=positions, y=k["delta"], name=kind, marker_color=color,
                             error_y={"type": "data", "array": 1.96 * k["sem"].fillna(0)},
                             customdata=k["n"], legendgroup=kind,
                             hovertemplate=f"{kind} at %{{x}}: Δ %{{y:+.4f}} "
                                           "(n=%{customdata})<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(x=positions, y=k["delta_gmacs"], name=kind, marker_color=color,
                             legendgroup=kind, showlegend=False,
                             hovertemplate=f"{kind} at %{{x}}: Δ %{{y:+.3g}} GMACs"
                                           "<extra></extra>"), row=2, col=1)
    fig.update_layout(**LAYOUT, barmode="group", height=560, legend_title="conv kind")
    return fig


def curves_figure(summary: pd.DataFrame, *, by: str = "family", metric: str = metrics.VAL_ACC1,
                  chance: float | None = None) -> go.Figure:
    """Mean learning curve per group with a 95% CI band (``curve_summary`` frame); a chance
    line for accuracy metrics when ``chance`` is given."""
    fig = go.Figure()
    for group in _ordered(summary[by].astype(str).tolist()) if len(summary) else []:
        g = summary[summary[by].astype(str) == group].sort_values("epoch")
        color = FAMILY_COLORS.get(group, "#444")
        low, high = g["ci_low"].fillna(g["mean"]), g["ci_high"].fillna(g["mean"])
        fig.add_trace(go.Scatter(
            x=np.concatenate([g["epoch"], g["epoch"][::-1]]),
            y=np.concatenate([high, low[::-1]]), fill="toself", fillcolor=color, opacity=0.18, mode="lines",
            line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group))
        fig.add_trace(go.Scatter(
            x=g["epoch"], y=g["mean"], mode="lines+markers", name=group, legendgroup=group,
            line={"color": color}, customdata=g["n"],
            hovertemplate=f"{group} epoch %{{x}}: %{{y:.4f}} (n=%{{customdata}})<extra></extra>"))
    _chance_line(fig, chance_of(summary, metric, chance))
    fig.update_layout(**LAYOUT, title=f"{metric} by epoch (mean, 95% CI over trials)",
                      xaxis_title="epoch", yaxis_title=metric, height=460)
    return fig


def trial_curves_figure(curves: pd.DataFrame, metric_names: Sequence[str],
                        names: dict[int, str] | None = None,
                        chance: float | None = None) -> go.Figure:
    """Per-epoch metrics of a few trials (one panel per metric, one line per trial); a chance
    line on the accuracy panels when ``chance`` is given."""
    shown = [m for m in metric_names if m in set(curves["name"])] \
        or sorted(set(curves["name"]))[:2]
    chance = chance if chance is not None and np.isfinite(chance) else None
    fig = make_subplots(rows=1, cols=max(1, len(shown)), subplot_titles=shown)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for j, metric in enumerate(shown):
        for i, (trial_id, g) in enumerate(curves[curves["name"] == metric].groupby("trial_id")):
            name = (names or {}).get(int(trial_id), f"trial {trial_id}")
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["value"], mode="lines+markers",
                                     name=name, legendgroup=name, showlegend=j == 0,
                                     line={"color": palette[i % len(palette)]}),
                          row=1, col=j + 1)
        if metrics.is_accuracy(metric):  # after the traces: plotly skips empty subplots
            _chance_line(fig, chance, row=1, col=j + 1)
    fig.update_layout(**LAYOUT, height=380)
    return fig


def layer_macs_figure(layers: Sequence[dict[str, Any]] | pd.DataFrame,
                      title: str = "MACs per layer") -> go.Figure:
    """Bar chart of GMACs per layer (stem, blocks), coloured by conv kind."""
    df = pd.DataFrame(layers)
    df["gmacs"] = df["macs"] / 1e9
    fig = go.Figure()
    for kind in dict.fromkeys(df["kind"]):
        k = df[df["kind"] == kind]
        fig.add_trace(go.Bar(x=k["layer"], y=k["gmacs"], name=str(kind),
                             marker_color=KIND_COLORS.get(str(kind), "#444"),
                             hovertemplate="%{x}: %{y:.4g} GMACs<extra>" + str(kind) + "</extra>"))
    fig.update_layout(**LAYOUT, title=title, barmode="overlay", yaxis_title="GMACs",
                      xaxis={"categoryorder": "array", "categoryarray": list(df["layer"])},
                      legend_title="conv kind", height=360)
    return fig


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a message (no data to plot)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(**LAYOUT, xaxis_visible=False, yaxis_visible=False, height=240)
    return fig
