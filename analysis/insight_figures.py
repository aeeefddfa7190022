"""Plotly figures of the budget, importance, comparison and fidelity analyses.

Pure frame → ``go.Figure`` functions over what ``analysis.budget``, ``analysis.importance``,
``analysis.networks`` and ``analysis.fidelity`` compute; colours come from ``analysis.figures``
so that every page agrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.budget import COST_AXES, BudgetAnswer, fmt_cost
from analysis.figures import FAMILY_COLORS, LAYOUT
from analysis.placement import FAMILIES
from search.results.metrics import VAL_ACC1

# Label placement, in pixels of a plot area of about PLOT_W x PLOT_H: a label's box centre is
# tried at growing distances from its point, in eight directions, joined to it by a thin line.
PLOT_W, PLOT_H = 700.0, 440.0
CHAR_W, LABEL_H, POINT_R = 6.6, 16.0, 6.0
_RADII = (16.0, 34.0, 58.0, 88.0)
_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))
LABEL_ALL_UP_TO = 60  # networks; above, only the Pareto front and the best are named
MAX_LABELS = 40  # names drawn at most (the best, then the Pareto front): a label per point
# of a 200k-network study would hide the plot


def _ordered(values: Sequence[str]) -> list[str]:
    """Families in the order of ``FAMILIES``, others after them."""
    known = [f for f in FAMILIES if f in set(values)]
    return known + sorted(set(values) - set(known), key=str)


def _error_bars(mean: pd.Series, low: pd.Series, high: pd.Series) -> dict[str, Any]:
    """Asymmetric plotly error bars from interval bounds (none where a bound is NaN)."""
    return {"type": "data", "symmetric": False, "thickness": 0.8, "width": 2,
            "array": (high - mean).fillna(0).clip(lower=0).to_numpy(),
            "arrayminus": (mean - low).fillna(0).clip(lower=0).to_numpy()}


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Overlap area of two boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def label_offsets(x: Sequence[float], y: Sequence[float], labels: Sequence[str], *,
                  x_range: tuple[float, float] | None = None,
                  y_range: tuple[float, float] | None = None) -> list[tuple[float, float]]:
    """Where to put each point's label: a plotly annotation offset ``(ax, ay)`` in pixels.

    Greedy, in the given order (put important points first): each label takes the nearest spot
    whose box overlaps no label placed before it and no point; when every spot overlaps, the
    one with the least overlap. Labels are never dropped. An empty label gets ``(0, 0)``.
    ``x``, ``y`` and the axis ranges (default: the data's) are in axis units (log10 on a log
    axis).
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def scaled(v: np.ndarray, size: float, span: tuple[float, float] | None) -> np.ndarray:
        finite = v[np.isfinite(v)]
        lo, hi = span or ((finite.min(), finite.max()) if finite.size else (0.0, 1.0))
        return (v - lo) / (hi - lo) * size if hi > lo else np.full_like(v, size / 2)

    px, py = scaled(xs, PLOT_W, x_range), scaled(ys, PLOT_H, y_range)  # y grows upwards
    points = np.column_stack([px - POINT_R, py - POINT_R, px + POINT_R, py + POINT_R])
    points[~np.isfinite(points)] = -1e9  # a point without coordinates covers nothing
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float]] = []
    for i, text in enumerate(labels):
        if not text:
            out.append((0.0, 0.0))
            continue
        half_w, half_h = CHAR_W * len(text) / 2 + 2, LABEL_H / 2
        best, best_cost, best_box = (0.0, 0.0), math.inf, (0.0, 0.0, 0.0, 0.0)
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                cx = px[i] + dx * (half_w + radius * 0.6 if dx else 0.0)
                cy = py[i] + dy * (half_h + radius * 0.6 if dy else 0.0)
                box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
                cost = sum(_overlap(box, other) for other in placed)
                w = np.minimum(box[2], points[:, 2]) - np.maximum(box[0], points[:, 0])
                h = np.minimum(box[3], points[:, 3]) - np.maximum(box[1], points[:, 1])
                area = np.clip(w, 0, None) * np.clip(h, 0, None)
                cost += float(area.sum() - area[i])
                if cost < best_cost:
                    best, best_cost, best_box = (cx - px[i], -(cy - py[i])), cost, box
            if best_cost == 0:
                break
        placed.append(best_box)
        out.append(best)
    return out


