"""Starting ``streamlit run dashboard/app.py`` as a subprocess (browser tests, screenshots).

Only for tools: the dashboard itself is started by the user with ``streamlit run``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from search.results.loopback import STREAMLIT_OPTIONS

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
CHROMEDRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(db: str, port: int, *, log: Path | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """``streamlit run dashboard/app.py -- --db DB`` on 127.0.0.1:``port``, usage statistics off.

    The server options are passed on the command line (``search.results.loopback.STREAMLIT_OPTIONS``),
    so the app binds loopback from any working directory ``cwd`` (default: the repo root).
    """
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), *STREAMLIT_OPTIONS,
           "--server.port", str(port), "--server.fileWatcherType", "none", "--", "--db", db]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
    return subprocess.Popen(cmd, cwd=cwd or ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Wait for Streamlit's health endpoint; ``RuntimeError`` if it dies or times out."""
    url = f"http://127.0.0.1:{port}/_stcore/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on port {port} within {timeout_s:.0f} s")


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the app started by ``start_app`` (this process only)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_chromium() -> tuple[str, str] | None:
    """(chromium binary, chromedriver) when both are installed, else None."""
    browser = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in CHROMEDRIVER_PATHS if Path(p).is_file()), None)
    return (browser, driver) if browser and driver else None


def make_driver(user_data_dir: str, *, width: int = 1400, height: int = 1000) -> WebDriver:
    """Headless Chromium under selenium (fresh profile in ``user_data_dir``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed "
                           "(apt-get install chromium chromium-driver)")
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={user_data_dir}",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)
