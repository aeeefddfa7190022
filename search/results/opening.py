"""Opening the results database: creation, migrations, timeouts, read-only readers.

Imports neither torch nor ray. ``search.results.store`` re-exports ``open_engine`` and
``head_revision``; the writer functions live there.

- A new SQLite file is created whole or not at all (built beside it, then hard-linked into
  place), so two drivers opening the same new database cannot race, and a read-only directory
  or a full disk leaves no file behind.
- Schema upgrades run under a lock (SQLite's write lock, a PostgreSQL advisory lock) and read
  the revision again once they hold it.
- Every wait is bounded (``search.results.retry.db_timeout_s``): SQLite's busy timeout, PostgreSQL's
  connect and (writer) statement timeouts.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from search.results.dberrors import STORAGE, StorageRefused, StoreError, classify, short
from search.results.retry import db_timeout_s

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "vidarch_schema_version"  # must match migrations/env.py
MIGRATION_LOCK_KEY = 0x76696461726368  # pg_advisory_xact_lock key ("vidarch"): one upgrader at a time

__all__ = ["head_revision", "open_engine"]


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The schema revision this code writes (Alembic head)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Per connection: wait for locks (a bounded time: VIDARCH_DB_TIMEOUT_S), enforce FKs
    # (ON DELETE CASCADE). journal_mode=WAL is persistent in the file and set once, when the
    # file is created (see _create_sqlite). isolation_level=None stops pysqlite from managing
    # transactions itself (it would not put DDL in one); the begin listeners then start every
    # transaction, so migrations are atomic too.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={int(db_timeout_s() * 1000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe in WAL: a killed process loses nothing
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _sqlite_begin_immediate(conn: Any) -> None:
    # The writer takes the write lock when a transaction starts, waiting up to the busy timeout.
    # A deferred transaction that read first would instead fail at once with "database is
    # locked" when another connection (the lease heartbeat, a second driver) committed in
    # between: WAL cannot upgrade a stale read snapshot, and SQLite does not wait for that.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _describe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _pg_timeouts(parsed: URL, *, statement: bool) -> dict[str, Any]:
    """libpq connect / statement timeouts, unless the URL sets its own."""
    if parsed.get_driver_name() not in ("psycopg2", "psycopg"):
        return {}
    timeout = db_timeout_s()
    args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        args["connect_timeout"] = max(1, round(timeout))
    if statement and "options" not in parsed.query:
        args["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    return args


def _make_engine(parsed: URL, *, writer: bool, creator: Any = None) -> Engine:
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "postgresql":
        kwargs["connect_args"] = _pg_timeouts(parsed, statement=writer)
    if creator is not None:
        kwargs["creator"] = creator
    engine = create_engine(parsed, pool_pre_ping=backend != "sqlite", **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate if writer else _sqlite_begin)
    return engine


def _open_error(exc: BaseException, shown: str, *, create: bool,
                path: Path | None = None) -> StoreError:
    reason = short(exc)
    if path is not None and _disk_full(path) and "full" not in reason:
        reason += " (no space left on the device)"
    if create and classify(exc) == STORAGE:
        return StorageRefused(f"storage: cannot write {shown}: {reason}")
    return StoreError(f"storage: cannot open {shown}: {reason}")


def _disk_full(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def open_engine(url: str, *, create: bool = False) -> Engine:
    """Open the results database at a SQLAlchemy URL.

    Args:
        url: e.g. ``sqlite:///studies.db`` or ``postgresql+psycopg2://user@host/db``.
        create: the writer's mode: create the database if missing and upgrade its schema to
            this version (Alembic). Without it (readers) nothing is ever written.

    Returns:
        An Engine; on SQLite every connection has a busy timeout, and the file is in WAL mode,
        so readers never fail with "database is locked" while the study writes. A reader of a
        file it cannot write (a read-only directory or mount) opens it read-only. The writer's
        transactions take SQLite's write lock when they begin; on PostgreSQL every connection
        has a connect timeout, and the writer's a statement timeout (``search.results.retry``).

    Raises:
        StorageRefused: (writer) the file, directory or disk refuses writes; nothing was made.
        StoreError: one line, when the URL is malformed or unreachable, the file is missing
            (readers), the database is not a vidarch database, or its schema is newer than this
            code (or older, for readers).
    """
    shown = _describe(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"storage: not a SQLAlchemy URL: {url!r}") from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    memory = is_sqlite and parsed.database in (None, "", ":memory:")
    path = Path(str(parsed.database))
    if is_sqlite and not memory:
        if not create and not path.is_file():
            raise StoreError(f"storage: no database at {path} (run a study first)")
        if create and not path.parent.is_dir():
            raise StoreError(f"storage: directory {path.parent} does not exist")
        if create and path.exists() and not os.access(path, os.W_OK):  # checked before SQLite
            raise StorageRefused(f"storage: cannot write {shown}: the file is read-only")  # adds -wal/-shm
    try:
        if is_sqlite and not memory and create and not path.exists():
            _create_sqlite(path, shown)
        engine = _make_engine(parsed, writer=create)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"storage: cannot use {shown}: {exc}") from None
    try:
        _check_and_upgrade(engine, shown, create=create, is_sqlite=is_sqlite)
    except StoreError:
        engine.dispose()
        raise
    except (DBAPIError, sqlite3.Error) as exc:
        engine.dispose()
        if is_sqlite and not memory and not create and classify(exc) == STORAGE:
            return _open_read_only(path, shown)
        raise _open_error(exc, shown, create=create,
                          path=path if is_sqlite and not memory else None) from None
    return engine


def _create_sqlite(path: Path, shown: str) -> None:
    """Create the database file at ``path`` whole, or not at all.

    The schema is built (in WAL mode) in a temporary file beside it, which is then hard-linked
    into place: of two drivers creating the same new database one links its file and the other
    opens it, and a failure (read-only directory, full disk) leaves no file behind.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.new")
    try:
        engine = _make_engine(make_url(f"sqlite:///{tmp}"), writer=True)
        try:
            _check_and_upgrade(engine, shown, create=True, is_sqlite=True)
            raw = engine.raw_connection()  # everything into the main file before it is linked
            try:
                driver: Any = raw.driver_connection
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                raw.close()
        finally:
            engine.dispose()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # a concurrent driver created it first: open its file
        except OSError:  # no hard links on this file system: a plain rename
            if not path.exists():
                os.replace(tmp, path)
    except (DBAPIError, sqlite3.Error, OSError) as exc:
        raise _open_error(exc, shown, create=True, path=path) from None
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{tmp}{suffix}")


