"""The dashboard binds 127.0.0.1 wherever it is started, with usage statistics off.

Streamlit reads ``.streamlit/config.toml`` only from the working directory, so both ways the
dashboard is started are run from a directory without one: the "Next:" command the driver
prints, and ``dashboard.launch.start_app``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.launch import ROOT, free_port, start_app, stop_app, wait_ready
from search.results.loopback import dashboard_command
from tests.listening import is_loopback, listening_sockets

WAIT_S = 90  # a cold start imports plotly, scipy and pandas on a busy 2-core machine


def _next_command(db: Path, port: int) -> subprocess.Popen[bytes]:
    """The driver's "Next:" command, as printed in the current directory, run there (on a free
    port)."""
    argv = shlex.split(dashboard_command(f"sqlite:///{db.name}"))
    assert argv[:2] == ["streamlit", "run"] and argv[-2:] == ["--db", str(db)]
    assert "--browser.gatherUsageStats" in argv
    assert argv[argv.index("--browser.gatherUsageStats") + 1] == "false"
    split = argv.index("--")
    cmd = [sys.executable, "-m", *argv[:split], "--server.port", str(port), *argv[split:]]
    return subprocess.Popen(cmd, cwd=Path.cwd(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
@pytest.mark.parametrize("how", ["next command", "launch.start_app"])
def test_the_dashboard_listens_on_loopback_from_any_directory(how, demo_db, tmp_path,
                                                              monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no .streamlit/config.toml here
    db = elsewhere / "studies.db"
    db.write_bytes(demo_db.read_bytes())
    port = free_port()
    if how == "next command":
        proc = _next_command(db, port)
    else:
        proc = start_app(str(db), port, cwd=elsewhere)
    try:
        wait_ready(port, proc, timeout_s=WAIT_S)
        sockets = listening_sockets(proc.pid)
        assert any(p == port for _, _, p in sockets), sockets
        exposed = [s for s in sockets if not is_loopback(s[1])]
        assert not exposed, f"the dashboard listens beyond loopback: {exposed}"
        assert not (elsewhere / ".streamlit").exists()
    finally:
        stop_app(proc)
