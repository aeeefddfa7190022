"""Ctrl-C, never lost: one owner of SIGINT for the driver process.

A Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread is. Python swallows an exception
raised inside a weakref or ``__del__`` callback ("Exception ignored in ..."; SQLAlchemy's event
registry has such callbacks), so a Ctrl-C landing there would be lost and the study would run
on. Here the handler also records the request: ``check`` raises it again at the next safe point,
and the swallowed copy is not printed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

_requested = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    _requested.set()
    raise KeyboardInterrupt


def _quiet_unraisable(previous: Any) -> Any:
    def hook(args: Any) -> None:
        if args.exc_type is not None and issubclass(args.exc_type, KeyboardInterrupt):
            return  # recorded in _requested; check() raises it where it can be handled
        previous(args)

    return hook


@contextlib.contextmanager
def owned() -> Iterator[Any]:
    """Own SIGINT for the block (main thread only); yields the handler to restore after Tune."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    _requested.clear()
    before_signal = signal.signal(signal.SIGINT, _on_sigint)
    before_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(before_hook)
    try:
        yield _on_sigint
    finally:
        signal.signal(signal.SIGINT, before_signal)
        sys.unraisablehook = before_hook


def requested() -> bool:
    """Whether a Ctrl-C came since the driver took SIGINT (even one swallowed on its way)."""
    return _requested.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C came: call at safe points between phases."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def held(restore: Any = None) -> Iterator[None]:
    """Run the block to its end under Ctrl-C; a Ctrl-C that came meanwhile is raised after it.

    Afterwards SIGINT gets the handler ``restore`` (the driver's; default: raise
    ``KeyboardInterrupt``), not the one Tune leaves behind.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        _requested.set()
        caught.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, restore if restore is not None
                      else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt
