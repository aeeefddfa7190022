"""Session fixtures shared by every test package: a throwaway PostgreSQL server.

``postgres_server`` starts a private ``postgres`` (initdb into a temporary directory, listening
on 127.0.0.1 only, on a free port, ``fsync=off``) once per test session and stops it at the end.
Without the server binaries (Debian: ``apt-get install postgresql``) or psycopg2 the tests that
use it skip; with ``VIDARCH_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) they fail instead.

As root, initdb and postgres refuse to run, so they run as the ``postgres`` system user that the
Debian package creates (``subprocess.Popen(user=...)``); as any other user they run as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_POSTGRES = "VIDARCH_REQUIRE_POSTGRES"
PG_START_TIMEOUT_S = 30
INSTALL_HINT = "apt-get install postgresql; .ci/run installs it"


def _unavailable(reason: str) -> None:
    """Skip, or fail when the environment says PostgreSQL must be tested."""
    if os.environ.get(REQUIRE_POSTGRES) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _bindir() -> Path | None:
    """The directory holding initdb and postgres: $PG_BINDIR, PATH, or Debian's layout."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += [str(Path(p).parent) for p in
                   sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version,
                          reverse=True)]
    for cand in candidates:
        if cand and (Path(cand) / "initdb").is_file() and (Path(cand) / "postgres").is_file():
            return Path(cand)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A private PostgreSQL server in ``root`` (owned by ``user``); superuser ``postgres``."""

    superuser = "postgres"

    def __init__(self, bindir: Path, root: Path, user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.user = user  # run the binaries as this system user (None: as ourselves)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        pw = pwd.getpwnam(self.user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
                        "LC_ALL": "C.UTF-8", "USER": self.user}}

    def initdb(self) -> None:
        out = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.superuser,
             "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            capture_output=True, text=True, cwd=self.root, timeout=120, **self._as_user())
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed ({out.returncode}): {out.stderr.strip()[-2000:]}")

    def start(self, port: int | None = None) -> None:
        """Start ``postgres`` in the foreground (our child, by pid) on a free port (or on
        ``port``, e.g. to restart it where its clients expect it); retry on a lost port race."""
        last = ""
        for _ in range(3):
            self.port = port or _free_port()
            log = self.log.open("ab")
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=50"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True,
                **self._as_user())
            log.close()
            if self._wait_ready():
                return
            last = self.log.read_text(errors="replace")[-2000:]
            self.stop()
        raise RuntimeError(f"postgres did not start: {last}")

    def _wait_ready(self) -> bool:
        import psycopg2

        assert self.proc is not None
        deadline = time.monotonic() + PG_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg2.connect(self.dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg2.OperationalError:
                time.sleep(0.1)
        return False

    def dsn(self, database: str) -> str:
        return (f"host=127.0.0.1 port={self.port} user={self.superuser} dbname={database}")

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg2://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name when None); returns its SQLAlchemy URL."""
        import psycopg2

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(self.dsn("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL of the same pid if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server (skip, or fail when required, if it cannot run)."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable("psycopg2 is not installed (pip install -e '.[postgres]')")
    bindir = _bindir()
    if bindir is None:
        _unavailable(f"the PostgreSQL server binaries (initdb, postgres) are not installed "
                     f"({INSTALL_HINT})")
    assert bindir is not None
    user = None
    if os.geteuid() == 0:  # initdb and postgres refuse root
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            _unavailable("running as root and there is no 'postgres' system user to run "
                         f"the server as ({INSTALL_HINT})")
    root = Path(tempfile.mkdtemp(prefix="vidarch-pg-"))
    server = PostgresServer(bindir, root, user)
    try:
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        try:
            server.initdb()
            server.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"cannot start a PostgreSQL server from {bindir}: {exc}", pytrace=False)
        yield server
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(root)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL server, for the whole session."""
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg2://postgres@127.0.0.1:PORT/vidarch``: one empty database, shared by
    the session (tests that need an empty database of their own use ``postgres_db``)."""
    return postgres_server.create_database("vidarch")


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.create_database()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test (the test machines' cores are shared); restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