def budget_figure(answer: BudgetAnswer, *, chance: float = math.nan) -> go.Figure:
    """Mean ``metric`` against cost for every network (t interval over seeds), the Pareto front,
    the budget line, the chance line, and each network named next to its point."""
    nets = answer.networks.dropna(subset=["cost", "mean"])
    unit, scale = COST_AXES[answer.axis]
    fig = go.Figure()
    if nets.empty:
        return _no_data(fig, "No completed network with this cost recorded yet.")
    x = nets["cost"] / scale
    log_x = bool(x.min() > 0 and x.max() / x.min() > 30)
    labelled = nets["pareto"] | nets["within"] if len(nets) > LABEL_ALL_UP_TO else \
        pd.Series(True, index=nets.index)
    best_id = answer.best["arch_id"] if answer.best else None
    order = sorted(nets.index, key=lambda i: (nets.at[i, "arch_id"] != best_id,
                                              not nets.at[i, "pareto"], i))
    texts = [nets.at[i, "name"] if labelled[i] else "" for i in order]
    named = np.cumsum([bool(t) for t in texts])
    texts = [t if k <= MAX_LABELS else "" for t, k in zip(texts, named, strict=True)]
    ax_x = np.log10(x) if log_x else x  # plotly places annotations in log10 on a log axis
    line_x = math.log10(answer.budget / scale) if log_x else answer.budget / scale
    x_lo, x_hi = min(float(ax_x.min()), line_x), max(float(ax_x.max()), line_x)
    x_pad = 0.06 * (x_hi - x_lo or 1.0)
    lows = [nets["mean"].min(), nets["ci_low"].min()]
    if math.isfinite(chance):
        lows.append(chance)
    low = min(v for v in lows if math.isfinite(v))
    high = max(v for v in (nets["mean"].max(), nets["ci_high"].max()) if math.isfinite(v))
    y_pad = 0.08 * (high - low or 0.01)
    x_range, y_range = (x_lo - x_pad, x_hi + x_pad), (low - y_pad, high + y_pad)
    offsets = label_offsets(ax_x[order], nets.loc[order, "mean"], texts, x_range=x_range,
                            y_range=y_range)
    fig.update_layout(annotations=[  # at once: one add_annotation each is quadratic
        {"x": ax_x[i], "y": nets.at[i, "mean"], "text": text, "ax": ax, "ay": ay,
         "showarrow": True, "arrowhead": 0, "arrowwidth": 0.6, "arrowcolor": "#999",
         "standoff": 4, "font": {"size": 11, "color": "#222" if nets.at[i, "within"] else "#999"}}
        for i, text, (ax, ay) in zip(order, texts, offsets, strict=True) if text])
    for family in _ordered(nets["family"].astype(str).tolist()):
        for inside in (True, False):
            g = nets[(nets["family"].astype(str) == family) & (nets["within"] == inside)]
            if g.empty:
                continue
            fig.add_trace(go.Scatter(
                x=g["cost"] / scale, y=g["mean"], mode="markers",
                name=family, legendgroup=family, showlegend=inside or not (nets["family"].astype(
                    str).eq(family) & nets["within"]).any(),
                opacity=1.0 if inside else 0.35,
                marker={"color": FAMILY_COLORS.get(family, "#444"), "size": 10,
                        "line": {"width": 1, "color": "white"}},
                error_y=_error_bars(g["mean"], g["ci_low"], g["ci_high"]),
                customdata=np.column_stack([g["name"], g["arch_id"], g["n_seeds"],
                                            g["ci_low"], g["ci_high"]]),
                hovertemplate=("<b>%{customdata[0]}</b> %{customdata[1]}<br>"
                               f"{answer.metric} %{{y:.4f}} [%{{customdata[3]:.4f}}, "
                               "%{customdata[4]:.4f}], seeds %{customdata[2]}<br>"
                               f"%{{x:.4g}} {unit}<extra>{family}</extra>")))
    front = nets[nets["pareto"]].sort_values("cost")
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=front["cost"] / scale, y=front["mean"], mode="lines",
                                 line_shape="hv", name="Pareto front", hoverinfo="skip",
                                 line={"color": "black", "width": 1.2, "dash": "dot"}))
    if best_id is not None:
        best = nets[nets["arch_id"] == best_id]
        fig.add_trace(go.Scatter(x=best["cost"] / scale, y=best["mean"], mode="markers",
                                 name="best under the budget", hoverinfo="skip",
                                 marker={"symbol": "circle-open", "size": 20, "color": "black",
                                         "line": {"width": 2.5, "color": "black"}}))
    fig.add_vline(x=answer.budget / scale, line={"color": "#444", "dash": "dash"},
                  annotation_text=f"budget {fmt_cost(answer.budget, answer.axis)}",
                  annotation_position="top left")
    if math.isfinite(chance):
        fig.add_hline(y=chance, line={"color": "#999", "dash": "dot"},
                      annotation_text=f"chance {chance:.3g}", annotation_position="bottom right")
    fig.update_yaxes(range=list(y_range))
    fig.update_xaxes(type="log" if log_x else "linear", range=list(x_range))
    fig.update_layout(**LAYOUT, height=560, legend_title="placement family",
                      title=f"{answer.metric} vs {unit} (mean over seeds, 95% t interval)",
                      xaxis_title=f"{unit} per clip" if answer.axis == "macs" else unit,
                      yaxis_title=answer.metric)
    return fig


