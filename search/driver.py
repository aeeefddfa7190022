"""The driver: plan what is left of a study, run it on Ray Tune, show progress.

``run_study`` is called by ``search.run`` once the config is valid and the database is open.
It reads the study's stored trials (resume), starts Ray, runs the remaining trials through
``OptunaSearch`` with the one writer callback, and returns what happened;
``search.summary.print_summary`` renders the end-of-run tables from the database.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine

from arch_space.naming import placement_family, placement_name
from search import faults, interrupts
from search.cluster import start_ray
from search.design.config import RunConfig
from search.design.protocol import trial_data_seed
from search.design.studies import Design, mac_band
from search.progress import ProgressDisplay
from search.results import metrics
from search.results.schema import ArchRow, TrialRow, TrialState
from search.results.store import completed_cells, session_scope, study_trials, trial_results

ACC = metrics.VAL_ACC1  # what the progress line and ASHA rank by


@dataclass
class Outcome:
    """What one invocation did."""

    planned: int = 0  # trials this run set out to run
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    skipped: int = 0  # search proposals answered without training (over budget, repeated)
    interrupted: bool = False  # Ctrl-C or a driver error stopped the run
    wall_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (label, reason)
    skip_reasons: dict[str, int] = field(default_factory=dict)  # "over budget" -> count


@dataclass(frozen=True)
class StoredTrial:
    """What a resumed run needs of a stored trial."""

    arch_id: str
    seed: int
    state: TrialState
    params: dict[str, Any]  # sampled search parameters (search designs)
    results: dict[str, float]  # final metrics


# --- cost -------------------------------------------------------------------------------------


class CostCache:
    """Cost per arch_id, measured once (fvcore) in the driver before trials start.

    An arch already in the database (an earlier run, another study) is read back, not traced
    again: its cost is a function of its spec.
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.by_arch: dict[str, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher that holds this cache; the engine stays in the driver.
        return {**self.__dict__, "engine": None}

    def get(self, spec: Any) -> dict[str, Any]:
        """``{"macs", "params", "activations", "latency_ms", "per_layer"}`` of ``spec``."""
        arch_id = spec.arch_id
        if arch_id not in self.by_arch and self.engine is not None:
            with session_scope(self.engine) as s:
                row = s.get(ArchRow, arch_id)
                if row is not None:
                    self.by_arch[arch_id] = {
                        "macs": int(row.macs), "params": int(row.params),
                        "activations": row.activations, "latency_ms": row.latency_ms,
                        "per_layer": json.loads(row.per_layer_json or "[]")}
        if arch_id not in self.by_arch:
            from arch_space.cost import measure_cost

            report = measure_cost(spec)
            self.by_arch[arch_id] = {"macs": int(report.macs), "params": int(report.params),
                                     "activations": int(report.activations),
                                     "latency_ms": report.latency_ms,
                                     "per_layer": report.per_layer}
        return self.by_arch[arch_id]


# --- planning ---------------------------------------------------------------------------------


def _trial_config(spec: Any, cost: dict[str, Any], *, seed: int, label: str, family: str,
                  band_ratio: float, resume: dict[tuple[str, int], str],
                  pinned_data_seed: int | None,
                  data: Mapping[str, Any] | None = None, pretrained: bool = False,
                  params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The constants a trial receives (flat: Ray unflattens '/'-keys, so none are used)."""
    return {"spec_json": spec.to_json(), "arch_id": spec.arch_id, "seed": int(seed),
            "data_seed": trial_data_seed(pinned_data_seed, seed),
            "label": label, "family": family, "macs": cost["macs"], "params": cost["params"],
            "band": mac_band(cost["macs"], band_ratio), "data_json": json.dumps(dict(data or {})),
            "pretrained": bool(pretrained), "params_json": json.dumps(dict(params or {})),
            "resume_from": resume.get((spec.arch_id, int(seed)))}


def _resume_points(rows: list[TrialRow]) -> dict[tuple[str, int], str]:
    """Checkpoints of unfinished cells, to resume from."""
    return {(r.arch_id, r.seed): r.checkpoint_path for r in rows
            if r.state is not TrialState.COMPLETE and r.checkpoint_path}


# --- Ray --------------------------------------------------------------------------------------


def check_resources(cfg: RunConfig) -> str | None:
    """Why no trial could ever be scheduled with these resources (one line), or None.

    A local Ray is checked against this machine before Ray starts; a cluster against what the
    joined Ray reports (so call ``start_ray`` first).
    """
    hw = cfg.hardware
    if hw.address:
        import ray

        total = ray.cluster_resources()
        cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    else:
        cpus = float(hw.num_cpus if hw.num_cpus is not None else (os.cpu_count() or 1))
        if hw.num_gpus is not None:
            gpus = float(hw.num_gpus)
        else:
            import torch

            gpus = float(torch.cuda.device_count())
    if hw.gpus_per_trial < 0:
        return f"hardware.gpus_per_trial: must be >= 0, got {hw.gpus_per_trial}"
    if hw.cpus_per_trial > cpus:
        return (f"hardware.cpus_per_trial: {hw.cpus_per_trial:g} CPUs per trial, but Ray has "
                f"{cpus:g}")
    if hw.gpus_per_trial > gpus:
        return (f"hardware.gpus_per_trial: {hw.gpus_per_trial:g} GPU(s) per trial, but Ray has "
                f"{gpus:g} (use hardware=local on a machine without GPUs)")
    if hw.device == "cuda" and hw.gpus_per_trial <= 0:
        return "hardware.device: 'cuda' needs hardware.gpus_per_trial > 0"
    if hw.device not in ("auto", "cpu", "cuda"):
        return f"hardware.device: unknown device {hw.device!r} (choose from auto, cpu, cuda)"
    return None


def trial_dirname(trial: Any) -> str:
    """Short, readable trial directories: ``mc3-s0-<id>`` (Tune's default embeds the config)."""
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in
                    str(trial.config.get("label", "trial")))
    return f"{label[:40]}-s{trial.config.get('seed', 0)}-{trial.trial_id}"


def _storage_path(cfg: RunConfig) -> str:
    path = cfg.hardware.checkpoint_dir
    if "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


# --- the run ----------------------------------------------------------------------------------


def run_study(cfg: RunConfig, design: Design, engine: Engine, study_id: int, *,
              err: TextIO | None = None, guard: Any = None) -> Outcome:
    """Run what is left of the study and return the outcome (rows are written as trials go).

    ``guard`` (a ``search.results.guard.StudyGuard``) fences every write with the study lease and
    retries transient database errors; None writes unguarded. ``err`` (progress, resume notes)
    defaults to the ``sys.stderr`` of the moment of the call.
    """
    err = err if err is not None else sys.stderr
    import optuna
    from ray import tune

    from search.checkpoints import experiment_name, refused_reason
    from search.tracking import tracking_callbacks
    from search.trainable import TrialContext, run_trial
    from search.tuning import BandedASHA, PlateauStopper, StudySearch
    from search.writer import GuardedWriter

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = cfg.study
    costs = CostCache(engine)
    with session_scope(engine) as s:
        rows = study_trials(s, study_id)
        done = completed_cells(s, study_id)
        stored = [StoredTrial(r.arch_id, r.seed, r.state, json.loads(r.params_json or "{}"),
                              trial_results(s, r.id)) for r in rows]
    resume = _resume_points(rows)
    root = _storage_path(cfg)
    refused = [p for p in resume.values() if refused_reason(p, root, study.name)]
    if refused:  # the trials refuse them too, and store why
        print(f"resume: {len(refused)} stored checkpoint(s) outside {root}/{study.name}-* "
              f"refused (e.g. {refused[0]}): those cells train from scratch", file=err)
    ratio = study.scheduler.band_ratio

    objectives = list(study.objectives)
    metric: Any = objectives if len(objectives) > 1 else objectives[0]
    mode: Any = [metrics.direction(m, metrics.parse_directions(study.directions))
                 for m in objectives]
    mode = mode if len(objectives) > 1 else mode[0]

    outcome = Outcome()
    if design.is_grid:
        configs: dict[str, dict[str, Any]] = {}
        for cell in design.cells:
            cost = costs.get(cell.spec)
            for seed in design.seeds:
                if (cell.spec.arch_id, seed) in done:
                    continue
                configs[f"{cell.key}@{seed}"] = _trial_config(
                    cell.spec, cost, seed=seed, label=cell.label, family=cell.family,
                    band_ratio=ratio, resume=resume, pinned_data_seed=cfg.data.data_seed,
                    data=cell.data, pretrained=cell.pretrained, params=cell.matching)
        keys = list(configs)
        outcome.planned = len(keys)
        if not keys:
            return outcome

        def space(trial: Any) -> dict[str, Any]:
            return dict(configs[trial.suggest_categorical("cell", keys)])

        sampler = optuna.samplers.GridSampler({"cell": keys}, seed=0)
        searcher = StudySearch(space=space, metric=metric, mode=mode, sampler=sampler)
        num_samples = len(keys)
    else:
        searcher, num_samples = _search_searcher(cfg, design, costs, stored, resume, metric, mode)
        outcome.planned = num_samples
        if num_samples <= 0:
            return outcome

    scheduler = None
    stopped: set[str] = set()  # trial ids ASHA stopped: PRUNED for the writer and the searcher
    if study.scheduler.kind == "asha":
        scheduler = BandedASHA(metric=ACC, mode="max", time_attr="epoch",
                               max_t=int(cfg.train.epochs or 1),
                               grace_period=study.scheduler.grace_epochs,
                               reduction_factor=study.scheduler.reduction_factor)
        stopped = scheduler.stopped
    searcher.stopped = stopped

    hw = cfg.hardware
    context = TrialContext(
        data=asdict(cfg.data), train=asdict(cfg.train),
        epochs=int(cfg.train.epochs or 1),
        num_threads=max(1, int(hw.cpus_per_trial)), device=hw.device,
        latency_runs=int(hw.latency_runs),
        pretrain_epochs=study.pretrain_epochs, pretrain_shuffle=study.pretrain_shuffle,
        hooks=faults.from_env(), checkpoint_root=root, study=study.name)
    resources = {"cpu": hw.cpus_per_trial, "gpu": hw.gpus_per_trial}
    writer = GuardedWriter(engine, study_id, costs.by_arch,
                           resources={"cpus": hw.cpus_per_trial, "gpus": hw.gpus_per_trial,
                                      "ray_address": hw.address or "local"}, stopped=stopped,
                           plateau=context.train, data=context.data,
                           checkpoints=None if hw.keep_checkpoints else (root, study.name),
                           guard=guard)
    stopper = PlateauStopper(context.train, engine, study_id) if cfg.train.plateau_stop else None
    progress = ProgressDisplay(writer, total=num_samples, study=study.name,
                               interval_s=cfg.progress_interval_s, stream=err)

    interrupts.check()  # a Ctrl-C swallowed during set-up stops here, before any trial
    start_ray(cfg)
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), resources)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=num_samples,
                                    max_concurrent_trials=hw.max_concurrent_trials,
                                    # one worker process per slot (12 smoke trials: 0:31 vs
                                    # 3:46); safe: a trial seeds before it builds and worker
                                    # caches are keyed by all they depend on (trainable.py)
                                    reuse_actors=True,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=experiment_name(study.name),
            storage_path=root, callbacks=[writer, progress, *tracking_callbacks(cfg)], verbose=0,
            stop=stopper,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
    t0 = time.monotonic()
    try:
        tuner.fit()
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        outcome.wall_s = time.monotonic() - t0
        progress.finish()
    for state, label, detail in writer.events:
        if state == "COMPLETE":
            outcome.completed += 1
        elif state == "PRUNED":
            outcome.pruned += 1
        elif state == "FAILED":
            outcome.failed += 1
            outcome.failures.append((str(label), str(detail)))
    outcome.skipped += progress.skipped
    outcome.skip_reasons = dict(progress.skip_reasons)
    ended = outcome.completed + outcome.pruned + outcome.failed + outcome.skipped
    if ended < outcome.planned or interrupts.requested():  # Tune swallows Ctrl-C, returns early
        outcome.interrupted = True
    return outcome


