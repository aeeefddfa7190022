"""Budget: what to pick for the compute I can afford — the dashboard's front door."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import streamlit as st

from analysis import insight_figures as figs
from analysis import unit_stats
from analysis.budget import COST_AXES, fmt_cost
from dashboard import common

MAX_ROWS = 1000  # networks listed under the budget (best first)

ctx = common.context()
archs = common.table(ctx.db, ctx.study, ctx.metric).archs

st.title("What to pick under a budget")
st.caption(f"Study **{ctx.study}** · ranked by {ctx.metric} · COMPLETE trials only")
names = {"macs": "MACs per clip", "params": "parameters", "latency_ms": "latency"}
axes = [a for a in COST_AXES if a in archs and pd.to_numeric(archs[a], errors="coerce").notna().any()]
axis = st.radio("Budget on", axes, format_func=names.get, horizontal=True, key="budget_axis")
unit, scale = COST_AXES[axis]
# one value per COMPLETE trial (a network's cost once per trial it ran)
costs = pd.Series(np.repeat(pd.to_numeric(archs[axis], errors="coerce").to_numpy(dtype=float),
                            archs["n"].to_numpy())).dropna() / scale
low, high = float(costs.min()), float(costs.max())
if high > low:
    value = st.slider(f"Budget ({unit})", min_value=low, max_value=high,
                      value=float(costs.median()), step=(high - low) / 200,
                      format="%.0f" if high >= 1000 else "%.3g",
                      key=f"budget_{axis}", help="Networks costing at most this count")
else:
    value = high
    st.caption(f"Every network costs {fmt_cost(high * scale, axis)}: no budget to choose.")
answer = common.budget_answer(ctx.db, ctx.study, ctx.metric, axis, value * scale)

st.subheader("The answer")
st.info("\n\n".join(answer.sentences))
best, fam, bt = answer.best, answer.best_family, answer.bottom_vs_top
c1, c2, c3 = st.columns(3)
c1.metric("Best network", best["name"] if best else "—",
          help="Highest mean over seeds among the networks under the budget")
c2.metric("Best family", fam["family"] if fam else "—",
          help="Highest mean over seeds of the family's networks under the budget")
c3.metric("Bottom − top-heavy", f"{bt['delta']:+.4f}" if bt and bt["n_pairs"] else "—",
          help="Best bottom-heavy minus best top-heavy under the budget, paired over seeds")


def _row(what: str, name: str, family: str, mean: float, ci_low: float, ci_high: float,
         n: int, cost: float) -> dict[str, object]:
    return {"answer": what, "network": name, "family": family, "mean": mean, "ci_low": ci_low,
            "ci_high": ci_high, "n": n, unit: cost / scale if math.isfinite(cost) else math.nan}


rows = []
if best:
    rows.append(_row("best network", best["name"], best["family"], best["mean"],
                     best["ci_low"], best["ci_high"], best["n_seeds"], best["cost"]))
if fam:
    nets = "1 network" if fam["n_networks"] == 1 else f"{fam['n_networks']} networks"
    rows.append(_row("best family", f"{nets}, best {fam['best']}",
                     fam["family"], fam["mean"], fam["ci_low"], fam["ci_high"], fam["n_units"],
                     math.nan))
for what, pair in (("bottom − top-heavy", bt),
                   ("bottom − top-heavy, matched cost", None if bt and bt["matched"]
                    else answer.matched)):
    if pair:
        rows.append(_row(what, f"{pair['bottom']} − {pair['top']}", "", pair["delta"],
                         pair["ci_low"], pair["ci_high"], pair["n_pairs"],
                         max(pair["bottom_cost"], pair["top_cost"])))
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="budget_answer",
             column_config={**common.number_columns(mean=ctx.metric),
                            "n": st.column_config.NumberColumn("seeds / units"),
                            unit: st.column_config.NumberColumn(unit, format="%.4g")})

chance = common.chance(ctx.db, ctx.study, ctx.metric) if "acc" in ctx.metric else math.nan
nets = answer.networks
shown_nets = unit_stats.plotted(nets, keep=nets["pareto"] | (nets["arch_id"] == (
    best["arch_id"] if best else None)))
common.plot(figs.budget_figure(dataclasses.replace(answer, networks=shown_nets), chance=chance),
            key="budget_plot")
st.caption("Points: mean over seeds; bars: 95% Student-t interval over per-seed means; faded: "
           "over the budget; dotted steps: the Pareto front; ring: the best under the budget. "
           + (f"Chance accuracy: {chance:.3g}." if math.isfinite(chance) else "")
           + (f" Plotted: {len(shown_nets):,} of {len(nets):,} networks (the front, the best, "
              "an even sample of the rest)." if len(shown_nets) < len(nets) else ""))

with st.expander("Families under the budget"):
    st.dataframe(answer.families, hide_index=True, width="stretch",
                 column_config=common.number_columns(mean=ctx.metric))
with st.expander("Networks under the budget"):
    shown = answer.within.head(MAX_ROWS)
    shown = shown.assign(**{unit: shown["cost"] / scale})
    if len(answer.within) > MAX_ROWS:
        st.caption(f"The best {MAX_ROWS:,} of {len(answer.within):,}.")
    st.dataframe(shown, hide_index=True, width="stretch", column_order=[
        "name", "family", "mean", "ci_low", "ci_high", "n_seeds", unit, "pareto", "arch_id"],
        column_config=common.number_columns(mean=ctx.metric))
