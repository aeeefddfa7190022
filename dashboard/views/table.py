"""Trial table: filter the trials, page through them, download them as CSV or Parquet."""

from __future__ import annotations

import io

import streamlit as st

import analysis
from analysis.aggregates import TrialFilter, trial_rows
from dashboard import common

PAGE_ROWS = 200  # trials per page: only the shown page is read from the database

ctx = common.context(need_complete=False)
known = common.facts(ctx.db, ctx.study)
archs = common.table(ctx.db, ctx.study, ctx.metric).archs

st.title("Trials")
c1, c2, c3 = st.columns(3)
states = c1.multiselect("State", [s for s, n in known.counts.items() if n], key="table_states")
families = c2.multiselect("Family", sorted(archs["family"].dropna().unique())
                          if "family" in archs else [], key="table_families")
text = c3.text_input("Label or arch_id contains", key="table_text")
lo = float(archs["gmacs"].min()) if len(archs) else 0.0
hi = float(archs["gmacs"].max()) if len(archs) else 0.0
gmacs = st.slider("GMACs (of completed networks)", lo, max(hi, lo + 1e-6),
                  (lo, max(hi, lo + 1e-6)), key="table_gmacs") if len(archs) else None
narrowed = gmacs is not None and (gmacs[0] > lo or gmacs[1] < hi)
where = TrialFilter(states=tuple(states), families=tuple(families), text=text.strip(),
                    gmacs=gmacs if narrowed else None)

names = [n for n in known.metrics["name"] if "/" in n]
page_no = int(st.session_state.get("table_page", 1))
rows, total = common.trial_page(ctx.db, ctx.study, tuple(names), where,
                                (page_no - 1) * PAGE_ROWS, PAGE_ROWS)
pages = max(1, -(-total // PAGE_ROWS))
if page_no > pages:  # the filter shrank the table: back to its last page
    st.session_state["table_page"] = page_no = pages
    rows, total = common.trial_page(ctx.db, ctx.study, tuple(names), where,
                                    (page_no - 1) * PAGE_ROWS, PAGE_ROWS)
main = ["number", "state", "seed", "label", "family", "gmacs", "params", "latency_ms",
        *names, "train_val_gap", "plateaued", "chance_acc", "majority_acc", "t_com",
        "t_share_bottom", "arch_id"]
shown = st.multiselect("Columns", list(rows.columns), default=[c for c in main if c in rows],
                       key="table_columns")
left, right = st.columns([1, 3])
left.number_input("Page", min_value=1, max_value=pages, step=1, key="table_page")
first = (page_no - 1) * PAGE_ROWS
right.caption(f"{total:,} of {known.n_trials:,} trials · rows {first + 1:,}–"
              f"{first + len(rows):,} of page {page_no:,} / {pages:,}"
              if total else f"none of {known.n_trials:,} trials passes the filter")
st.dataframe(rows[[c for c in shown if c in rows]], hide_index=True, width="stretch",
             height=520, key="table_rows")


def _every_row():
    """Every filtered trial, read when a download is asked for."""
    return trial_rows(common.engine(ctx.db), ctx.study, names, where=where)


def parquet_bytes() -> bytes:
    """The filtered trials as Parquet (made on click)."""
    buffer = io.BytesIO()
    analysis.to_parquet(_every_row(), buffer)
    return buffer.getvalue()


d1, d2 = st.columns(2)
d1.download_button("Download CSV", data=lambda: analysis.to_csv(_every_row()) or "",
                   file_name=f"{ctx.study}_trials.csv", mime="text/csv", on_click="ignore",
                   key="download_csv")
d2.download_button("Download Parquet", data=parquet_bytes, file_name=f"{ctx.study}_trials.parquet",
                   mime="application/vnd.apache.parquet", on_click="ignore", key="download_parquet")