def _search_searcher(cfg: RunConfig, design: Design, costs: CostCache, stored: list[StoredTrial],
                     resume: dict[tuple[str, int], str], metric: Any, mode: Any, *,
                     sampler_seed: int | None = None) -> tuple[Any, int]:
    """The TPE / NSGA-II / random searcher over the space, warm-started from stored trials.

    ``sampler_seed`` (None: the number of stored trials) lets ``search.replay`` repeat a search
    under other seeds with this very code.
    """
    from search.tuning import StudySearch, make_sampler

    study = cfg.study
    space = design.space
    finished = [t for t in stored if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    num_samples = study.num_samples - len(finished)
    used: set[tuple[str, int]] = {(t.arch_id, t.seed) for t in finished}
    acc_by_arch: dict[str, list[float]] = {}
    for t in finished:
        if t.state is TrialState.COMPLETE and ACC in t.results:
            acc_by_arch.setdefault(t.arch_id, []).append(t.results[ACC])

    def define(trial: Any) -> dict[str, Any]:
        spec = space.sample(trial)
        params = dict(trial.params) if hasattr(trial, "params") else {}
        cost = costs.get(spec)
        ok, reason = space.is_feasible(spec)
        seeds = [s for s in design.seeds if (spec.arch_id, s) not in used]
        config = _trial_config(spec, cost, seed=seeds[0] if seeds else design.seeds[0],
                               label=placement_name(spec), family=placement_family(spec),
                               band_ratio=study.scheduler.band_ratio, resume=resume,
                               pinned_data_seed=cfg.data.data_seed, params=params)
        if not ok:
            config.update(skip=True, skip_value=0.0, skip_reason=f"over budget: {reason}")
        elif not seeds:  # every seed of this arch is known: answer with the stored mean
            accs = acc_by_arch.get(spec.arch_id, [])
            config.update(skip=True, skip_value=statistics.fmean(accs) if accs else 0.0,
                          skip_reason="repeated proposal")
        else:
            used.add((spec.arch_id, seeds[0]))
        return config

    # Seeded by how much is stored: reproducible, yet a resumed search does not replay the
    # proposals of the run before it.
    seed = len(stored) if sampler_seed is None else sampler_seed
    searcher = StudySearch(space=define, metric=metric, mode=mode,
                           sampler=make_sampler(study.sampler, seed))
    distributions = _distributions(space)
    objectives = metric if isinstance(metric, list) else [metric]
    for t in finished:
        values = [float(t.results.get(m, math.nan)) for m in objectives]
        searcher.add_stored_trial(t.params, distributions, values, t.state)
    # Interrupted or failed proposals of an earlier run are evaluated first (resume).
    ot_study: Any = searcher._ot_study
    for t in stored:
        if t.state is TrialState.FAILED and t.params and num_samples > 0:
            ot_study.enqueue_trial(t.params, skip_if_exists=False)
    return searcher, num_samples


def _distributions(space: Any) -> dict[str, Any]:
    """Optuna distributions of every parameter the space may suggest (for warm starts)."""
    from optuna.distributions import CategoricalDistribution

    out: dict[str, Any] = {}
    if space.placements:
        out["preset"] = CategoricalDistribution([p.name for p in space.placements])
    for slot in space.slots:
        for name, choices in slot.options.items():
            if len(choices) > 1:
                out[f"{slot.name}.{name}"] = CategoricalDistribution(list(choices))
    return out
