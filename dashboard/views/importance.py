"""Importance: which searched choice matters to the metric, and at which position."""

from __future__ import annotations

import streamlit as st

from analysis import insight_figures as figs
from analysis.importance import has_sampled_params, position_ranking
from analysis.stats import completed
from dashboard import common

FEW_TRIALS = 50  # PED-ANOVA's top 10% holds fewer than 5 trials below this
FANOVA_AT_ONCE = 100  # trials: above this fANOVA's forest (~10 s on 200) waits to be asked for

ctx = common.context()
df = common.sample(ctx.db, ctx.study, common.IMPORTANCE_SAMPLE)
done = completed(df, ctx.metric)

st.title("Which choice matters, and where")
st.subheader("Importance of each searched choice")
with_fanova = st.toggle("fANOVA too (a random-forest fit: about 10 s on 200 trials)",
                        value=len(done) <= FANOVA_AT_ONCE, key="importance_fanova")
table = common.importance(ctx.db, ctx.study, ctx.metric, fanova=with_fanova)
source = ("the parameters the search sampled" if has_sampled_params(done)
          else "the spec fields that differ between the grid's networks")
st.caption(f"Optuna's own evaluators over an in-memory study rebuilt from {len(done):,} "
           f"COMPLETE trials{common.sample_note(ctx.db, ctx.study, common.IMPORTANCE_SAMPLE)}, using {source}. PED-ANOVA asks what it takes to reach the top 10% "
           "and handles conditional choices (an extent exists only where a layer is temporal); "
           "fANOVA decomposes the variance of a random-forest fit and, in Optuna, assesses only "
           "choices present in every trial (blank for the others). Each sums to 1.")
if done[ctx.metric].nunique() < 2:
    st.info(f"Every completed trial has the same {ctx.metric}: no choice can matter yet.")
elif len(done) < FEW_TRIALS:
    st.warning(f"Only {len(done)} trials: PED-ANOVA's top 10% holds fewer than 5 of them, so "
               "read these importances as a first look.")
common.plot(figs.importance_figure(table), key="importance_plot")
with st.expander("Importances as a table"):
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in ("importance", "ped_anova", "fanova")})

st.subheader("Where it matters: each position")
level = st.radio("Position", ["block", "stage"], horizontal=True, key="importance_level",
                 format_func={"block": "each block", "stage": "each stage (blocks together)"}.get)
effects = common.position_effects(ctx.db, ctx.study, ctx.metric, level)
common.plot(figs.position_heatmap(effects), key="position_heatmap")
st.caption(f"Each cell: the share of the variance of {ctx.metric} across networks (mean over "
           "seeds) that this choice at this position explains — one-way ANOVA, ω² (0 when it "
           "explains no more than chance would), with a 95% BCa bootstrap interval over "
           "networks and the networks it rests on. Temporal extent and inflation are explained "
           "only among the networks where the position is temporal (a 2D layer has neither). "
           "Marginal, not causal: other positions vary too.")
ranking = position_ranking(effects)
if len(ranking) and ranking["omega2"].notna().any():
    top = ranking.iloc[0]
    st.markdown(f"Most explained: **{top['field']} at {top['position']}** "
                f"(ω² {top['omega2']:.2f}).")
with st.expander("Per-position shares as a table"):
    st.dataframe(effects, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in ("eta2", "omega2", "ci_low", "ci_high")})
