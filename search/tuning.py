"""Ray Tune + Optuna wiring: the searcher, ASHA within MAC bands, and the one writer.

- ``StudySearch``: Ray's ``OptunaSearch`` with two fixes for honest multi-objective studies: a
  trial that the scheduler stopped early is told to Optuna as PRUNED (Ray would tell it
  COMPLETE with its last values and it would count as a Pareto point), and stored trials of a
  resumed study are added to the Optuna study (warm start).
- ``BandedASHA``: one ASHA per band of equal MACs, so early stopping on val/acc1 only compares
  networks of similar cost; a trial's band is in its config (cost is known before training).
- ``StoreCallback``: runs in the driver and is the only code that writes results.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch
from sqlalchemy import Engine

from search.hardware import HARDWARE_RESULT
from search.schema import TrialState
from search.store import (
    finish_trial,
    merge_resources,
    record_epoch,
    session_scope,
    start_trial,
    upsert_arch,
)

log = logging.getLogger(__name__)

# Metrics stored per epoch (others in a result, e.g. Ray's bookkeeping, are not).
EPOCH_METRICS: tuple[str, ...] = ("train/loss", "train/acc1", "val/loss", "val/acc1",
                                  "val/acc5", "lr", "epoch_time_s",
                                  "data/skipped")  # real video: unreadable videos so far


def was_stopped_early(result: dict[str, Any] | None) -> bool:
    """True when a finished trial reported fewer epochs than planned (stopped before its end)."""
    if not result or result.get("skipped"):
        return False
    epoch, planned = result.get("epoch"), result.get("epochs_planned")
    return epoch is not None and planned is not None and float(epoch) < float(planned)


def final_state(result: dict[str, Any] | None, stopped_by_scheduler: bool
                ) -> tuple[TrialState, str | None]:
    """State and reason of a trial Tune reports as complete.

    Only the scheduler's own STOP makes a trial PRUNED; a trial that ended short of its epochs
    otherwise (Ctrl-C, the experiment stopping) is FAILED as interrupted, so it runs again.
    """
    result = result or {}
    if stopped_by_scheduler:
        return TrialState.PRUNED, (f"stopped early by ASHA at epoch {int(result.get('epoch', 0))}"
                                   f" of {int(result.get('epochs_planned', 0))}")
    if "epoch" not in result:
        return TrialState.FAILED, "finished without reporting an epoch"
    if was_stopped_early(result):
        return TrialState.FAILED, (f"interrupted at epoch {int(result['epoch'])} of "
                                   f"{int(result['epochs_planned'])}")
    return TrialState.COMPLETE, None


class StudySearch(OptunaSearch):
    """``OptunaSearch`` that tells scheduler-stopped trials as PRUNED and can be warm-started.

    ``stopped`` is the set of trial ids the scheduler stopped (shared with ``BandedASHA``).
    """

    stopped: set[str] = frozenset()  # type: ignore[assignment]

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        import optuna

        if not error and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            if trial_id in self.stopped:
                state = optuna.trial.TrialState.PRUNED
            elif was_stopped_early(result):
                state = optuna.trial.TrialState.FAIL  # interrupted: no values to learn from
            else:
                state = None
            if state is not None:
                study: Any = self._ot_study
                study.tell(self._ot_trials[trial_id], state=state)
                self._completed_trials.add(trial_id)
                return
        super().on_trial_complete(trial_id, result=result, error=error)

    def save_to_dir(self, *args: Any, **kwargs: Any) -> None:
        """No-op: resume comes from the results database, not from Tune's experiment snapshots
        (and the define-by-run space holds the driver's cost cache, which need not be pickled)."""

    def add_stored_trial(self, params: dict[str, Any], distributions: dict[str, Any],
                         values: list[float] | None, state: TrialState) -> None:
        """Warm start: add a trial stored by an earlier run (COMPLETE or PRUNED) to the study."""
        import optuna

        if state is TrialState.COMPLETE and values is not None \
                and all(math.isfinite(v) for v in values):
            ot_state, ot_values = optuna.trial.TrialState.COMPLETE, values
        elif state is TrialState.PRUNED:
            ot_state, ot_values = optuna.trial.TrialState.PRUNED, None
        else:
            return
        dists = {k: distributions[k] for k in params if k in distributions}
        params = {k: params[k] for k in dists}
        trial = optuna.trial.create_trial(params=params, distributions=dists, values=ot_values,
                                          state=ot_state)
        study: Any = self._ot_study
        study.add_trial(trial)


class BandedASHA(FIFOScheduler):
    """ASHA on one metric, run separately per band of equal cost (``trial.config["band"]``)."""

    def __init__(self, *, metric: str, mode: str, time_attr: str, max_t: int,
                 grace_period: int, reduction_factor: int,
                 band_of: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self._metric, self._mode = metric, mode
        self._kwargs: dict[str, Any] = {"metric": metric, "mode": mode, "time_attr": time_attr, "max_t": max_t,
                        "grace_period": grace_period, "reduction_factor": reduction_factor}
        self._band_of = band_of or (lambda trial: trial.config.get("band", 0))
        self.stopped: set[str] = set()  # trial ids this scheduler stopped early
        self._bands: dict[Any, AsyncHyperBandScheduler] = {}
        self._trial_band: dict[str, Any] = {}

    def _sub(self, trial: Any) -> AsyncHyperBandScheduler:
        band = self._trial_band.setdefault(trial.trial_id, self._band_of(trial))
        if band not in self._bands:
            self._bands[band] = AsyncHyperBandScheduler(**self._kwargs)
        return self._bands[band]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # metric and mode are fixed at construction

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._sub(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("skipped"):
            return TrialScheduler.CONTINUE
        decision = self._sub(trial).on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and was_stopped_early(result):
            self.stopped.add(trial.trial_id)
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if not result.get("skipped"):
            self._sub(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._sub(trial).on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._sub(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        return f"BandedASHA: {len(self._bands)} MAC bands"


def error_reason(trial: Any, error: BaseException | None = None) -> str:
    """One line saying why a trial failed (the original exception, not Ray's wrapper)."""
    exc: Any = error
    if exc is None:
        exc = _local_error(trial)
    cause = getattr(exc, "cause", None) or exc
    if cause is None:
        return "failed (no error recorded)"
    name = type(cause).__name__
    text = str(cause).strip()
    if name in ("RayTaskError", "TuneError") or "Traceback" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        cand = [ln for ln in lines if ":" in ln and not ln.startswith(("File ", "Traceback"))]
        text = cand[-1] if cand else (lines[-1] if lines else name)
        return text[:500]
    if name == "TrialFailure":
        return text.splitlines()[0][:500] if text else name
    first = text.splitlines()[0] if text else ""
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return f"out of memory: {name}: {first}"[:500]
    return f"{name}: {first}"[:500]


def _local_error(trial: Any) -> Any:
    """The trial's error as Tune just wrote it next to the trial (pickled, else its text)."""
    import os

    from ray import cloudpickle

    for attr, loader in (("pickled_error_file", "pickle"), ("error_file", "text")):
        try:
            path = getattr(trial, attr, None)
        except Exception:  # pragma: no cover - Ray internals vary between versions
            path = None
        if not path or not os.path.isfile(path):
            continue
        try:
            if loader == "pickle":
                with open(path, "rb") as f:
                    return cloudpickle.load(f)
            with open(path) as f:
                return RuntimeError(f.read())
        except Exception:  # pragma: no cover - a broken error file: try the next one
            continue
    return None


class StoreCallback(Callback):
    """The one writer: turns Tune's trial events into rows through ``search.store``.

    ``costs`` maps arch_id to the measured cost (macs, params, activations, latency_ms,
    per_layer) the driver computed before the trial started.
    """

    def __init__(self, engine: Engine, study_id: int, costs: dict[str, dict[str, Any]],
                 resources: dict[str, Any], stopped: set[str] | None = None) -> None:
        self.engine = engine
        self.stopped = stopped if stopped is not None else set()  # ids the scheduler stopped
        self.study_id = study_id
        self.costs = costs
        self.resources = resources
        self.rows: dict[str, int] = {}  # Ray trial_id -> trials.id
        self.events: list[tuple[str, str, Any]] = []  # (state, label, detail) for the display

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; the engine stays in the driver.
        return {k: v for k, v in self.__dict__.items() if k != "engine"}

    def _row(self, trial: Any) -> int | None:
        return self.rows.get(trial.trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        config = trial.config
        if config.get("skip"):
            return
        cost = self.costs[config["arch_id"]]
        with session_scope(self.engine) as s:
            upsert_arch(s, config["arch_id"], config["spec_json"], macs=cost["macs"],
                        params=cost["params"], activations=cost.get("activations"),
                        latency_ms=cost.get("latency_ms"), per_layer=cost.get("per_layer", []))
            row = start_trial(s, self.study_id, arch_id=config["arch_id"],
                              seed=int(config["seed"]), label=config.get("label"),
                              family=config.get("family"),
                              params=json.loads(config.get("params_json", "{}")),
                              resources={**self.resources,
                                         "resumed_from": config.get("resume_from")},
                              ray_trial_id=trial.trial_id)
            self.rows[trial.trial_id] = row.id
        self.events.append(("RUNNING", config.get("label"), None))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        row = self._row(trial)
        if row is not None and HARDWARE_RESULT in result:  # reported once, by the first result
            with session_scope(self.engine) as s:
                merge_resources(s, row, json.loads(result[HARDWARE_RESULT]))
        if row is None or "epoch" not in result:
            return
        metrics = {k: result[k] for k in EPOCH_METRICS if k in result}
        with session_scope(self.engine) as s:
            record_epoch(s, row, int(result["epoch"]), metrics)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        row = self._row(trial)
        path = getattr(checkpoint, "path", None)
        if row is None or not path:
            return
        from search.schema import TrialRow

        with session_scope(self.engine) as s:
            trial_row = s.get(TrialRow, row)
            if trial_row is not None:
                trial_row.checkpoint_path = str(path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        if row is None:
            return
        result = dict(trial.last_result or {})
        final = {k: result[k] for k in (*EPOCH_METRICS, "macs", "params", "epoch") if k in result}
        state, error = final_state(result, trial.trial_id in self.stopped)
        if state is TrialState.PRUNED:
            error = f"{error} (MAC band {trial.config.get('band')})"
        with session_scope(self.engine) as s:
            finish_trial(s, row, state, results=final, error=error)
        self.events.append((state.value, trial.config.get("label"), error))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        reason = error_reason(trial, info.get("error"))
        if row is None:
            self.events.append(("FAILED", trial.config.get("label"), reason))
            return
        result = dict(trial.last_result or {})
        final = {k: result[k] for k in (*EPOCH_METRICS, "macs", "params", "epoch") if k in result}
        with session_scope(self.engine) as s:
            finish_trial(s, row, TrialState.FAILED, results=final, error=reason)
        self.events.append(("FAILED", trial.config.get("label"), reason))