def importance_figure(table: pd.DataFrame) -> go.Figure:
    """Horizontal bars of each searched choice's importance, PED-ANOVA and fANOVA side by side."""
    fig = go.Figure()
    if table.empty:
        return _no_data(fig, "No searched choice varies among the completed trials.")
    rows = table.iloc[::-1]
    for column, name, color in (("ped_anova", "PED-ANOVA", "#1f77b4"),
                                ("fanova", "fANOVA", "#ff7f0e")):
        fig.add_trace(go.Bar(x=rows[column], y=rows["param"], orientation="h", name=name,
                             marker_color=color,
                             hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>"))
    fig.update_layout(**LAYOUT, barmode="group", height=140 + 34 * len(table),
                      title="Importance of each searched choice (Optuna; each sums to 1)",
                      xaxis_title="importance", legend_title="evaluator")
    return fig


def position_heatmap(effects: pd.DataFrame) -> go.Figure:
    """Positions (bottom to top) × choices: the share of variance explained (ω²), its bootstrap
    interval and the networks it rests on in each cell; blank where it cannot be estimated."""
    fig = go.Figure()
    if effects.empty:
        return _no_data(fig, "No positions to compare.")
    order = list(dict.fromkeys(effects["position"]))
    fields = list(dict.fromkeys(effects["field"]))
    z = effects.pivot(index="field", columns="position", values="omega2").reindex(
        index=fields, columns=order)
    text = effects.assign(text=[
        (f"{r.omega2:.2f}<br>[{r.ci_low:.2f}, {r.ci_high:.2f}]<br>n={r.n}"
         if math.isfinite(r.omega2) else (r.note or "—").replace(" (", "<br>("))
        for r in effects.itertuples()]).pivot(index="field", columns="position",
                                              values="text").reindex(index=fields, columns=order)
    fig.add_trace(go.Heatmap(z=z.to_numpy(dtype=float), x=order, y=fields,
                             text=text.to_numpy(), texttemplate="%{text}",
                             textfont={"size": 10}, colorscale="Blues", zmin=0, zmax=1,
                             colorbar={"title": "ω²"}, hoverongaps=False,
                             hovertemplate="%{y} at %{x}: ω² %{z:.3f}<extra></extra>"))
    fig.update_layout(**LAYOUT, height=180 + 70 * len(fields),
                      title="Share of variance across networks explained, per position",
                      xaxis_title="position (bottom → top)", yaxis={"autorange": "reversed"})
    return fig


def parcoords_figure(table: pd.DataFrame, metric: str = VAL_ACC1,
                     max_dimensions: int = 24) -> go.Figure:
    """Parallel coordinates of a ``choice_table``: one line per network through every choice,
    its cost and its ``metric``; lines coloured by the metric."""
    fig = go.Figure()
    if table.empty:
        return _no_data(fig, "No completed network yet.")
    dims: list[dict[str, Any]] = []
    skip = {"arch_id", "name", metric}
    for col in [c for c in table.columns if c not in skip][:max_dimensions - 1]:
        values = table[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            dims.append({"label": col, "values": values.astype(float)})
        else:
            codes, levels = pd.factorize(values.astype(str), sort=True)
            dims.append({"label": col, "values": codes, "tickvals": list(range(len(levels))),
                         "ticktext": list(levels)})
    dims.append({"label": metric, "values": table[metric].astype(float)})
    fig.add_trace(go.Parcoords(
        line={"color": table[metric].astype(float), "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": metric}},
        dimensions=dims, labelangle=-25, labelside="bottom"))
    fig.update_layout(**LAYOUT | {"margin": {"l": 60, "r": 60, "t": 60, "b": 120}},
                      height=520, title=f"Every network's choices, cost and {metric}")
    return fig


def fidelity_figure(table: pd.DataFrame, *, x: str = "epoch") -> go.Figure:
    """Spearman ρ and Kendall τ of the early against the final ranking, with interval bands."""
    fig = go.Figure()
    if table.empty:
        return _no_data(fig, "Needs two or more epochs of three or more networks.")
    for name, color in (("spearman", "#1f77b4"), ("kendall", "#d62728")):
        low = table[f"{name}_low"].fillna(table[name])
        high = table[f"{name}_high"].fillna(table[name])
        fig.add_trace(go.Scatter(x=np.concatenate([table[x], table[x][::-1]]),
                                 y=np.concatenate([high, low[::-1]]), fill="toself",
                                 fillcolor=color, opacity=0.15, line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=table[x], y=table[name], mode="lines+markers",
                                 name="Spearman ρ" if name == "spearman" else "Kendall τ",
                                 legendgroup=name, line={"color": color},
                                 customdata=table["n_networks"],
                                 hovertemplate=f"{x} %{{x}}: %{{y:.3f}} "
                                               "(%{customdata} networks)<extra></extra>"))
    fig.update_yaxes(range=[-1.05, 1.05])
    fig.update_xaxes(tickvals=sorted(table[x].unique().tolist()))  # whole epochs / clip lengths
    fig.update_layout(**LAYOUT, height=380, xaxis_title=x, yaxis_title="rank correlation",
                      title=f"Ranking at each {x.replace('_', ' ')} vs the final ranking (95% CI)")
    return fig


def _no_data(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(**LAYOUT, xaxis_visible=False, yaxis_visible=False, height=240)
    return fig
