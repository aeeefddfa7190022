"""The one writer, guarded: ``StoreCallback`` whose writes hold the study lease and survive
transient database errors.

Every Tune event the writer stores is one transaction; ``GuardedWriter`` runs each through
``StudyGuard.call`` (``search.results.guard``): the lease is checked first (a driver whose study was
taken over stops writing), a transient error is retried with backoff, and one that outlasts the
retry window is raised (Tune then ends the run, and ``search.run`` prints it as one line).
Re-running an event's transaction is safe: a failed attempt was rolled back, and the writer's
functions find-or-create their rows.
"""

from __future__ import annotations

from typing import Any

from search.results.guard import StudyGuard
from search.tuning import StoreCallback


class GuardedWriter(StoreCallback):
    """``StoreCallback`` with every write run through a ``StudyGuard`` (None: unguarded)."""

    guard: StudyGuard | None = None  # also after unpickling, which drops it

    def __init__(self, *args: Any, guard: StudyGuard | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks; the guard (engine, lease, thread) stays in the driver.
        return {k: v for k, v in super().__getstate__().items() if k != "guard"}

    def _write(self, method: Any, *args: Any, **kwargs: Any) -> None:
        if self.guard is None:
            method(*args, **kwargs)
        else:
            self.guard.call(lambda: method(*args, **kwargs))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(super().on_trial_start, iteration, trials, trial, **info)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._write(super().on_trial_result, iteration, trials, trial, result, **info)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        self._write(super().on_checkpoint, iteration, trials, trial, checkpoint, **info)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(super().on_trial_complete, iteration, trials, trial, **info)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(super().on_trial_error, iteration, trials, trial, **info)
