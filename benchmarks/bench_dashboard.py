"""How fast the analysis layer and the dashboard are on big studies (10k to 1M trials).

Writes synthetic random-placement studies (5 seeds per network, final metrics for every trial,
placement facts stored: ``analysis.synthetic_bulk``), then measures, per size:

- write: the bulk write of the study;
- load: the SQL aggregates every summary page reads (``analysis.aggregates.study_facts`` and
  ``arch_table``: GROUP BY per network), in a fresh process's state (no cache);
- every page's first render in ``streamlit.testing.v1.AppTest``: ``cold`` with every Streamlit
  cache emptied first (a user who opens that page first on a server just started), and
  ``warm`` right after the budget page has been shown (the shared aggregates are cached, the
  page's own work is not); imports are warmed first on a tiny database, as in a server that
  is already up;
- browser (``--browser``): ``streamlit run`` + headless Chromium until the Pareto plot has drawn,
  on a fresh server and on one already up.

Usage::

    python benchmarks/bench_dashboard.py --sizes 10000 100000 1000000
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

from analysis import aggregates  # noqa: E402
from analysis.placement import arch_features  # noqa: E402
from analysis.synthetic import bulk_write_random, make_demo_db  # noqa: E402
from search.results.store import open_engine  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
PAGES = ("budget", "overview", "pareto", "placement", "importance", "compare", "curves", "trial",
         "table")


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


def _clear() -> None:
    arch_features.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


def bench(n_trials: int, workdir: Path, warm_db: Path, *, browser: bool,
          repeats: int) -> dict[str, float]:
    """Write one study of ``n_trials`` and time loading and rendering it."""
    db = workdir / f"bench_{n_trials}.db"
    engine = open_engine(f"sqlite:///{db}", create=True)
    start = time.perf_counter()
    bulk_write_random(engine, "bench", n_trials, seeds=5)
    write_s = time.perf_counter() - start
    engine.dispose()
    print(f"{n_trials}: written in {write_s:.1f} s", file=sys.stderr)

    loads = []
    for _ in range(repeats):
        start = time.perf_counter()
        facts = aggregates.study_facts(db, "bench")
        table = aggregates.arch_table(db, "bench", "val/acc1")
        loads.append(time.perf_counter() - start)
    assert facts.n_trials == n_trials, facts.n_trials
    row: dict[str, float] = {"trials": n_trials, "archs": len(table.archs), "write_s": write_s,
                             "load_s": statistics.median(loads)}
    print(f"{n_trials}: loaded in {row['load_s']:.2f} s", file=sys.stderr)
    for page in PAGES:
        times = []
        for _ in range(repeats):
            _clear()
            times.append(_app_run(db, f"views/{page}.py")[1])
        row[f"{page}_cold_s"] = statistics.median(times)
        print(f"{n_trials}: {page} cold {row[f'{page}_cold_s']:.2f} s", file=sys.stderr)
    _clear()
    at, _ = _app_run(db, "views/budget.py")
    for page in PAGES:
        row[f"{page}_warm_s"] = _app_run(db, f"views/{page}.py", at)[1]
    if browser:
        arch_features.cache_clear()
        row["browser_cold_server_s"], row["browser_warm_server_s"] = _browser_seconds(
            db, warm_db, n_trials)
    db.unlink()
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1,
                        help="cold runs per measurement (the median is shown)")
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidarch-bench-") as tmp:
        workdir = Path(tmp)
        warm = workdir / "warm.db"
        make_demo_db(f"sqlite:///{warm}", n_random=4).dispose()
        _app_run(warm)  # import streamlit, plotly, scipy once, as a running server has
        for n in args.sizes:
            rows.append(bench(n, workdir, warm, browser=args.browser, repeats=args.repeats))
            print(f"done {n}", file=sys.stderr)
    # one row per measurement, one column per size: the table fits a README
    sizes = [f"{r['trials']:,}" for r in rows]
    print("| seconds | " + " | ".join(sizes) + " |")
    print("|---|" + "---:|" * len(rows))
    for key in rows[0]:
        if key == "trials":
            continue
        cells = [f"{r[key]:,}" if isinstance(r[key], int) else f"{r[key]:.2f}" for r in rows]
        print(f"| {key.removesuffix('_s').replace('_', ' ')} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
