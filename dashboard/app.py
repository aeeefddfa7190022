"""vidarch dashboard: ``streamlit run dashboard/app.py`` (add ``-- --db PATH`` for another file).

The entry page: sets up the sidebar (database, study, metric) and the navigation; each page in
``dashboard/views`` holds UI only and reads through ``dashboard.common``'s bounded caches.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from analysis import NoDataError  # noqa: E402
from dashboard import common  # noqa: E402

st.set_page_config(page_title="vidarch", page_icon=":material/movie:", layout="wide")

PAGES = [
    st.Page("views/budget.py", title="Budget", icon=":material/savings:", default=True),
    st.Page("views/overview.py", title="Overview", icon=":material/flag:"),
    st.Page("views/pareto.py", title="Pareto front", icon=":material/scatter_plot:"),
    st.Page("views/placement.py", title="Placement", icon=":material/grid_on:"),
    st.Page("views/importance.py", title="Importance", icon=":material/insights:"),
    st.Page("views/compare.py", title="Compare networks", icon=":material/compare_arrows:"),
    st.Page("views/curves.py", title="Learning curves", icon=":material/show_chart:"),
    st.Page("views/trial.py", title="Trial detail", icon=":material/search:"),
    st.Page("views/table.py", title="Trial table", icon=":material/table:"),
]

page = st.navigation(PAGES)
st.session_state[common.CTX_KEY] = common.sidebar()
try:
    page.run()
except NoDataError as exc:  # e.g. the file went away while the page ran
    common.show_problem(common.Problem(str(exc), exc.hint))
except Exception as exc:  # a bug: say so in one line, keep the details folded away
    st.error(f"This page failed: {type(exc).__name__}: {exc}")
    with st.expander("Details for a bug report"):
        st.exception(exc)
