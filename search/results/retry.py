"""Transient database errors retried with backoff for a bounded time; the timeouts that bound
every wait.

Settings (environment variables, in seconds; the defaults suit a laptop and a cluster alike):

- ``VIDARCH_DB_RETRY_S`` (120): how long a transient error (lock held, server down or
  restarting) is retried before the run ends with one line.
- ``VIDARCH_DB_TIMEOUT_S`` (30): SQLite's busy timeout; PostgreSQL's ``connect_timeout`` and
  ``statement_timeout`` (a server that accepts and never answers cannot hang the run).

Only the driver retries (``transaction`` around each write); readers fail with one line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from search.results.dberrors import (
    CONFLICT,
    STORAGE,
    TRANSIENT,
    DatabaseUnavailable,
    StorageRefused,
    StoreError,
    classify,
    short,
)

RETRY_ENV = "VIDARCH_DB_RETRY_S"
TIMEOUT_ENV = "VIDARCH_DB_TIMEOUT_S"
DEFAULT_RETRY_S = 120.0  # outlasts a server restart; the 40 s outages are survived
DEFAULT_TIMEOUT_S = 30.0
FIRST_DELAY_S = 0.2  # backoff doubles from here ...
MAX_DELAY_S = 5.0  # ... up to this
CONFLICT_ATTEMPTS = 3  # a unique-key race is settled by running the transaction again, once or twice

T = TypeVar("T")


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name`` (unset: default)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise StoreError(f"{name}: not a number of seconds: {value!r}") from None
    if not seconds > 0:
        raise StoreError(f"{name}: must be > 0 seconds, got {value!r}")
    return seconds


def retry_window_s() -> float:
    """How long a transient error is retried (``VIDARCH_DB_RETRY_S``)."""
    return env_seconds(RETRY_ENV, DEFAULT_RETRY_S)


def db_timeout_s() -> float:
    """Connect / statement / busy timeout (``VIDARCH_DB_TIMEOUT_S``)."""
    return env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def retry_call(fn: Callable[[], T], *, what: str, window_s: float | None = None,
               notify: Callable[[str], None] | None = _stderr) -> T:
    """Call ``fn`` until it succeeds, retrying transient database errors with backoff.

    Args:
        fn: one whole transaction (it is run again from the start after an error; the failed
            attempt was rolled back).
        what: the database as shown to the user (no password).
        window_s: how long to keep retrying (default ``retry_window_s()``).
        notify: gets one line when retrying starts and one when the database is back.

    Raises:
        DatabaseUnavailable: the error was still there after ``window_s``.
        StorageRefused: the storage refuses writes (read-only, full).
        Exception: any other error, unchanged (a bug is not retried).
    """
    window = retry_window_s() if window_s is None else window_s
    delay, conflicts = FIRST_DELAY_S, 0
    since: float | None = None
    while True:
        try:
            result = fn()
        except Exception as exc:
            kind = classify(exc)
            if kind == STORAGE:
                raise StorageRefused(f"storage: cannot write {what}: {short(exc)}") from exc
            if kind == CONFLICT and conflicts < CONFLICT_ATTEMPTS:
                conflicts += 1
                continue
            if kind != TRANSIENT:
                raise
            now = time.monotonic()
            if since is None:
                since = now
                if notify is not None and window > 0:
                    notify(f"storage: {what}: {short(exc)}; retrying for up to {window:.0f} s")
            waited = now - since
            if waited + delay > window:
                raise DatabaseUnavailable(
                    f"storage: {what}: {short(exc)} (still failing after {waited:.0f} s of "
                    f"retries; {RETRY_ENV} sets how long)") from exc
            time.sleep(delay)
            delay = min(2 * delay, MAX_DELAY_S)
        else:
            if since is not None and notify is not None:
                notify(f"storage: {what} is back after {time.monotonic() - since:.0f} s")
            return result


def shown(engine: Engine) -> str:
    """The engine's URL as shown to the user (password masked)."""
    return engine.url.render_as_string(hide_password=True)


def transaction(engine: Engine, fn: Callable[[Session], T], *, window_s: float | None = None,
                notify: Callable[[str], None] | None = _stderr) -> T:
    """Run ``fn(session)`` in one transaction (``session_scope``), retried as ``retry_call``."""
    from search.results.store import session_scope

    def attempt() -> T:
        with session_scope(engine) as s:
            return fn(s)

    return retry_call(attempt, what=shown(engine), window_s=window_s, notify=notify)
