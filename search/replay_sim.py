"""A simulated backend: live searchers and schedulers driven by a benchmark table, not training.

``replay`` runs one search the way ``search.driver.run_study`` runs it on Ray Tune — the same
searcher (``driver._search_searcher``: Optuna's TPE / NSGA-II / random sampler inside
``tuning.StudySearch``; for ``grid``, Optuna's ``GridSampler`` over the cells as the driver's
grid branch builds it) and the same scheduler (``tuning.BandedASHA``, or Tune's FIFO) — but a
trial's per-epoch results are rows of the table and its duration is the stored epoch times on
a simulated clock. ``workers`` trials run at once; an event queue orders their epochs; nothing
sleeps and no Ray actor starts (Syne Tune's simulated backend does the same).

The calls follow Tune's controller (``TuneController._process_trial_result`` and
``stop_trial``): the scheduler sees every result first; the searcher sees the result unless the
scheduler stopped the trial; a finished trial goes to the scheduler's, then the searcher's
``on_trial_complete``; a new trial is asked for when a worker is free.

Randomness of one repetition: the sampler's seed (``seed + repetition``; repetition 0 with seed
0 proposes what a fresh live study proposes) and which stored seed answers a proposal — the
k-th proposal of a network gets the k-th seed of a per-network permutation drawn from
``numpy.random.default_rng([seed, repetition])``.
"""

from __future__ import annotations

import copy
import heapq
import logging
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.design.studies import Design, mac_band
from search.hypervolume import Reference, pareto_2d
from search.replay_table import ACC, TIME, BenchTable, ReplayError, run_config
from search.results.metrics import TRAIN_ACC1, TRAIN_LOSS, VAL_LOSS

SAMPLER_NAMES: tuple[str, ...] = ("grid", "random", "tpe", "nsga2")
ASHA = "asha"  # alone: random proposals with ASHA in MAC bands; "tpe+asha": TPE with it


@dataclass(frozen=True)
class Searcher:
    """A searcher to replay: a sampler, with or without ASHA in MAC bands."""

    name: str  # as given: "tpe", "asha", "nsga2+asha"
    sampler: str  # one of SAMPLER_NAMES
    asha: bool  # early stopping with tuning.BandedASHA


def parse_searchers(text: str) -> list[Searcher]:
    """``"grid,random,tpe,nsga2,asha"`` -> searchers; ``ReplayError`` names an unknown one."""
    out: list[Searcher] = []
    for name in [n.strip() for n in text.split(",") if n.strip()]:
        parts = name.split("+")
        if parts == [ASHA]:
            searcher = Searcher(name, "random", True)
        elif len(parts) == 1 and parts[0] in SAMPLER_NAMES:
            searcher = Searcher(name, parts[0], False)
        elif len(parts) == 2 and parts[0] in SAMPLER_NAMES and parts[1] == ASHA:
            searcher = Searcher(name, parts[0], True)
        else:
            raise ReplayError(f"--searchers: unknown searcher {name!r} (choose from "
                              f"{', '.join([*SAMPLER_NAMES, ASHA])}, or SAMPLER+asha)")
        if searcher.name in [s.name for s in out]:
            raise ReplayError(f"--searchers: {name!r} is listed twice")
        out.append(searcher)
    if not out:
        raise ReplayError("--searchers: name at least one searcher")
    return out


@dataclass
class TrialRecord:
    """What happened to one proposal in a replay."""

    number: int  # proposal order, from 0
    arch_id: str
    seed: int | None  # the stored seed that answered it (None: skipped or missing)
    state: str  # COMPLETE, PRUNED (ASHA), SKIPPED (answered without training), MISSING
    epochs: int  # epochs trained
    start: float  # simulated seconds
    end: float


@dataclass
class ReplayRun:
    """One repetition of one searcher."""

    searcher: str
    repetition: int
    trials: list[TrialRecord] = field(default_factory=list)  # in the order they ended

    def trained(self) -> list[TrialRecord]:
        """Trials that used compute (COMPLETE or PRUNED), in the order they ended."""
        return [t for t in self.trials if t.state in ("COMPLETE", "PRUNED")]


class TableCosts:
    """The driver's cost cache, answered from the table (an arch not in it: estimated, torch-free)."""

    def __init__(self, by_arch: dict[str, dict[str, Any]]) -> None:
        self.by_arch = by_arch

    def get(self, spec: Any) -> dict[str, Any]:
        """``{"macs", "params", ...}`` of ``spec``."""
        if spec.arch_id not in self.by_arch:
            from arch_space.estimate import estimate_macs, estimate_params

            self.by_arch[spec.arch_id] = {"macs": int(estimate_macs(spec)),
                                          "params": int(estimate_params(spec)),
                                          "activations": None, "latency_ms": None,
                                          "per_layer": []}
        return self.by_arch[spec.arch_id]


