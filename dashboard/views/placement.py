"""Placement: which conv kind sits where in the best networks, and each position's effect."""

from __future__ import annotations

import streamlit as st

from analysis import figures as figs
from dashboard import common

ctx = common.context()
summary = common.arch_summary(ctx.db, ctx.study, ctx.metric, ctx.mode)

st.title("Placement")
top = len(summary)
if len(summary) > 5:
    top = st.slider("Networks shown (best first)", min_value=5, max_value=min(200, len(summary)),
                    value=min(40, len(summary)), key="placement_top")
common.plot(figs.placement_heatmap(common.with_spec(ctx.db, summary, top), metric=ctx.metric,
                                   top=top, mode=ctx.mode),
            key="heatmap")

st.subheader("Marginal effect of each position")
effects, sampled = common.marginal_effects(ctx.db, ctx.study, ctx.metric)
st.caption(f"For every layer and conv kind: mean {ctx.metric} (top) and mean GMACs (bottom) of the "
           "COMPLETE trials using that kind there, minus the mean of all of them; error bars are "
           "±1.96 standard errors. Marginal, not causal: in a grid or random search the other "
           f"positions vary too{sampled}.")
if effects.empty:
    st.info("No spec columns to compare.")
else:
    common.plot(figs.marginal_figure(effects, metric=ctx.metric), key="marginal")
    with st.expander("Effects as a table"):
        st.dataframe(effects, hide_index=True, width="stretch")
