"""Learning curves grouped by placement family (or any label), with CI bands."""

from __future__ import annotations

import streamlit as st

import analysis
from analysis import figures as figs
from analysis import insight_figures as insight_figs
from analysis.fidelity import fidelity_lines
from dashboard import common

ctx = common.context()
df = common.sample(ctx.db, ctx.study)
note = common.sample_note(ctx.db, ctx.study)

st.title("Learning curves")
names = common.curve_names(ctx.db, ctx.study)
if not names:
    st.info("This study recorded no per-epoch metrics.")
    st.stop()
left, right = st.columns(2)
metric = left.selectbox("Per-epoch metric", names, key="curves_metric",
                        index=names.index(ctx.metric) if ctx.metric in names else 0)
groups = [c for c in ("family", "label", "design_family", "seed") if c in df and
          df[c].notna().any()]
by = right.selectbox("Group by", groups, key="curves_by")
states = st.multiselect("Trial states", ["COMPLETE", "PRUNED", "FAILED", "RUNNING"],
                        default=["COMPLETE"], key="curves_states",
                        help="Pruned trials stop early: including them biases late epochs")
curves = common.curves(ctx.db, ctx.study, names=(metric,),
                       trial_ids=tuple(df["trial_id"]) if note else None)
curves = curves[curves["state"].isin(states)]
summary = analysis.curve_summary(curves, df, metric=metric, by=by)
if summary.empty:
    st.info("No curves for this selection.")
else:
    chance = analysis.baselines(df)["chance"]
    common.plot(figs.curves_figure(summary, by=by, metric=metric, chance=chance), key="curves")
    st.caption("Lines: mean over trials of the group at each epoch; bands: 95% Student-t "
               f"interval over those trials; dashed: chance accuracy. Trials: the study's{note}.")

st.subheader("Does an early epoch predict the final ranking?")
early, by_clip = common.fidelity(ctx.db, ctx.study, ctx.metric)
grace = common.config(ctx.db, ctx.study).get("study", {}).get("scheduler", {})
grace = grace.get("grace_epochs") if grace.get("kind") == "asha" else None
st.markdown(" ".join(fidelity_lines(early, grace_epochs=grace)))
common.plot(insight_figs.fidelity_figure(early), key="fidelity")
st.caption(f"Rank correlation between each network's {ctx.metric} at an epoch and its final "
           "one (networks = archs, mean over their COMPLETE seeds), with 95% BCa bootstrap "
           "intervals over networks: high values mean stopping early (ASHA) keeps the right "
           "networks. Pruned trials never finish, so the check speaks for those that did.")
if len(by_clip):
    common.plot(insight_figs.fidelity_figure(by_clip, x="clip_len"), key="clip_fidelity")
    st.caption(f"The same check between each shorter clip length and {by_clip['final_clip_len'].iloc[0]} "
               "frames (the same placement at both lengths).")
