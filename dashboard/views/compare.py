"""Compare networks: every choice at once, two networks block by block, one network everywhere."""

from __future__ import annotations

import math

import streamlit as st

from analysis import insight_figures as figs
from analysis.networks import cross_study, network_diff
from dashboard import common

ctx = common.context()
df = common.trials(ctx.db, ctx.study)
table = common.choice_table(ctx.db, ctx.study, ctx.metric)

st.title("Compare networks")
st.subheader("Every network's choices")
st.caption("One line per network through the choices that differ between networks, its cost and "
           f"its mean {ctx.metric} over seeds; drag along an axis to filter.")
common.plot(figs.parcoords_figure(table, ctx.metric), key="parcoords")

st.subheader("Two networks, block by block")
ids = table["arch_id"].tolist()  # best first
label = dict(zip(table["arch_id"], table["name"] + " · " + table["family"].astype(str),
                 strict=True))
left, right = st.columns(2)
a = left.selectbox("Network A", ids, key="diff_a", format_func=lambda i: label[i])
others = [i for i in ids if i != a]
family = dict(zip(table["arch_id"], table["family"], strict=True))
runner_up = next((i for i in others if family[i] != family.get(a)), others[0] if others else None)
b = right.selectbox("Network B", others, key="diff_b", format_func=lambda i: label[i],
                    index=others.index(runner_up) if runner_up in others else 0)
if a is not None and b is not None:
    diff = network_diff(common.arch(ctx.db, a)[0], common.arch(ctx.db, b)[0], df, a, b,
                        ctx.metric)
    d = diff.delta
    if d["n_pairs"]:
        ci = (f"95% t interval {d['ci_low']:+.4f} to {d['ci_high']:+.4f}"
              if math.isfinite(d["ci_low"]) else "no interval: one shared seed")
        st.markdown(f"**{ctx.metric}: A − B = {d['delta']:+.4f}** ({ci}, paired over "
                    f"{d['n_pairs']} shared seeds). {diff.n_differing} of {len(diff.blocks)} "
                    "layers differ.")
    else:
        st.markdown(f"A and B share no completed seed: no paired difference. "
                    f"{diff.n_differing} of {len(diff.blocks)} layers differ.")
    blocks = diff.blocks.assign(differs=diff.blocks["differs"].map({True: "≠", False: ""}))
    st.dataframe(blocks, hide_index=True, width="stretch", key="diff_blocks",
                 column_order=["layer", "differs", "changed",
                               *[c for c in blocks if c.startswith(("a.", "b."))]])
    st.caption("≠ marks the layers where the two networks differ; *changed* names the fields.")

st.subheader("One network in every study")
pick = st.selectbox("Network", ids, key="cross_arch", format_func=lambda i: label[i])
if pick is not None:
    names = common.studies_of_arch(ctx.db, pick)
    frames = {n: common.trials(ctx.db, n) for n in names}
    across = cross_study(frames, pick, ctx.metric, {n: common.config(ctx.db, n) for n in names})
    st.dataframe(across, hide_index=True, width="stretch", key="cross_table",
                 column_config={**common.number_columns(mean=ctx.metric),
                                "rank": st.column_config.NumberColumn("rank (1 = best)")})
    st.caption(f"{len(across)} {'study' if len(across) == 1 else 'studies'} ran this network "
               "(same arch_id: same spec, clip and crop). Rank is among each study's networks "
               "by mean over seeds; data and training differ between studies, see *setting*.")
else:
    st.info("No completed network yet.")
