"""One driver per study: a lease row in the results database, renewed by a heartbeat.

The lease (``search.results.schema.LeaseRow``, table ``study_leases``) is keyed by study name and taken
atomically in the database itself, so it works across hosts on PostgreSQL as on SQLite:

1. ``INSERT`` the row; the primary key lets only one driver in.
2. The row exists: read it. A lease past ``expires_at`` (its driver stopped renewing), or one
   held by a process of this host that no longer exists, is stale: take it over with an
   ``UPDATE ... WHERE holder = <old> AND expires_at = <old>`` (compare-and-set: of two drivers
   taking over, one wins). Otherwise raise ``LeaseHeld`` naming the holder.

While the driver runs, a daemon thread renews the lease every ``ttl / 4`` seconds
(``UPDATE ... WHERE holder = me``); the writer calls ``check()`` before every write, which
re-confirms the lease if it went unconfirmed for too long and raises ``LeaseLost`` if another
driver took it over. ``release()`` deletes the row at exit. Times are naive UTC from the
drivers' clocks: hosts sharing a database must agree on the time to well within the TTL.

``VIDARCH_LEASE_TTL_S`` (default 60 s) sets the TTL: a driver that died on another host blocks
its study this long at most.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from search.results.dberrors import LeaseHeld, LeaseLost, StoreError, classify
from search.results.retry import env_seconds, retry_call, shown
from search.results.schema import LeaseRow, utcnow

TTL_ENV = "VIDARCH_LEASE_TTL_S"
DEFAULT_TTL_S = 60.0
LEASES: Any = LeaseRow.__table__
T = TypeVar("T")


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: ``host:pid:token`` in ``study_leases.holder``."""

    host: str
    pid: int
    token: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    @classmethod
    def parse(cls, text: str) -> Holder:
        """The holder written by ``str()``; an unknown format keeps the text as the host."""
        parts = text.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit():
            return cls(parts[0], int(parts[1]), parts[2])
        return cls(text, -1, "")

    @classmethod
    def me(cls) -> Holder:
        """This process, with a fresh token (two leases of one process are told apart)."""
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12])

    def is_dead_here(self) -> bool:
        """True when this holder is a process of this host that no longer exists."""
        if self.host != socket.gethostname() or self.pid <= 0 or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        return _is_zombie(self.pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def lease_ttl_s() -> float:
    """The lease time-to-live (``VIDARCH_LEASE_TTL_S``)."""
    return env_seconds(TTL_ENV, DEFAULT_TTL_S)


def _fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


class StudyLease:
    """The lease of one study for this driver (see the module docstring).

    Args:
        engine: the writer's engine.
        study: the study name.
        ttl_s: time to live (default ``lease_ttl_s()``).
    """

    def __init__(self, engine: Engine, study: str, *, ttl_s: float | None = None) -> None:
        self.engine = engine
        self.study = study
        self.ttl_s = lease_ttl_s() if ttl_s is None else ttl_s
        self.holder = Holder.me()
        self.held = False
        self.lost = False
        self.took_over: str | None = None  # who held the stale lease this one replaced
        self._confirmed = 0.0  # time.monotonic() of the last successful renewal
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- taking and giving back ---------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` (one line naming the holder)."""
        for _ in range(5):  # a row that vanishes or changes between steps: look again
            if self._retry(self._insert):
                return self._taken()
            row = self._retry(self._read)
            if row is None:
                continue
            old = Holder.parse(row.holder)
            if row.expires_at < utcnow() or old.is_dead_here():
                if self._retry(functools.partial(self._take_over, row)):
                    self.took_over = self._describe(row, old)
                    return self._taken()
                continue
            raise LeaseHeld(f"study {self.study!r} is being run by another driver "
                            f"({self._describe(row, old)}); wait for it to finish, or stop it")
        raise StoreError(f"storage: the lease of study {self.study!r} keeps changing hands")

    def _describe(self, row: Any, holder: Holder) -> str:
        pid = f"pid {holder.pid}" if holder.pid > 0 else f"holder {row.holder!r}"
        beat = max(0.0, (utcnow() - row.heartbeat_at).total_seconds())
        return (f"host {holder.host}, {pid}, since {_fmt(row.acquired_at)}, "
                f"last heartbeat {beat:.0f} s ago")

    def _taken(self) -> None:
        self.held = True
        self._confirmed = time.monotonic()

    def release(self) -> None:
        """Stop the heartbeat and delete the lease row (best effort: it expires anyway)."""
        self.stop_heartbeat()
        if not self.held:
            return
        self.held = False
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(LEASES).where(LEASES.c.study_name == self.study,
                                                  LEASES.c.holder == str(self.holder)))
        except Exception as exc:  # the lease expires on its own
            if classify(exc) is None and not isinstance(exc, OSError):
                raise

    # --- renewing -----------------------------------------------------------------------------

    def renew(self) -> bool:
        """Extend the lease by one TTL; False (and ``lost``) when another driver holds it now."""
        now = utcnow()
        with self.engine.begin() as conn:
            count = conn.execute(update(LEASES).where(
                LEASES.c.study_name == self.study, LEASES.c.holder == str(self.holder)
            ).values(heartbeat_at=now, expires_at=now + timedelta(seconds=self.ttl_s))).rowcount
        if count != 1:
            self.lost = True
            return False
        self._confirmed = time.monotonic()
        return True

    def check(self) -> None:
        """Called before every write: raise ``LeaseLost`` unless this driver holds the lease.

        If no renewal succeeded for half the TTL (the database was unreachable, the process was
        stopped), the lease is renewed now; transient errors propagate to the caller's retry.
        """
        if not self.lost and time.monotonic() - self._confirmed > self.ttl_s / 2:
            self.renew()
        if self.lost:
            raise LeaseLost(f"lease: study {self.study!r} was taken over by another driver "
                            f"while this one could not renew its lease; stopping")

    def start_heartbeat(self) -> None:
        """Renew the lease every TTL/4 seconds in a daemon thread until ``release()``."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat, name="vidarch-lease", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        """Stop the heartbeat thread (the lease stays until ``release`` or expiry)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _beat(self) -> None:
        interval = max(0.2, self.ttl_s / 4)
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    return
            except Exception:  # a transient error: the next beat tries again
                continue

    # --- the three statements -----------------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        return retry_call(fn, what=shown(self.engine))

    def _insert(self) -> bool:
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(LEASES).values(
                    study_name=self.study, holder=str(self.holder), acquired_at=now,
                    heartbeat_at=now, expires_at=now + timedelta(seconds=self.ttl_s)))
        except IntegrityError:
            return False
        return True

    def _read(self) -> Any:
        """The lease row (a Row with LeaseRow's columns), or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(LEASES).where(LEASES.c.study_name == self.study)).first()

    def _take_over(self, row: Any) -> bool:
        now = utcnow()
        with self.engine.begin() as conn:
            count = conn.execute(update(LEASES).where(
                LEASES.c.study_name == self.study, LEASES.c.holder == row.holder,
                LEASES.c.expires_at == row.expires_at,
            ).values(holder=str(self.holder), acquired_at=now, heartbeat_at=now,
                     expires_at=now + timedelta(seconds=self.ttl_s))).rowcount
        return count == 1


__all__ = ["DEFAULT_TTL_S", "TTL_ENV", "Holder", "StudyLease", "lease_ttl_s"]
