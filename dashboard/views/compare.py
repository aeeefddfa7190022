"""Compare networks: every choice at once, two networks block by block, one network everywhere."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analysis import insight_figures as figs
from analysis.networks import BLOCK_FIELDS, network_diff
from dashboard import common

ctx = common.context()
table = common.choice_table(ctx.db, ctx.study, ctx.metric, ctx.mode)
n_networks = len(common.arch_summary(ctx.db, ctx.study, ctx.metric, ctx.mode))

st.title("Compare networks")
st.subheader("Every network's choices")
fields = st.multiselect("Choices", ["kind", "t_kernel", "inflate"], default=["kind"],
                        key="parcoords_fields")
st.caption("One line per network through the choices that differ between networks, its cost and "
           f"its mean {ctx.metric} over seeds; drag along an axis to filter. A stage whose "
           "blocks always agree is one axis."
           + (f" The best {len(table):,} of {n_networks:,} networks." if len(table) < n_networks
              else ""))
common.plot(figs.parcoords_figure(
    common.choice_table(ctx.db, ctx.study, ctx.metric, ctx.mode, tuple(fields) or ("kind",)),
    ctx.metric),
    key="parcoords")

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
    diff = network_diff(common.arch(ctx.db, a)[0], common.arch(ctx.db, b)[0],
                        common.trials(ctx.db, ctx.study, arch_ids=(a, b)), a, b, ctx.metric)
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
    pairs = [c for f in BLOCK_FIELDS for c in (f"a.{f}", f"b.{f}") if c in blocks]
    blocks = blocks[["layer", "differs", *pairs, "changed"]]

    def _mark(row: pd.Series) -> list[str]:
        """Shade the A and B cells of a field that differs in this layer."""
        changed = set(str(row["changed"]).split(", "))
        return ["background-color: #fff3bf" if c[2:] in changed and c[:2] in ("a.", "b.")
                else "" for c in row.index]

    st.dataframe(blocks.style.apply(_mark, axis=1), hide_index=True, width="stretch",
                 key="diff_blocks")
    st.caption("≠ marks the layers where the two networks differ, shaded cells the fields; "
               "a.* is network A, b.* network B.")

st.subheader("One network in every study")
pick = st.selectbox("Network", ids, key="cross_arch", format_func=lambda i: label[i])
if pick is not None:
    across = common.cross_study(ctx.db, pick, ctx.metric)
    st.dataframe(across, hide_index=True, width="stretch", key="cross_table",
                 column_config={**common.number_columns(mean=ctx.metric),
                                "rank": st.column_config.NumberColumn("rank (1 = best)")})
    st.caption(f"{len(across)} {'study' if len(across) == 1 else 'studies'} ran this network "
               "(same arch_id: same spec, clip and crop). Rank is among each study's networks "
               "by mean over seeds; data and training differ between studies, see *setting*.")
else:
    st.info("No completed network yet.")
