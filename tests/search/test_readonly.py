"""Read-only and full storage: readers read, writers say so in one line, nothing is made.

A read-only file or directory is made with ``chmod`` (as a normal user) or, as root (whom
permissions do not stop), with a read-only bind mount. A full disk is a small tmpfs filled to
the last byte (root only). Where neither can be made the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.results.schema import TrialState
from search.results.store import (
    finish_trial,
    get_or_create_study,
    open_engine,
    session_scope,
    start_trial,
    upsert_arch,
)
from search.run import main


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or a directory) read-only for this process, restored afterwards."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["mount", "--bind", str(path), str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("running as root without the right to mount: cannot make a read-only path")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(path)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only")
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 1 MiB tmpfs (needs root and the right to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root and mount")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(disk: Path) -> None:
    """Write a filler file until the disk has no byte left."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)


def make_study(path: Path, *, wal_only: bool = False) -> None:
    """A small vidarch database with one COMPLETE trial of study ``demo``."""
    engine = open_engine(f"sqlite:///{path}", create=True)
    with session_scope(engine) as s:
        study = get_or_create_study(s, "demo", kind="grid", config={"seeds": [0, 1]})
        upsert_arch(s, "a" * 16, "{}", macs=1000, params=10)
        trial = start_trial(s, study.id, arch_id="a" * 16, seed=0, label="mc3")
        finish_trial(s, trial.id, TrialState.COMPLETE, results={"val/acc1": 0.5})
    engine.dispose()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: storage: "), err
    return lines[0]


# --- readers ----------------------------------------------------------------------------------


def test_load_trials_reads_a_wal_database_in_a_read_only_directory(tmp_path: Path) -> None:
    from analysis import list_studies, load_trials

    folder = tmp_path / "results"
    folder.mkdir()
    make_study(folder / "studies.db")
    assert sorted(p.name for p in folder.iterdir()) == ["studies.db"]  # WAL, checkpointed
    with read_only(folder):
        df = load_trials(folder / "studies.db", "demo")
        assert list(df["state"]) == ["COMPLETE"] and list(df["val/acc1"]) == [0.5]
        assert list(list_studies(folder / "studies.db")["name"]) == ["demo"]
        assert sorted(p.name for p in folder.iterdir()) == ["studies.db"]  # nothing made


def test_rows_only_in_the_wal_file_are_read_in_a_read_only_directory(tmp_path: Path) -> None:
    """A copy taken while a writer had the database open: the latest trial is in -wal only."""
    from analysis import load_trials

    live, folder = tmp_path / "live.db", tmp_path / "copy"
    folder.mkdir()
    make_study(live)
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE results SET value = 0.75")
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(f"{live}{suffix}", folder / f"studies.db{suffix}")
    writer.close()
    assert (folder / "studies.db-wal").stat().st_size > 0
    with read_only(folder):
        assert list(load_trials(folder / "studies.db", "demo")["val/acc1"]) == [0.75]


# --- writers ----------------------------------------------------------------------------------


def test_a_new_database_in_a_read_only_directory_is_one_line_and_nothing(tmp_path: Path,
                                                                         capsys) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        assert main(["study=smoke", f"storage=sqlite:///{folder / 'studies.db'}"]) == 2
    assert "cannot write" in one_error_line(capsys)
    assert list(folder.iterdir()) == []


def test_a_new_study_into_a_read_only_database_file_is_one_line(tmp_path: Path, capsys) -> None:
    db = tmp_path / "studies.db"
    make_study(db)
    before = digest(db)
    with read_only(db):
        assert main(["study=smoke", f"storage=sqlite:///{db}"]) == 2
    assert "read-only" in one_error_line(capsys)
    assert digest(db) == before and sorted(p.name for p in tmp_path.iterdir()) == ["studies.db"]


def test_a_new_database_on_a_full_disk_is_one_line_and_leaves_no_file(small_disk: Path,
                                                                      capsys) -> None:
    fill(small_disk)
    db = small_disk / "studies.db"
    assert main(["study=smoke", f"storage=sqlite:///{db}"]) == 2
    assert "full" in one_error_line(capsys)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no 0-byte file


def test_a_new_study_into_a_database_on_a_full_disk_is_one_line(small_disk: Path,
                                                                capsys) -> None:
    db = small_disk / "studies.db"
    make_study(db)
    before = digest(db)
    fill(small_disk)
    assert main(["study=smoke", f"storage=sqlite:///{db}"]) == 2
    line = one_error_line(capsys)
    assert "cannot write" in line and ("full" in line or "no space" in line), line
    assert digest(db) == before
    (small_disk / "filler").unlink()  # room again: the database is intact and still usable
    from analysis import load_trials

    assert list(load_trials(db, "demo")["state"]) == ["COMPLETE"]


def test_a_disk_that_fills_up_mid_study_stops_the_writer_at_once(small_disk: Path) -> None:
    """Mid-study, a full disk is not retried: the driver's guard keeps the one-line error, and
    every later write fails at once with it (the run then ends with exit 1, see search.run)."""
    from search.results.dberrors import StorageRefused
    from search.results.guard import StudyGuard

    db = small_disk / "studies.db"
    make_study(db)
    guard = StudyGuard.open(f"sqlite:///{db}", "demo")
    fill(small_disk)
    t0 = time.monotonic()
    with pytest.raises(StorageRefused, match=r"cannot write .*(full|I/O)") as err:
        guard.transaction(lambda s: get_or_create_study(s, "more", kind="grid", config={}))
    assert time.monotonic() - t0 < 10 and "\n" not in str(err.value)
    assert guard.fatal is err.value
    with pytest.raises(StorageRefused):  # later writes: the same error, without waiting
        guard.call(lambda: None)
    guard.close()
    (small_disk / "filler").unlink()
    from analysis import load_trials

    assert list(load_trials(db, "demo")["state"]) == ["COMPLETE"]  # nothing lost