class Bench:
    """A table prepared for fast replays: per-epoch results per (arch, seed), the study's
    config and space, seed-mean accuracies and the exhaustive front."""

    def __init__(self, table: BenchTable) -> None:
        self.table = table
        try:
            self.cfg = run_config(table.provenance["config"])
        except Exception as exc:  # OmegaConf validation of an incompatible snapshot
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReplayError(f"{table.source}: its study config does not load ({first})") \
                from None
        frame = table.frame.sort_values(["arch_id", "seed", "epoch"])
        self.seeds: tuple[int, ...] = tuple(table.seeds)
        self.epochs = table.epochs
        self.curves: dict[str, dict[int, list[dict[str, float]]]] = {}
        self.costs: dict[str, dict[str, Any]] = {}
        finals: dict[str, list[float]] = {}
        columns = [c for c in (ACC, TIME, VAL_LOSS, TRAIN_ACC1, TRAIN_LOSS) if c in frame]
        for (arch_id, seed), rows in frame.groupby(["arch_id", "seed"], sort=True):
            macs, params = float(rows["macs"].iloc[0]), float(rows["params"].iloc[0])
            values = rows[columns].to_numpy(dtype=float)  # (epochs, metrics)
            epochs = rows["epoch"].to_numpy(dtype=float)
            curve = [{**dict(zip(columns, row.tolist(), strict=True)), "epoch": float(epoch),
                      "training_iteration": i + 1, "macs": macs, "params": params,
                      "epochs_planned": float(len(rows))}
                     for i, (row, epoch) in enumerate(zip(values, epochs, strict=True))]
            self.curves.setdefault(str(arch_id), {})[int(seed)] = curve
            finals.setdefault(str(arch_id), []).append(curve[-1][ACC])
            self.costs[str(arch_id)] = {"macs": int(macs), "params": int(params),
                                        "activations": None, "latency_ms": None,
                                        "per_layer": []}
        self.mean_acc = {a: statistics.fmean(v) for a, v in finals.items()}
        self.macs = {a: float(c["macs"]) for a, c in self.costs.items()}
        archs = sorted(self.mean_acc)
        self.reference = Reference.of([self.mean_acc[a] for a in archs],
                                      [self.macs[a] for a in archs])
        self.exhaustive_hv = self.reference.normalised(
            (self.mean_acc[a], self.macs[a]) for a in archs)
        self._space: Any = None
        self._cells: list[Any] | None = None

    @property
    def networks(self) -> int:
        """Networks in the table."""
        return len(self.curves)

    def space(self) -> Any:
        """The study's SearchSpace, rebuilt from its config (None for grid designs)."""
        if self._space is None and self.cfg.study.design == "space":
            from search.design.studies import StudyError, build_space

            try:
                self._space = build_space(self.cfg)
            except StudyError as exc:
                raise ReplayError(f"{self.table.source}: {exc}") from None
        return self._space

    def cells(self) -> list[Any]:
        """The grid cells: every point of the space, or the cells of a grid design."""
        if self._cells is None:
            from search.design.studies import StudyError, build_design

            try:
                if self.cfg.study.design == "space":
                    from search.design.space_grid import space_cells

                    self._cells = space_cells(self.space())
                else:
                    self._cells = list(build_design(self.cfg).cells)
            except (StudyError, ValueError) as exc:
                raise ReplayError(f"{self.table.source}: {exc}") from None
        return self._cells

    def check(self, searchers: Sequence[Searcher]) -> None:
        """Raise ``ReplayError`` before any replay when a searcher cannot run on this study."""
        if self.cfg.study.design != "space":
            for s in searchers:
                if s.sampler != "grid":
                    raise ReplayError(f"--searchers: {s.name!r} needs a study with a search "
                                      f"space (design=space); {self.table.source} is a "
                                      f"{self.cfg.study.design!r} grid (replay it with grid)")
        if any(s.sampler == "grid" for s in searchers):
            self.cells()
        else:
            self.space()

    def objectives(self) -> tuple[Any, Any]:
        """Tune's metric and mode of the study (as ``run_study`` derives them)."""
        objectives = list(self.cfg.study.objectives)
        mode = ["max" if m.startswith(("val/acc", "train/acc")) else "min" for m in objectives]
        if len(objectives) == 1:
            return objectives[0], mode[0]
        return objectives, mode


