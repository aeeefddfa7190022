"""Pareto front: accuracy against cost, one point per network, coloured by placement family."""

from __future__ import annotations

import streamlit as st

import analysis
from analysis import figures as figs
from analysis import unit_stats
from dashboard import common

ctx = common.context()
summary = common.arch_summary(ctx.db, ctx.study, ctx.metric, ctx.mode)

st.title("Pareto front")
costs = {"gmacs": "GMACs per clip", "params": "parameters", "latency_ms": "latency (ms)"}
available = [c for c in costs if c in summary and summary[c].notna().any()]
left, right = st.columns([1, 3])
with left:
    cost = st.radio("Cost axis", available, format_func=costs.get, key="pareto_cost")
    color = st.radio("Colour by", [c for c in ("family", "label") if c in summary],
                     key="pareto_color")
    credible = st.checkbox("Front of networks above chance only", value=True,
                           key="pareto_credible",
                           help="A network whose interval reaches chance is no trade-off")
front = (analysis.credible_front(summary, ctx.metric, cost, mode=ctx.mode) if credible else
         analysis.pareto_front(summary, (("mean", ctx.mode), (cost, "min")), complete_only=False))
with right:
    shown = unit_stats.plotted(summary, keep=summary["arch_id"].isin(front["arch_id"]))
    common.plot(figs.pareto_figure(shown, front, metric=ctx.metric, cost=cost, color=color),
                key="pareto")
    if len(shown) < len(summary):
        st.caption(f"Plotted: {len(shown):,} of {len(summary):,} networks (the front, the "
                   "best, an even sample of the rest).")

st.markdown(f"**{len(front)} Pareto-optimal networks** of {len(summary):,} "
            f"(mean {ctx.metric} over seeds, {'higher' if ctx.mode == 'max' else 'lower'} is "
            f"better, against {costs[cost]}; COMPLETE trials only — pruned trials never count"
            f"{'; only networks whose interval lies above chance' if credible else ''}):")
st.dataframe(front, hide_index=True, width="stretch", column_order=list(dict.fromkeys([
                 "label", "family", "mean", "ci_low", "ci_high", "n", cost, "gmacs", "params",
                 "latency_ms", "chance", "train_val_gap", "flags", "t_com", "t_share_bottom",
                 "temporal_mac_frac", "arch_id"])),
             column_config={
                 **common.number_columns(mean=ctx.metric),
                 "t_com": st.column_config.NumberColumn("temporal depth", format="%.2f"),
                 "t_share_bottom": st.column_config.NumberColumn("bottom share", format="%.2f"),
                 "temporal_mac_frac": st.column_config.NumberColumn("temporal MACs",
                                                                    format="percent"),
             })
st.caption("Error bars: 95% Student-t interval over an arch's seeds (none with one seed); "
           "dashed line: chance accuracy.")
