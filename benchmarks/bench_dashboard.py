"""How fast the analysis layer and the dashboard are on big studies.

Writes synthetic random-placement studies of 10k and 100k trials (5 seeds per arch, final
metrics for every trial) through the store's tables with ORM bulk inserts, then measures:

- load: ``analysis.load_trials`` into a DataFrame, with the per-arch spec cache cold (a fresh
  dashboard process; median of 3) and warm;
- first render (median of 3): the dashboard's main page (overview: counts, effect table with
  Student-t CIs, best per family, forest plot) in ``streamlit.testing.v1.AppTest`` with empty
  data caches; imports are warmed first on a tiny database, as in a server that is already up;
- pages: the Pareto and placement pages right after (frames cached, figures rebuilt);
- browser (``--browser``): ``streamlit run`` + headless Chromium until the Pareto plot has drawn,
  on a fresh server (its first session imports streamlit, plotly, scipy) and on one already up.

Usage::

    python benchmarks/bench_dashboard.py                 # 10k and 100k
    python benchmarks/bench_dashboard.py --sizes 10000 --browser
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import analysis  # noqa: E402
from analysis.placement import arch_features  # noqa: E402
from analysis.synthetic import bulk_write_random, make_demo_db  # noqa: E402
from search.results.store import open_engine  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
REPEATS = 3  # load and first render are medians of this many cold runs (the machine is shared)


def _app_run(db: Path, page: str | None = None,
             at: AppTest | None = None) -> tuple[AppTest, float]:
    os.environ["VIDARCH_DB"] = str(db)
    if at is None:
        at = AppTest.from_file(str(APP), default_timeout=600)
    if page is not None:
        at.switch_page(page)
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    if at.exception or at.error:
        raise RuntimeError(f"page failed: {[e.value for e in (*at.exception, *at.error)]}")
    return at, elapsed


def _browser_seconds(db: Path, warm_db: Path, n_trials: int) -> tuple[float, float]:
    """Seconds until Chromium shows the Pareto plot of ``db``: on a fresh server (its first
    session imports everything), and on a server already up (after a visit to ``warm_db``,
    switching the sidebar's database field to ``db``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from dashboard.launch import free_port, make_driver, start_app, stop_app, wait_ready

    plotted = (By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")

    def idle(d) -> bool:
        return not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')

    times = []
    for first_db in (db, warm_db):
        port = free_port()
        proc = start_app(str(first_db), port)
        with tempfile.TemporaryDirectory() as profile:
            driver = None
            try:
                wait_ready(port, proc)
                driver = make_driver(profile)
                wait = WebDriverWait(driver, 600, poll_frequency=0.05)
                start = time.perf_counter()
                driver.get(f"http://127.0.0.1:{port}/pareto")
                wait.until(lambda d: d.find_elements(*plotted) and idle(d))
                if first_db == warm_db:
                    field = driver.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"] input')
                    field.send_keys(Keys.CONTROL, "a")
                    start = time.perf_counter()
                    field.send_keys(str(db), Keys.ENTER)
                    wait.until(lambda d: f"{n_trials:,} trials" in d.find_element(
                        By.CSS_SELECTOR, '[data-testid="stSidebar"]').text)
                    wait.until(lambda d: d.find_elements(*plotted) and idle(d))
                times.append(time.perf_counter() - start)
            finally:
                if driver is not None:
                    driver.quit()
                stop_app(proc)
    return times[0], times[1]


def bench(n_trials: int, workdir: Path, warm_db: Path, *, browser: bool) -> dict[str, float]:
    """Write one study of ``n_trials`` and time loading and rendering it."""
    db = workdir / f"bench_{n_trials}.db"
    engine = open_engine(f"sqlite:///{db}", create=True)
    start = time.perf_counter()
    bulk_write_random(engine, "bench", n_trials, seeds=5)
    write_s = time.perf_counter() - start
    engine.dispose()
    print(f"{n_trials}: written in {write_s:.1f} s", file=sys.stderr)

    cold, renders = [], []
    for _ in range(REPEATS):
        arch_features.cache_clear()
        start = time.perf_counter()
        df = analysis.load_trials(db, "bench")
        cold.append(time.perf_counter() - start)
    start = time.perf_counter()
    analysis.load_trials(db, "bench")
    load_warm = time.perf_counter() - start
    assert len(df) == n_trials, len(df)
    load_cold = statistics.median(cold)
    print(f"{n_trials}: loaded in {load_cold:.2f} s", file=sys.stderr)
    for _ in range(REPEATS):
        arch_features.cache_clear()
        st.cache_data.clear()
        st.cache_resource.clear()
        at, render = _app_run(db)
        renders.append(render)
    render = statistics.median(renders)
    _, pareto = _app_run(db, "views/pareto.py", at)
    _, placement = _app_run(db, "views/placement.py", at)
    row = {"trials": n_trials, "archs": df["arch_id"].nunique(), "write_s": write_s,
           "load_cold_s": load_cold, "load_warm_s": load_warm, "first_render_s": render,
           "pareto_page_s": pareto, "placement_page_s": placement}
    if browser:
        arch_features.cache_clear()
        row["browser_cold_server_s"], row["browser_warm_server_s"] = _browser_seconds(
            db, warm_db, n_trials)
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidarch-bench-") as tmp:
        workdir = Path(tmp)
        warm = workdir / "warm.db"
        make_demo_db(f"sqlite:///{warm}", n_random=4).dispose()
        _app_run(warm)  # import streamlit, plotly, scipy once, as a running server has
        for n in args.sizes:
            rows.append(bench(n, workdir, warm, browser=args.browser))
            print(f"done {n}", file=sys.stderr)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], int) else f"{row[c]:.2f}"
                                for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
