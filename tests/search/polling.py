"""Looking at a running study from a test: its rows (SQLite or PostgreSQL), and waiting."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def query(db: Path, sql: str) -> list[tuple]:
    """The rows of ``sql`` in the SQLite file ``db`` (a fresh connection; waits out a writer)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def pg_query(url: str, sql: str, *, connect_timeout: int | None = None) -> list[tuple]:
    """The rows of ``sql`` on the database at the SQLAlchemy ``url`` (a fresh engine)."""
    from sqlalchemy import create_engine, text

    args = {"connect_timeout": connect_timeout} if connect_timeout is not None else {}
    engine = create_engine(url, connect_args=args)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def wait_until(predicate: Callable[[], object], timeout: float, *,
               tolerate: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False).

    Errors in ``tolerate`` (the database not created yet, a table not migrated yet) count as
    false; any other error, e.g. an assertion that the driver ended early, propagates.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except tolerate:
            pass
        time.sleep(0.3)
    return False
