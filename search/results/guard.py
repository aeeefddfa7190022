"""The driver's hold on a study: the writer's engine, the study lease, and what ends a run.

``search.run`` opens a ``StudyGuard`` before it touches the study's rows and closes it at exit,
whatever happened. Torch- and ray-free. The guard

- opens the database for writing and takes the study lease (``search.results.lease``), whose heartbeat
  then runs until ``close``;
- runs the driver's transactions with retries of transient errors (``search.results.retry``), each
  fenced by the lease (``LeaseLost`` when another driver took the study over);
- remembers the first storage error that ended the run (``fatal``), so that later writes fail
  at once and the run ends with that one line;
- resets the study's RUNNING rows at exit when it can (and only while it holds the lease).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TextIO, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from search.results.dberrors import LeaseLost, StoreError, classify, find_store_error
from search.results.lease import StudyLease
from search.results.opening import open_engine
from search.results.retry import retry_call, retry_window_s, shown
from search.results.store import repair_running, session_scope

T = TypeVar("T")
CLEANUP_WINDOW_S = 15.0  # the exit's reset of RUNNING rows retries at most this long
DEBUG_ENV = "VIDARCH_DEBUG"


class StudyGuard:
    """The writer's engine and lease of one study (see the module docstring)."""

    def __init__(self, engine: Engine, lease: StudyLease) -> None:
        self.engine = engine
        self.lease = lease
        self.fatal: StoreError | None = None  # the storage error that ended the run

    @classmethod
    def open(cls, storage: str, study: str) -> StudyGuard:
        """Open ``storage`` for writing and take the lease of ``study``.

        Raises:
            LeaseHeld: another driver runs the study (the message names it).
            StorageRefused: the storage refuses writes (nothing was created).
            StoreError: any other reason the database cannot be used (one line).
        """
        engine = open_engine(storage, create=True)
        lease = StudyLease(engine, study)
        try:
            lease.acquire()
        except BaseException:
            engine.dispose()
            raise
        lease.start_heartbeat()
        return cls(engine, lease)

    def call(self, fn: Callable[[], T]) -> T:
        """Run one write (a whole transaction) while holding the lease, retrying transient
        errors; the first error that gives up is kept in ``fatal`` and raised again at once by
        every later call."""
        if self.fatal is not None:
            raise self.fatal

        def attempt() -> T:
            self.lease.check()
            return fn()

        try:
            return retry_call(attempt, what=shown(self.engine))
        except StoreError as exc:
            self.fatal = exc
            raise

    def transaction(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` in one transaction, through ``call``."""

        def run() -> T:
            with session_scope(self.engine) as s:
                return fn(s)

        return self.call(run)

    def reset_running(self, study_id: int) -> str:
        """Mark the study's RUNNING rows interrupted (they run again next time).

        Returns "" or, when the database could not be reached in time, a note for the error
        line. Rows of a study another driver took over are left alone.
        """
        if self.lease.lost:
            return ""

        def repair() -> int:
            self.lease.check()
            with session_scope(self.engine) as s:
                return repair_running(s, study_id)

        try:
            retry_call(repair, what=shown(self.engine), notify=None,
                       window_s=min(retry_window_s(), CLEANUP_WINDOW_S))
        except LeaseLost:
            return ""  # the rows are another driver's now
        except Exception as exc:
            if find_store_error(exc) is None and classify(exc) is None:
                raise
            return "; its RUNNING trials stay marked RUNNING until the next run repairs them"
        return ""

    def close(self) -> None:
        """Release the lease (its heartbeat stops) and dispose of the engine."""
        try:
            self.lease.release()
        finally:
            self.engine.dispose()


def report(line: str, exc: BaseException | None = None, *, stream: TextIO | None = None) -> None:
    """Print ``error: <line>`` (one line); with VIDARCH_DEBUG=1 also the traceback of ``exc``."""
    from search.results.urls import mask  # a URL's password never reaches the terminal

    out = stream if stream is not None else sys.stderr
    print(f"error: {mask(line)}", file=out, flush=True)
    if exc is not None and os.environ.get(DEBUG_ENV):
        print(mask("".join(traceback.format_exception(exc))), end="", file=out, flush=True)
