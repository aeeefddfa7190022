"""What vidarch starts on this machine listens on loopback only.

A local Ray (``search.cluster.start_ray``) and the dashboard (the driver's "Next:" command,
``dashboard.launch``) bind 127.0.0.1: nobody else on the network can submit tasks to the Ray
of a running study or read its results. Exposing either is the user's explicit choice: join a
cluster with ``hardware.address``, or pass ``--server.address`` to Streamlit. Torch- and Ray-free.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from search.results.urls import for_command

LOOPBACK = "127.0.0.1"
# Streamlit reads .streamlit/config.toml only from the working directory, so the options that
# matter are passed on the command line wherever the dashboard is started.
STREAMLIT_OPTIONS: tuple[str, ...] = ("--server.address", LOOPBACK, "--server.headless", "true",
                                      "--browser.gatherUsageStats", "false")
# Ray on Linux turns a node address of 127.0.0.1 into the machine's public one (and its gRPC
# servers then listen on every interface) unless it runs as a single-machine "no cluster" Ray:
# the mode Ray uses on macOS and Windows, switched by this variable (see search.cluster.start_ray).
RAY_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def dashboard_command(storage: str) -> str:
    """The command that opens the dashboard on ``storage``: runnable from the current directory,
    quoted for the shell, serving on 127.0.0.1 only, and never showing a database password."""
    root = Path(__file__).resolve().parents[2]  # the checkout
    here = Path.cwd().resolve()
    app = "dashboard/app.py" if here == root else str(root / "dashboard" / "app.py")
    db, hidden = for_command(storage, base=None if here == root else here)
    command = shlex.join(["streamlit", "run", app, *STREAMLIT_OPTIONS, "--", "--db", db])
    if hidden:
        command += "  # password not shown: export PGPASSWORD (or use ~/.pgpass) first"
    return command
