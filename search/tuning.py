"""Ray Tune + Optuna wiring: the searcher, ASHA within MAC bands, and the one writer.

- ``StudySearch``: Ray's ``OptunaSearch`` with two fixes for honest multi-objective studies: a
  trial that the scheduler stopped early is told to Optuna as PRUNED (Ray would tell it
  COMPLETE with its last values and it would count as a Pareto point), and stored trials of a
  resumed study are added to the Optuna study (warm start).
- ``BandedASHA``: one ASHA per band of equal MACs, so early stopping on val/acc1 only compares
  networks of similar cost; a trial's band is in its config (cost is known before training).
- ``PlateauStopper``: ends a trial once its validation curve has plateaued; such a trial is
  COMPLETE (it converged), unlike one ASHA stopped (PRUNED) or one interrupted (FAILED).
- ``make_sampler``: Optuna's TPE / NSGA-II / random sampler, each one Tune can pickle.
- ``StoreCallback``: runs in the driver and is the only code that writes results, including
  each trial's protocol columns (data seed, plateau, train-val gap, baselines).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper
from sqlalchemy import Engine

from search.checkpoints import RESUME_NOTE, remove_checkpoints
from search.design.protocol import curve_plateaued, train_val_gap
from search.hardware import HARDWARE_RESULT
from search.results.metrics import (
    LATENCY_MS,
    TRAIN_ACC1,
    TRAIN_LOSS,
    VAL_ACC1,
    VAL_ACC5,
    VAL_LOSS,
)
from search.results.schema import TrialState
from search.results.store import (
    drop_epochs_after,
    epoch_curve,
    find_trial,
    finish_trial,
    merge_resources,
    record_epoch,
    record_latency,
    record_protocol,
    session_scope,
    set_checkpoint_path,
    start_trial,
    upsert_arch,
)

log = logging.getLogger(__name__)

# Metrics stored per epoch (others in a result, e.g. Ray's bookkeeping, are not).
EPOCH_METRICS: tuple[str, ...] = (TRAIN_LOSS, TRAIN_ACC1, VAL_LOSS, VAL_ACC1,
                                  VAL_ACC5, "lr", "epoch_time_s",
                                  "data/skipped")  # real video: unreadable videos so far


# Set by PlateauStopper in the result it stops a trial on (Tune keeps that result as the trial's
# last_result, and callbacks may mark results in place): the trial ended converged.
PLATEAU_MARK = "stopped_at_plateau"


def was_stopped_early(result: dict[str, Any] | None) -> bool:
    """True when a finished trial reported fewer epochs than planned and did not end at a
    plateau (ASHA stopped it, or it was interrupted)."""
    if not result or result.get("skipped") or result.get(PLATEAU_MARK):
        return False
    epoch, planned = result.get("epoch"), result.get("epochs_planned")
    return epoch is not None and planned is not None and float(epoch) < float(planned)


def final_state(result: dict[str, Any] | None, stopped_by_scheduler: bool
                ) -> tuple[TrialState, str | None]:
    """State and reason of a trial Tune reports as complete.

    Only the scheduler's own STOP makes a trial PRUNED; one the plateau stopper ended is
    COMPLETE; a trial that ended short of its epochs otherwise (Ctrl-C, the experiment
    stopping) is FAILED as interrupted, so it runs again.
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


class PlateauStopper(Stopper):
    """Stops a trial once its validation curve has plateaued (``search.design.protocol.plateaued``).

    ``settings`` are the ``train.plateau_*`` fields (``train.epochs`` is the maximum budget).
    A trial that resumes from a checkpoint re-reports only the epochs after it, so its earlier
    epochs are read from the study's stored curve (``engine``, ``study_id``): it stops where an
    uninterrupted run would.
    """

    def __init__(self, settings: Mapping[str, Any], engine: Engine | None = None,
                 study_id: int | None = None) -> None:
        self.settings = dict(settings)
        self.metric = str(settings["plateau_metric"])
        self.engine, self.study_id = engine, study_id
        self.curves: dict[str, dict[int, float]] = {}  # Ray trial_id -> {epoch: value}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the run config with the experiment state; the engine stays in the driver.
        return {**self.__dict__, "engine": None}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get("skipped") or "epoch" not in result or self.metric not in result:
            return False
        if trial_id not in self.curves:
            self.curves[trial_id] = self._stored_curve(result.get("config") or {})
        curve = self.curves[trial_id]
        epoch = int(result["epoch"])
        curve[epoch] = float(result[self.metric])
        if epoch >= int(result.get("epochs_planned", 0)):
            return False  # the budget's last epoch: the trial ends anyway, unmarked
        if curve_plateaued([curve[e] for e in sorted(curve) if e <= epoch], self.settings):
            result[PLATEAU_MARK] = 1.0
            return True
        return False

    def stop_all(self) -> bool:
        return False

    def _stored_curve(self, config: Mapping[str, Any]) -> dict[int, float]:
        """The stored epochs of a cell that resumes from a checkpoint (else nothing)."""
        if not config.get("resume_from") or self.engine is None or self.study_id is None:
            return {}
        with session_scope(self.engine) as s:
            row = find_trial(s, self.study_id, str(config["arch_id"]), int(config["seed"]))
            return epoch_curve(s, row.id, self.metric) if row is not None else {}


