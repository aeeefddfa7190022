"""The progress line of a running study: trials done / running / failed, best so far, ETA.

A Tune callback, run in the driver; on a terminal it rewrites one line, in a log it prints a
line when the counts or the best change (else once a minute).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, TextIO

from search.results import metrics
from search.results.schema import TrialState
from search.summary import fmt_duration as _fmt_duration

ACC = metrics.VAL_ACC1  # the best-so-far metric (higher is better)

def _make_progress_base() -> type:
    from ray.tune import Callback

    return Callback


class ProgressDisplay(_make_progress_base()):  # type: ignore[misc]
    """Trials done / running / failed, best so far and ETA on stderr, at most every interval_s."""

    def __init__(self, writer: Any, *, total: int, study: str, interval_s: float,
                 stream: TextIO) -> None:
        self.writer = writer
        self.total = total
        self.study = study
        self.interval_s = max(0.5, interval_s)
        self.stream = stream
        self.t0 = time.monotonic()
        self.last = 0.0
        self.last_line = ""
        self.last_print = 0.0
        self.max_running = 1
        self.running: set[str] = set()
        self.finished = 0
        self.failed = 0
        self.pruned = 0
        self.skipped = 0
        self.skip_reasons: dict[str, int] = {}
        self.best: tuple[float, str] | None = None
        self.durations: list[float] = []
        self.started: dict[str, float] = {}
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; streams and the writer stay here.
        return {k: v for k, v in self.__dict__.items() if k not in ("stream", "writer")}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self.max_running = max(self.max_running, len(self.running))
        self.started[trial.trial_id] = time.monotonic()
        self._show(force=self.finished == 0 and len(self.running) == 1)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        self._show()

    def _end(self, trial: Any) -> None:
        self.running.discard(trial.trial_id)
        self.finished += 1
        if trial.trial_id in self.started and not trial.config.get("skip"):
            self.durations.append(time.monotonic() - self.started.pop(trial.trial_id))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from search.tuning import final_state

        self._end(trial)
        result = trial.last_result or {}
        if trial.config.get("skip"):
            self.skipped += 1
            reason = str(trial.config.get("skip_reason", "skipped")).split(":")[0]
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1
        elif trial.trial_id in self.writer.stopped:
            self.pruned += 1
        elif final_state(result, False)[0] is TrialState.COMPLETE:
            acc = result.get(ACC)  # best so far: final accuracy of COMPLETE trials only
            if acc is not None and math.isfinite(acc) and (self.best is None or acc > self.best[0]):
                self.best = (float(acc), str(trial.config.get("label")))
        self._show(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial)
        self.failed += 1
        self._show(force=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._show()

    def line(self) -> str:
        """The current progress line."""
        elapsed = time.monotonic() - self.t0
        best = f"best {ACC} {self.best[0]:.3f} ({self.best[1]})" if self.best else "best -"
        left = self.total - self.finished
        if self.durations and left > 0:
            slots = max(1, self.max_running)
            eta = statistics.fmean(self.durations) * math.ceil(left / slots)
            eta_text = f"ETA {_fmt_duration(eta)}"
        else:
            eta_text = "ETA -" if left else "ETA 0:00"
        return (f"[{self.study}] {self.finished}/{self.total} done · {len(self.running)} running · "
                f"{self.failed} failed · {self.pruned} pruned · {best} · "
                f"{_fmt_duration(elapsed)} elapsed · {eta_text}")

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval_s:
            return
        self.last = now
        line = self.line()
        # In a log (no tty) print a line when the counts or the best change, else once a minute.
        state = line.split(" · ")[:5]
        if (not self.tty and not force and state == self.last_line.split(" · ")[:5]
                and now - self.last_print < 60):
            return
        self.last_line, self.last_print = line, now
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Print the final line (and end the tty line); a log already has it unless it changed."""
        self._show(force=self.tty)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
