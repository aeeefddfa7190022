"""Trial table: filter the trials, look at them, download them as CSV or Parquet."""

from __future__ import annotations

import io

import streamlit as st

import analysis
from dashboard import common

MAX_ROWS = 20_000  # rows sent to the browser; downloads hold every filtered row

ctx = common.context(need_complete=False)
df = common.trials(ctx.db, ctx.study)

st.title("Trials")
c1, c2, c3 = st.columns(3)
states = c1.multiselect("State", sorted(df["state"].unique()), key="table_states")
families = c2.multiselect("Family", sorted(df["family"].dropna().unique()), key="table_families")
text = c3.text_input("Label or arch_id contains", key="table_text")
lo, hi = float(df["gmacs"].min()), float(df["gmacs"].max())
gmacs = st.slider("GMACs", lo, max(hi, lo + 1e-6), (lo, max(hi, lo + 1e-6)), key="table_gmacs") \
    if len(df) else (0.0, 0.0)

view = df
if states:
    view = view[view["state"].isin(states)]
if families:
    view = view[view["family"].isin(families)]
if text:
    view = view[view["label"].fillna("").str.contains(text, case=False, regex=False)
                | view["arch_id"].str.contains(text, case=False, regex=False)]
view = view[view["gmacs"].between(*gmacs)]

metrics = analysis.metric_names(df)
main = ["number", "state", "seed", "label", "family", "gmacs", "params", "latency_ms",
        *metrics, "train_val_gap", "plateaued", "chance_acc", "majority_acc", "t_com",
        "t_share_bottom", "arch_id"]
shown = st.multiselect("Columns", list(df.columns), default=[c for c in main if c in df],
                       key="table_columns")
shown_rows = view[shown].head(MAX_ROWS)
st.caption(f"{len(view):,} of {len(df):,} trials"
           + (f" · showing the first {MAX_ROWS:,}; the downloads hold all"
              if len(view) > MAX_ROWS else ""))
st.dataframe(shown_rows, hide_index=True, width="stretch", height=520)


def parquet_bytes() -> bytes:
    """The filtered frame as Parquet (made on click)."""
    buffer = io.BytesIO()
    analysis.to_parquet(view, buffer)
    return buffer.getvalue()


d1, d2 = st.columns(2)
d1.download_button("Download CSV", data=lambda: analysis.to_csv(view) or "",
                   file_name=f"{ctx.study}_trials.csv", mime="text/csv", on_click="ignore",
                   key="download_csv")
d2.download_button("Download Parquet", data=parquet_bytes, file_name=f"{ctx.study}_trials.parquet",
                   mime="application/vnd.apache.parquet", on_click="ignore", key="download_parquet")