def make_sampler(kind: str, seed: int) -> Any:
    """The Optuna sampler a study names (``nsga2``, ``random``, else multivariate TPE), seeded."""
    if kind == "nsga2":
        return PicklableNSGAII(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


_LOCK = type(threading.Lock())


class PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II that pickles: Optuna 5.1's GA samplers hold a ``threading.Lock``, and the Tuner
    pickles its searcher when it is made ("cannot pickle '_thread.lock' object")."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = [k for k, v in state.items() if isinstance(v, _LOCK)]
        for k in locks:
            del state[k]
        state["_unpickled_locks"] = locks
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        locks = state.pop("_unpickled_locks", [])
        self.__dict__.update(state)
        for k in locks:
            setattr(self, k, threading.Lock())


# Optuna names a GA sampler's trial attributes after its class: keep NSGA-II's own names.
for _key in ("_GENERATION_KEY", "_PARENT_CACHE_KEY_PREFIX"):
    if hasattr(optuna.samplers.NSGAIISampler, _key):
        setattr(PicklableNSGAII, _key, getattr(optuna.samplers.NSGAIISampler, _key))


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


def _draws_with_seed(data: Mapping[str, Any]) -> bool:
    """Whether the data draw uses the data seed (always, except real video fixed by its split)."""
    if data.get("source", "synthetic") == "synthetic":
        return True
    from search.design.video_lists import draws_with_seed

    return draws_with_seed(data)


def error_reason(trial: Any, error: BaseException | None = None) -> str:
    """One line saying why a trial failed (the original exception, not Ray's wrapper)."""
    exc: Any = error
    if exc is None:
        text = _local_error_text(trial)
        if text is None:
            return "failed (no error recorded)"
        match = None
        for line in text.splitlines():  # the last exception line: "pkg.mod.Name: message"
            match = re.match(r"([A-Za-z_][\w.]*): (.*)$", line) or match
        if match is None:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            return (lines[-1] if lines else "failed (no error recorded)")[:500]
        return _one_line(match.group(1).rsplit(".", 1)[-1], match.group(2).strip())
    cause = getattr(exc, "cause", None) or exc
    name = type(cause).__name__
    text = str(cause).strip()
    if name in ("RayTaskError", "TuneError") or "Traceback" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        cand = [ln for ln in lines if ":" in ln and not ln.startswith(("File ", "Traceback"))]
        text = cand[-1] if cand else (lines[-1] if lines else name)
        return text[:500]
    return _one_line(name, text)


def _one_line(name: str, text: str) -> str:
    """The reason of an exception called ``name`` with message ``text``."""
    if name == "TrialFailure":
        return text.splitlines()[0][:500] if text else name
    first = text.splitlines()[0] if text else ""
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return f"out of memory: {name}: {first}"[:500]
    return f"{name}: {first}"[:500]


def _local_error_text(trial: Any) -> str | None:
    """The trial's error as Tune just wrote it next to the trial: the text file (the pickled
    copy beside it is never loaded: nothing from disk is unpickled)."""
    import os

    try:
        path = trial.error_file
    except Exception:  # pragma: no cover - Ray internals vary between versions
        path = None
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:  # pragma: no cover - a vanished error file
        return None


class StoreCallback(Callback):
    """The one writer: turns Tune's trial events into rows through ``search.results.store``.

    ``costs`` maps arch_id to the measured cost (macs, params, activations, latency_ms,
    per_layer) the driver computed before the trial started. ``plateau`` holds the
    ``train.plateau_*`` settings: every trial records whether its curve plateaued by that rule.
    ``data`` is the study's data config: where its draw does not use the data seed (real video
    with an official split and no subsets) ``trials.data_seed`` stays null. ``checkpoints`` is
    ``(storage root, study name)`` when the checkpoints of finished trials are to be deleted.
    """

    def __init__(self, engine: Engine, study_id: int, costs: dict[str, dict[str, Any]],
                 resources: dict[str, Any], stopped: set[str] | None = None, *,
                 plateau: Mapping[str, Any], data: Mapping[str, Any] | None = None,
                 checkpoints: tuple[str, str] | None = None) -> None:
        self.engine = engine
        self.checkpoints = checkpoints
        self.stopped = stopped if stopped is not None else set()  # ids the scheduler stopped
        self.study_id = study_id
        self.costs = costs
        self.resources = resources
        self.plateau = dict(plateau)
        self.records_data_seed = _draws_with_seed(data or {})
        self.rows: dict[str, int] = {}  # Ray trial_id -> trials.id
        self.baselined: set[str] = set()  # trial ids whose baselines are stored
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
            data_seed = config.get("data_seed") if self.records_data_seed else None
            record_protocol(s, row.id, data_seed=data_seed, plateaued=None, train_val_gap=None,
                            chance_acc=None, majority_acc=None)
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
        note = result.get(RESUME_NOTE)
        with session_scope(self.engine) as s:
            record_epoch(s, row, int(result["epoch"]), metrics)
            if LATENCY_MS in result and trial.trial_id not in self.baselined:
                record_latency(s, trial.config["arch_id"], float(result[LATENCY_MS]))
            if "chance_acc" in result and trial.trial_id not in self.baselined:
                record_protocol(s, row, chance_acc=float(result["chance_acc"]),
                                majority_acc=float(result["majority_acc"]))
                self.baselined.add(trial.trial_id)
            if note:  # the checkpoint it was to resume from was refused or discarded: say why
                merge_resources(s, row, {RESUME_NOTE: str(note)})

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        row = self._row(trial)
        path = getattr(checkpoint, "path", None)
        if row is None or not path:
            return
        with session_scope(self.engine) as s:
            set_checkpoint_path(s, row, str(path))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        if row is None:
            return
        result = dict(trial.last_result or {})
        final = {k: result[k] for k in (*EPOCH_METRICS, "macs", "params", LATENCY_MS, "epoch") if k in result}
        state, error = final_state(result, trial.trial_id in self.stopped)
        if state is TrialState.PRUNED:
            error = f"{error} (MAC band {trial.config.get('band')})"
        finished = self.checkpoints is not None and state is not TrialState.FAILED
        with session_scope(self.engine) as s:
            if "epoch" in result:  # rows of an earlier, longer attempt are not this trial's
                drop_epochs_after(s, row, int(result["epoch"]))
            finish_trial(s, row, state, results=final, error=error)
            self._record_convergence(s, row, result)
            if finished:
                set_checkpoint_path(s, row, None)
        if finished and self.checkpoints is not None:  # COMPLETE or PRUNED: it never resumes
            root, study = self.checkpoints
            remove_checkpoints(trial, root=root, study=study)
        self.events.append((state.value, trial.config.get("label"), error))

    def _record_convergence(self, session: Any, row: int, result: dict[str, Any]) -> None:
        """``plateaued`` (the stored val curve, by the stopper's rule) and ``train_val_gap``."""
        if "epoch" not in result:
            return
        curve = epoch_curve(session, row, self.plateau["plateau_metric"])
        values = [curve[e] for e in sorted(curve) if e <= int(result["epoch"])]
        record_protocol(session, row, plateaued=curve_plateaued(values, self.plateau),
                        train_val_gap=train_val_gap(result))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        reason = error_reason(trial, info.get("error"))
        if row is None:
            self.events.append(("FAILED", trial.config.get("label"), reason))
            return
        result = dict(trial.last_result or {})
        final = {k: result[k] for k in (*EPOCH_METRICS, "macs", "params", LATENCY_MS, "epoch") if k in result}
        with session_scope(self.engine) as s:
            finish_trial(s, row, TrialState.FAILED, results=final, error=reason)
            self._record_convergence(s, row, result)
        self.events.append(("FAILED", trial.config.get("label"), reason))

