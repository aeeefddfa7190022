"""What went wrong with the results database, in one line, and whether waiting can fix it.

Torch- and ray-free, below ``search.results.store``: the store, the retry loop and the study lease raise
these, and ``search.run`` turns them into one line and an exit status.

- ``transient``: waiting may fix it (SQLite "database is locked", a PostgreSQL server that is
  down, restarting or refusing connections, a dropped connection, a statement timeout).
- ``storage``: the storage refuses to hold more (read-only file or directory, full disk,
  missing permission): waiting will not fix it.
- ``conflict``: a concurrent writer inserted the same key first (e.g. two studies storing the
  same arch at once on PostgreSQL); running the transaction again reads that row instead.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "DatabaseUnavailable",
    "LeaseHeld",
    "LeaseLost",
    "StorageRefused",
    "StoreError",
    "classify",
    "short",
]

TRANSIENT = "transient"
STORAGE = "storage"
CONFLICT = "conflict"

# PostgreSQL SQLSTATEs. Class 08: connection exception; 57P01-57P03: the server is shutting
# down / crashed / not accepting connections yet; 57014: statement timeout (or cancel);
# 40001 / 40P01: serialization failure / deadlock; 55P03: lock not available; 53300: too many
# connections.
_TRANSIENT_CODES = ("08", "57P01", "57P02", "57P03", "57014", "40001", "40P01", "55P03", "53300")
# 53100: disk full; 25006: read-only transaction (a hot standby); 42501: insufficient privilege.
_STORAGE_CODES = ("53100", "25006", "42501")
_TRANSIENT_TEXT = (
    "database is locked", "database table is locked", "database schema is locked",
    "connection refused", "could not connect", "server closed the connection",
    "terminating connection", "the database system is starting up",
    "the database system is shutting down", "the database system is in recovery mode",
    "the database system is not yet accepting connections", "connection already closed",
    "connection is closed", "timeout expired", "ssl connection has been closed",
    "no connection to the server", "connection reset", "could not receive data",
    "could not send data", "broken pipe", "statement timeout", "connection timed out",
    "lost synchronization with server",
)
_STORAGE_TEXT = (
    "database or disk is full", "readonly database", "read-only file system",
    "no space left on device", "unable to open database file", "permission denied",
    "read-only transaction", "disk full", "could not extend file",
    "disk i/o error",  # SQLite, e.g. when the -shm file cannot be made on a full disk
)


class StoreError(RuntimeError):
    """The database cannot be used; the message is one line, fit for the user."""


class StorageRefused(StoreError):
    """The storage refuses writes (read-only file or directory, full disk): bad input at start."""


class DatabaseUnavailable(StoreError):
    """A transient error that outlasted the retry window (server down, lock held)."""


class LeaseHeld(StoreError):
    """Another driver holds the study's lease; the message names it (host, pid, since when)."""


class LeaseLost(StoreError):
    """This driver's lease was taken over (it could not renew it in time): it must stop writing."""


def short(exc: BaseException) -> str:
    """The first line of a (DBAPI) error, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0].strip() if text else type(orig).__name__


def _sqlstate(exc: BaseException) -> str | None:
    orig: Any = getattr(exc, "orig", None) or exc
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    return str(code) if code else None


def classify(exc: BaseException) -> str | None:
    """``"transient"``, ``"storage"``, ``"conflict"``, or None (a bug or bad data: no retry)."""
    from sqlalchemy.exc import DBAPIError, IntegrityError

    if isinstance(exc, StoreError):
        return None  # already one line (and a DatabaseUnavailable has been retried already)
    if isinstance(exc, IntegrityError):
        return CONFLICT
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return TRANSIENT
    code = _sqlstate(exc)
    if code is not None:
        if code.startswith(_STORAGE_CODES):
            return STORAGE
        if code.startswith(_TRANSIENT_CODES):
            return TRANSIENT
    orig = getattr(exc, "orig", None) or exc
    if not isinstance(exc, DBAPIError | sqlite3.Error | OSError) \
            and not type(orig).__module__.startswith(("psycopg", "sqlite3")):
        return None
    text = str(orig).lower()
    if any(t in text for t in _STORAGE_TEXT):
        return STORAGE
    if any(t in text for t in _TRANSIENT_TEXT):
        return TRANSIENT
    if isinstance(orig, OSError) and not isinstance(orig, PermissionError):
        return TRANSIENT  # a socket error below the driver
    return None


def find_store_error(exc: BaseException | None) -> StoreError | None:
    """The StoreError that caused ``exc`` (Ray Tune wraps a callback's error in a TuneError)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, StoreError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
