"""Overview: which placement wins, at what cost, and how sure we are."""

from __future__ import annotations

import streamlit as st

import analysis
from analysis import figures as figs
from dashboard import common

ctx = common.context(need_complete=False)
df = common.trials(ctx.db, ctx.study)
cfg = common.config(ctx.db, ctx.study)
counts = analysis.state_counts(df)
spent = analysis.budget(df, cfg)

st.title(f"Study · {ctx.study}")
if isinstance(cfg.get("study"), dict) and cfg["study"].get("description"):
    st.caption(cfg["study"]["description"])

cols = st.columns(6)
cols[0].metric("Trials", f"{len(df):,}")
cols[1].metric("Complete", f"{counts['COMPLETE']:,}")
cols[2].metric("Pruned", f"{counts['PRUNED']:,}", help="Stopped early; never a Pareto point")
cols[3].metric("Failed", f"{counts['FAILED']:,}")
cols[4].metric("Running", f"{counts['RUNNING']:,}")
cols[5].metric("Compute used", common.duration(spent["trial_hours"] * 3600),
               help="Sum of the trials' wall-clock durations")
if spent["planned"]:
    done = min(1.0, spent["finished"] / spent["planned"])
    st.progress(done, text=f"Budget: {spent['finished']:,} of {spent['planned']:,} planned "
                           f"trials finished ({done:.0%})")

common.context(need_complete=True)  # stops here, with the command to run, if nothing finished
result = common.verdict(ctx.db, ctx.study, ctx.metric)

st.subheader("The answer")
st.info("\n\n".join(result["sentences"]))

table = result["table"]
common.plot(figs.compare_figure(table, metric=ctx.metric), key="compare")

with st.container():
    st.markdown("**Best network per placement family** (mean over seeds)")
    best = common.best_per_group(ctx.db, ctx.study, ctx.metric)
    st.dataframe(best, hide_index=True, width="stretch", column_order=[
        "family", "label", "mean", "ci_low", "ci_high", "n", "gmacs", "per_gmac", "params",
        "latency_ms", "arch_id"], column_config={
        **common.number_columns(mean=ctx.metric), "n": st.column_config.NumberColumn("seeds")})
with st.container():
    ref = table["reference"].iloc[0] if len(table) else ""
    st.markdown(f"**Effect table** — Δ and p-values against **{ref}**")
    shown = table.drop(columns=["reference"])
    st.dataframe(shown, hide_index=True, width="stretch", column_order=[
        "group", "mean", "ci_low", "ci_high", "delta", "p_paired_t", "p_wilcoxon", "p_welch",
        "n_pairs", "n", "n_seeds", "n_archs", "gmacs", "acc_per_gmac", "best", "latency_ms",
        "ci_unit"], column_config={"group": "family", **common.number_columns()})
st.caption("Means are over per-seed means when a family has 2+ seeds (else over trials); "
           "95% CIs are percentile bootstraps over those units. Paired tests pair the seeds "
           "both families ran; Welch's test does not pair. Only COMPLETE trials count.")

with st.expander("All studies in this database"):
    st.dataframe(common.studies(ctx.db).drop(columns=["id", "config_json"]), hide_index=True,
                 width="stretch")