def _open_read_only(path: Path, shown: str) -> Engine:
    """A reader's engine on a SQLite file it cannot write: ``mode=ro``, else ``immutable=1``.

    A WAL database needs its ``-shm`` file; in a read-only directory without one only
    ``immutable=1`` reads it (nobody can be writing there).
    """
    uri = "file:" + quote(str(path.resolve()))
    error: BaseException | None = None
    for flags in ("mode=ro", "immutable=1"):
        def connect(target: str = f"{uri}?{flags}") -> sqlite3.Connection:
            return sqlite3.connect(target, uri=True, check_same_thread=False)

        engine = _make_engine(make_url(f"sqlite:///{path}"), writer=False, creator=connect)
        try:
            _check_and_upgrade(engine, shown, create=False, is_sqlite=True)
            return engine
        except (DBAPIError, sqlite3.Error) as exc:
            engine.dispose()
            error = exc
    assert error is not None
    raise StoreError(f"storage: cannot open {shown} read-only: {short(error)}")


def _revision(conn: Any) -> tuple[str | None, set[str]]:
    tables = set(inspect(conn).get_table_names())
    current = None
    if VERSION_TABLE in tables:
        current = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    return current, tables


def _check_revision(current: str | None, tables: set[str], shown: str) -> None:
    if VERSION_TABLE not in tables and tables:
        raise StoreError(f"storage: {shown} is not a vidarch database "
                         f"(it has tables {sorted(tables)[:5]} but no {VERSION_TABLE})")
    if current is not None and current not in _known_revisions():
        raise StoreError(f"storage: {shown} has schema version {current}, newer than this "
                         f"vidarch (knows up to {head_revision()}); upgrade vidarch to read it")


def _check_and_upgrade(engine: Engine, shown: str, *, create: bool, is_sqlite: bool) -> None:
    # Everything is read before anything is written, so a foreign database stays untouched.
    with engine.connect() as conn:
        current, tables = _revision(conn)
    head = head_revision()
    _check_revision(current, tables, shown)
    if not create:
        if current is None:
            raise StoreError(f"storage: {shown} is not a vidarch database (empty)")
        if current != head:
            raise StoreError(f"storage: {shown} has the older schema {current} (this vidarch "
                             f"uses {head}); run a study on it once to upgrade it")
        return
    if is_sqlite:
        raw = engine.raw_connection()  # outside any transaction: the mode cannot change inside
        try:
            driver: Any = raw.driver_connection
            mode = driver.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        finally:
            raw.close()
        if str(mode).lower() not in ("wal", "memory"):
            raise StoreError(f"storage: {shown}: cannot switch to WAL mode (got {mode})")
    if current != head:
        with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock is ours
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": MIGRATION_LOCK_KEY})
            current, tables = _revision(conn)  # again, under the lock: a concurrent opener
            _check_revision(current, tables, shown)  # may have upgraded it meanwhile
            if current != head:
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")


def open_stored(db: str) -> Engine:
    """Open an existing results database to write to (a path or URL; an older schema upgraded):
    the maintenance commands' entry (``search.results.summaries``, ``search.results.renaming``).

    Raises:
        StoreError: no SQLite file at ``db`` (``db: no database at PATH``), or it cannot be used.
    """
    from search.results.urls import sqlite_path, to_url

    url = to_url(db)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise StoreError(f"db: no database at {path}")
    return open_engine(url, create=True)
