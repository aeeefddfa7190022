"""Save PNG screenshots of the dashboard's main pages (for the README) with headless Chromium.

Usage (from the repository root)::

    python scripts/screenshots.py                 # synthetic demo database, PNGs in docs/img/
    python scripts/screenshots.py --db studies.db --pages budget

Without ``--db`` it writes a synthetic demo database (``analysis.synthetic``) into a temporary
directory, starts ``streamlit run dashboard/app.py`` on a free localhost port, opens each page,
waits for its plots and saves ``docs/img/<page>.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.launch import free_port, make_driver, start_app, stop_app, wait_ready  # noqa: E402

# (file name, url path, plots to wait for, window height)
PAGES: tuple[tuple[str, str, int, int], ...] = (
    ("budget", "", 1, 1800),
    ("overview", "overview", 1, 1750),
    ("pareto", "pareto", 1, 1150),
    ("placement", "placement", 2, 1700),
    ("importance", "importance", 2, 1700),
    ("compare", "compare", 1, 1900),
    ("curves", "curves", 2, 1500),
    ("trial", "trial", 2, 1500),
    ("table", "table", 0, 1000),
)


def wait_for_page(driver, plots: int, timeout_s: float = 60) -> None:
    """Until the app stops running and ``plots`` plotly charts have drawn."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        drawn = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
        titles = driver.find_elements(By.CSS_SELECTOR, "h1")
        if titles and not running and len(drawn) >= plots:
            time.sleep(1.5)  # let plotly finish its transitions
            return
        time.sleep(0.3)
    raise TimeoutError("page did not finish rendering")


def shrink(path: Path) -> None:
    """Quantise the PNG to 256 colours (screenshots stay small enough to commit)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    """Start the app, visit the pages, save PNGs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database path or URL (default: a synthetic demo)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="output folder")
    parser.add_argument("--width", type=int, default=1400, help="window width in pixels")
    parser.add_argument("--pages", nargs="+", choices=[p[0] for p in PAGES],
                        help="only these pages (default: all)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidarch-shots-") as tmp:
        db = args.db
        if db is None:
            from analysis.synthetic import make_demo_db

            db = str(Path(tmp) / "demo.db")
            make_demo_db(f"sqlite:///{db}").dispose()
        port = free_port()
        proc = start_app(db, port, log=Path(tmp) / "streamlit.log")
        driver = None
        try:
            wait_ready(port, proc)
            driver = make_driver(str(Path(tmp) / "chromium"), width=args.width)
            for name, path, plots, height in PAGES:
                if args.pages and name not in args.pages:
                    continue
                driver.set_window_size(args.width, height)
                driver.get(f"http://127.0.0.1:{port}/{path}")
                wait_for_page(driver, plots)
                target = out / f"{name}.png"
                driver.save_screenshot(str(target))
                shrink(target)
                print(f"saved {target} ({target.stat().st_size // 1024} KiB)")
        finally:
            if driver is not None:
                driver.quit()
            stop_app(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
