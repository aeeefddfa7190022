"""Ray for a study: a private one started in-process on this machine, or a cluster joined.

A local Ray listens on 127.0.0.1 only (``search.results.loopback``); joining a cluster is explicit
(``hardware.address``). Authentication is left as Ray configures it (``RAY_AUTH_MODE``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.design.config import RunConfig
from search.results.loopback import LOOPBACK, RAY_SINGLE_MACHINE_ENV

# What a cluster's workers do not need of the checkout (runtime_env working_dir).
CODE_EXCLUDES = [".venv/", ".git/", "*.db", "*.db-*", "docs/", "tests/", "benchmarks/",
                 "**/__pycache__/", "*.pt", "*.pth", "*.mp4", "*.avi"]


def start_ray(cfg: RunConfig) -> None:
    """Start a local Ray in-process (quiet, no dashboard, loopback only) or join the cluster.

    Authentication is left as Ray configures it (``RAY_AUTH_MODE``); a local Ray listens on
    127.0.0.1 only, so no other machine can reach its GCS, raylet or workers.
    """
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "0")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    import ray

    hw = cfg.hardware
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                              "log_to_driver": False, "ignore_reinit_error": True}
    if hw.address:
        root = Path(__file__).resolve().parents[1]
        if hw.ship_code and (root / "pyproject.toml").is_file():  # a checkout, not site-packages
            kwargs["runtime_env"] = {"working_dir": str(root), "excludes": CODE_EXCLUDES}
        ray.init(address=hw.address, **kwargs)
    else:
        # address="local": always start a private Ray here, never attach to a cluster that a
        # stale /tmp/ray/ray_current_cluster (from an earlier `ray start`) points at.
        with _single_machine():
            ray.init(address="local", num_cpus=hw.num_cpus, num_gpus=hw.num_gpus,
                     _node_ip_address=LOOPBACK, **kwargs)
    for name in ("ray", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Tune logs failed trials as errors; the display and the summary report them instead.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    """Ray's single-machine mode while a local Ray starts: its node address stays 127.0.0.1,
    so the GCS, raylet, agents and workers listen on loopback only.

    The processes Ray starts inherit the variable; this process read it when ray was imported,
    so the flag it set is switched too. Both are restored afterwards (a later ``ray.init`` in
    this process may join a cluster).
    """
    from ray._private import ray_constants

    saved_env = os.environ.get(RAY_SINGLE_MACHINE_ENV)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[RAY_SINGLE_MACHINE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(RAY_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[RAY_SINGLE_MACHINE_ENV] = saved_env
