"""Overview: which placement wins, at what cost, how sure we are, and against what baseline."""

from __future__ import annotations

import math

import streamlit as st

import analysis
from analysis import figures as figs
from analysis import unit_stats
from analysis.summary import budget_of, fmt_macs
from dashboard import common
from search.results import metrics

ctx = common.context(need_complete=False)
known = common.facts(ctx.db, ctx.study)
cfg = common.config(ctx.db, ctx.study)
counts = known.counts
spent = budget_of(counts["COMPLETE"] + counts["PRUNED"] + counts["FAILED"], counts["RUNNING"],
                  *common.spent(ctx.db, ctx.study), cfg)

st.title(f"Study · {ctx.study}")
if isinstance(cfg.get("study"), dict) and cfg["study"].get("description"):
    st.caption(cfg["study"]["description"])

cols = st.columns(6)
cols[0].metric("Trials", f"{known.n_trials:,}")
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
result = common.verdict(ctx.db, ctx.study, ctx.metric, ctx.mode)

st.subheader("The answer")
st.info("\n\n".join(result["sentences"]))
base = unit_stats.baselines(common.table(ctx.db, ctx.study, ctx.metric))
b1, b2 = st.columns(2)
b1.metric("Chance accuracy", "—" if math.isnan(base["chance"]) else f"{base['chance']:.3f}",
          help="Recorded per trial, else 1 / classes of the network")
b2.metric("Majority-class accuracy",
          "not recorded" if math.isnan(base["majority"]) else f"{base['majority']:.3f}",
          help="Always answering the most frequent class of the drawn val set")

table = result["table"]
common.plot(figs.compare_figure(table, metric=ctx.metric), key="compare")

flag_cols = ["chance", "above_chance", "train_val_gap", "flags"]
st.markdown(f"**Best network per placement family** (mean over seeds, "
            f"{'highest' if ctx.mode == metrics.MAX else 'lowest'} {ctx.metric})")
best = common.best_per_group(ctx.db, ctx.study, ctx.metric, ctx.mode)
st.dataframe(best, hide_index=True, width="stretch", column_order=[
    "family", "label", "mean", "ci_low", "ci_high", "n", "gmacs", *flag_cols, "params",
    "latency_ms", "arch_id"], column_config={
    **common.number_columns(mean=ctx.metric), "n": st.column_config.NumberColumn("seeds"),
    "above_chance": st.column_config.CheckboxColumn("CI above chance")})

st.markdown("**Declared contrasts** — A − B paired over seeds, Holm-adjusted within the study")
declared = common.contrasts(ctx.db, ctx.study, ctx.metric, ctx.mode)
if declared.empty:
    st.caption("This study declares no contrasts (`study.contrasts` in its config): nothing is "
               "tested. Differences read off the tables below are not tests.")
else:
    st.dataframe(declared, hide_index=True, width="stretch", column_order=[
        "contrast", "a", "b", "delta", "ci_low", "ci_high", "n_pairs", "p_t", "p_holm",
        "p_wilcoxon", "favours", "note"], column_config={
        **common.number_columns(delta="Δ (A − B)"), "n_pairs": "seeds"})
    note = analysis.wilcoxon_note(declared)
    if note:
        st.caption(note)

st.markdown("**At matched cost** — the best network of each family within a MAC budget")
summary = common.arch_summary(ctx.db, ctx.study, ctx.metric, ctx.mode)
levels = analysis.budget_levels(summary)
if levels:
    budget = st.select_slider("MAC budget per clip", levels, value=levels[len(levels) // 2],
                              format_func=fmt_macs, key="overview_budget")
    st.dataframe(analysis.best_at_budget(summary, budget, ctx.metric, mode=ctx.mode),
                 hide_index=True, width="stretch",
                 column_config={**common.number_columns(mean=ctx.metric),
                                "n": st.column_config.NumberColumn("seeds"),
                                "above_chance": st.column_config.CheckboxColumn(
                                    "CI above chance")})

with st.expander("Effect table by family"):
    st.dataframe(table, hide_index=True, width="stretch", column_order=[
        "group", "mean", "ci_low", "ci_high", "ci_method", *flag_cols, "n_undertrained", "n",
        "n_seeds", "n_archs", "gmacs", "best", "latency_ms", "ci_unit"],
        column_config={"group": "family", **common.number_columns()})
st.caption("Means are over per-seed means when a family has 2+ seeds (else over trials); 95% "
           "intervals are Student-t over those units. Only COMPLETE trials count. Flags: an "
           "interval that includes chance; undertrained (a trial whose curve did not "
           "plateau); memorising (train−val accuracy gap above "
           f"{metrics.MEMORISING_GAP:g}).")

with st.expander("All studies in this database"):
    st.dataframe(common.studies(ctx.db).drop(columns=["id", "config_json"]), hide_index=True,
                 width="stretch")