@dataclass
class _Running:
    trial: Any  # what the scheduler sees: .trial_id, .config
    record: TrialRecord
    curve: list[dict[str, float]]
    epoch: int = 0  # index of the next result


@dataclass
class _SimTrial:
    trial_id: str
    config: dict[str, Any]


def _grid_sampler_class() -> Any:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler, its search-space comparison first tried as one C-level ``==``.

        Same proposals (equal spaces compare equal either way; otherwise Optuna's own check
        decides), but a study of n trials no longer costs n^2 element-wise Python comparisons
        of the grid (8 s for a 243-cell grid).
        """

        def _same_search_space(self, search_space: Any) -> bool:
            return search_space == self._search_space or super()._same_search_space(search_space)

    return GridSampler


def _grid_searcher(bench: Bench, metric: Any, mode: Any, seed: int) -> tuple[Any, int]:
    """Optuna's GridSampler over the cells, wired as ``run_study``'s grid branch does."""
    from search.tuning import StudySearch

    ratio = bench.cfg.study.scheduler.band_ratio
    configs: dict[str, dict[str, Any]] = {}
    for cell in bench.cells():
        macs = bench.costs.get(cell.spec.arch_id, {}).get("macs", 0)
        configs[cell.key] = {"arch_id": cell.spec.arch_id, "seed": bench.seeds[0],
                             "label": cell.label, "family": cell.family, "macs": macs,
                             "band": mac_band(int(macs), ratio)}
    keys = list(configs)

    def space(trial: Any) -> dict[str, Any]:
        return dict(configs[trial.suggest_categorical("cell", keys)])

    sampler = _grid_sampler_class()({"cell": keys}, seed=seed)
    return StudySearch(space=space, metric=metric, mode=mode, sampler=sampler), len(keys)


def _space_searcher(bench: Bench, sampler: str, budget: int, costs: TableCosts, metric: Any,
                    mode: Any, seed: int) -> tuple[Any, int]:
    """The live driver's own searcher over the study's space."""
    from search.driver import _search_searcher

    space = bench.space()
    if space is None:
        bench.check([Searcher(sampler, sampler, False)])  # raises: no space to search
    cfg = copy.deepcopy(bench.cfg)
    cfg.study.sampler = sampler
    cfg.study.num_samples = budget
    design = Design(seeds=bench.seeds, space=space, num_samples=budget)
    return _search_searcher(cfg, design, costs, [], {}, metric, mode, sampler_seed=seed)


def make_searcher(bench: Bench, searcher: Searcher, *, budget: int, seed: int,
                  costs: TableCosts | None = None) -> tuple[Any, Any, int]:
    """``(searcher, scheduler, num_samples)`` as a live study with this sampler would make them."""
    import optuna
    from ray.tune.schedulers import FIFOScheduler

    from search.tuning import BandedASHA

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # As in a live run (driver.start_ray): Tune's own warnings (e.g. GridSampler stopping the
    # Optuna study at the last cell) are not the user's business; Optuna's experimental-API
    # notes neither.
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Tune times the define-by-run space; a loaded machine makes the first call look slow.
    warnings.filterwarnings("ignore", message="Define-by-run function", category=UserWarning)
    metric, mode = bench.objectives()
    if searcher.sampler == "grid":
        search, total = _grid_searcher(bench, metric, mode, seed)
        num_samples = min(budget, total)
    else:
        search, num_samples = _space_searcher(bench, searcher.sampler, budget,
                                              costs or TableCosts(dict(bench.costs)), metric,
                                              mode, seed)
    scheduler: Any = FIFOScheduler()
    stopped: set[str] = set()
    if searcher.asha:
        sched = bench.cfg.study.scheduler
        scheduler = BandedASHA(metric=ACC, mode="max", time_attr="epoch", max_t=bench.epochs,
                               grace_period=sched.grace_epochs,
                               reduction_factor=sched.reduction_factor)
        stopped = scheduler.stopped
    search.stopped = stopped
    return search, scheduler, num_samples


def replay(bench: Bench, searcher: Searcher, repetition: int, *, workers: int, budget: int,
           seed: int = 0, costs: TableCosts | None = None) -> ReplayRun:
    """One search of ``budget`` proposals with ``workers`` trials at a time, on a simulated clock."""
    np.random.seed(seed + repetition)  # Tune's ASHA draws its bracket from numpy's global RNG
    search, scheduler, num_samples = make_searcher(bench, searcher, budget=budget,
                                                   seed=seed + repetition, costs=costs)
    rng = np.random.default_rng([seed, repetition])
    order = {a: [int(s) for s in rng.permutation(sorted(by_seed))]
             for a, by_seed in sorted(bench.curves.items())}
    run = ReplayRun(searcher.name, repetition)
    clock, proposed, free, tick = 0.0, 0, max(1, workers), 0
    events: list[tuple[float, int, _Running]] = []

    def finish(item: _Running, state: str, result: Mapping[str, Any] | None) -> None:
        scheduler.on_trial_complete(None, item.trial, dict(result or {}))
        search.on_trial_complete(item.trial.trial_id, result=dict(result or {}))
        item.record.state, item.record.end = state, clock
        run.trials.append(item.record)

    while True:
        while free > 0 and proposed < num_samples:
            trial_id = f"r{repetition:03d}_{proposed:05d}"
            config = search.suggest(trial_id)
            if config is None:  # the searcher has nothing left to propose
                num_samples = proposed
                break
            trial = _SimTrial(trial_id, config)
            record = TrialRecord(proposed, str(config["arch_id"]), None, "", 0, clock, clock)
            proposed += 1
            scheduler.on_trial_add(None, trial)
            if config.get("skip"):  # the trainable reports once without training
                result = {ACC: float(config.get("skip_value", 0.0)),
                          "macs": float(config["macs"]), "epoch": 0.0, "skipped": 1.0,
                          "training_iteration": 1}
                if scheduler.on_trial_result(None, trial, result) != "STOP":
                    search.on_trial_result(trial_id, result)
                finish(_Running(trial, record, []), "SKIPPED", result)
                continue
            answer = _curve(bench, order, record.arch_id, int(config["seed"]))
            if answer is None:  # not in the table (a partial benchmark): a failed trial
                scheduler.on_trial_error(None, trial)
                search.on_trial_complete(trial_id, error=True)
                record.state = "MISSING"
                run.trials.append(record)
                continue
            record.seed, curve = answer
            item = _Running(trial, record, curve)
            free -= 1
            tick += 1
            heapq.heappush(events, (clock + item.curve[0][TIME], tick, item))
        if not events:
            break
        clock, _, item = heapq.heappop(events)
        result = item.curve[item.epoch]
        item.epoch += 1
        item.record.epochs = item.epoch
        decision = scheduler.on_trial_result(None, item.trial, result)
        if decision != "STOP":
            search.on_trial_result(item.trial.trial_id, result)
        if decision == "STOP" or item.epoch == len(item.curve):
            stopped = item.trial.trial_id in search.stopped
            finish(item, "PRUNED" if stopped else "COMPLETE", result)
            free += 1
        else:
            tick += 1
            heapq.heappush(events, (clock + item.curve[item.epoch][TIME], tick, item))
    return run


def _curve(bench: Bench, order: dict[str, list[int]], arch_id: str, config_seed: int
           ) -> tuple[int, list[dict[str, float]]] | None:
    """The stored curve that answers the k-th proposal of a network (k = the driver's seed
    index), or None when the table has no such network or too few of its seeds."""
    seeds = order.get(arch_id)
    k = bench.seeds.index(config_seed) if config_seed in bench.seeds else len(bench.seeds)
    if not seeds or k >= len(seeds):
        return None
    return seeds[k], bench.curves[arch_id][seeds[k]]


# --- what a run found -------------------------------------------------------------------------


def hv_trace(bench: Bench, run: ReplayRun) -> list[tuple[float, int, float]]:
    """``(simulated time, trials trained, normalised hypervolume)`` after every trained trial.

    The front is that of the networks trained to the end (COMPLETE), each scored with its mean
    accuracy over the table's seeds — what the study would report for them — so a lucky seed
    cannot lift a searcher above the exhaustive front.
    """
    front: list[tuple[float, float]] = []
    trace = []
    for n, trial in enumerate(run.trained(), start=1):
        if trial.state == "COMPLETE":
            front = pareto_2d([*front, (bench.mean_acc[trial.arch_id], bench.macs[trial.arch_id])])
        trace.append((trial.end, n, bench.reference.normalised(front)))
    return trace


def final_front(bench: Bench, arch_ids: Sequence[str]) -> frozenset[str]:
    """The networks on the (mean accuracy, MACs) front of ``arch_ids``."""
    points = {(bench.mean_acc[a], bench.macs[a]) for a in arch_ids}
    front = set(pareto_2d(points))
    return frozenset(a for a in arch_ids if (bench.mean_acc[a], bench.macs[a]) in front)
