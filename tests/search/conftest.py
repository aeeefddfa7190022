"""Fixtures for the search tests: running ``python -m search.run`` in a scratch directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAULTS_ENV = "VIDARCH_TEST_FAULTS"  # search.faults.ENV (read by the driver)


class StudyRunner:
    """Runs ``python -m search.run`` as a subprocess in ``cwd`` with a private Ray storage.

    Each run gets its own session (process group), so that the processes Ray leaves behind when
    a test SIGKILLs the driver can be ended precisely, by group, at teardown.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.checkpoints = Path(tempfile.mkdtemp(prefix="vidarch-ray-"))
        self.groups: list[int] = []

    @property
    def db(self) -> Path:
        return self.cwd / "studies.db"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        env["RAY_AUTH_MODE"] = "disabled"
        return env

    def args(self, *overrides: str) -> list[str]:
        study = [] if any(o.startswith("study=") for o in overrides) else ["study=smoke"]
        return [sys.executable, "-m", "search.run", *study,
                f"hardware.checkpoint_dir={self.checkpoints}", "hardware.num_cpus=2",
                "progress_interval_s=1", *overrides]

    def run(self, *overrides: str, timeout: float = 240,
            faults: str = "") -> subprocess.CompletedProcess:
        proc = self.start(*overrides, faults=faults)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def start(self, *overrides: str, env: dict[str, str] | None = None,
              faults: str = "") -> subprocess.Popen:
        """Start the driver; Ctrl-C reaches it as in a terminal (a test runner in the
        background may have inherited SIGINT ignored). ``faults``: the test-only hooks of
        ``search.faults`` (``"epoch_sleep_s=2"``), set in the driver's environment."""
        env = dict(env or self.env())
        env.pop(FAULTS_ENV, None)
        if faults:
            env[FAULTS_ENV] = faults
        proc = subprocess.Popen(self.args(*overrides), cwd=self.cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.groups.append(proc.pid)
        return proc

    def cleanup(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(self.checkpoints, ignore_errors=True)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[StudyRunner]:
    """A StudyRunner in an empty scratch directory."""
    work = tmp_path / "work"
    work.mkdir()
    r = StudyRunner(work)
    yield r
    r.cleanup()
