"""Synthetic studies for tests, benchmarks, screenshots and demos, written through the store.

Not results of training: accuracies come from a small made-up model (temporal layers help,
lower ones a little more, with diminishing returns; a per-seed offset shared by every arch, as
in a paired design) so that every dashboard page has something to show without torch.

Small studies go through the store's writer functions one trial at a time, exactly as the
driver writes; large ones (benchmarks) use ORM bulk inserts into the same tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select

from analysis.placement import TEMPORAL_STEM_KINDS, describe, estimate_layer_macs
from arch_space.presets import preset
from arch_space.spec import TEMPORAL_KINDS, ArchSpec, BlockSpec, StageSpec, StemSpec
from search.results.metrics import TRAIN_ACC1, TRAIN_LOSS, VAL_ACC1, VAL_ACC5, VAL_LOSS
from search.results.schema import (
    ArchRow,
    EpochMetricRow,
    ResultRow,
    TrialRow,
    TrialState,
    ValueType,
    utcnow,
)
from search.results.store import (
    finish_trial,
    get_or_create_study,
    open_engine,
    record_epoch,
    session_scope,
    start_trial,
    upsert_arch,
)

WIDTHS = (64, 128, 256, 512)  # ResNet-18 stage widths
DEPTHS = (2, 2, 2, 2)
N_LAYERS = 1 + sum(DEPTHS)  # stem + blocks
# The R(2+1)D paper's ResNet-18 placements, bottom to top of the 3D budget.
PAPER_PRESETS = ("r2d", "mc2", "mc3", "mc4", "mc5", "rmc2", "rmc3", "rmc4", "rmc5", "r3d",
                 "r2plus1d")


def make_spec(kinds: Sequence[str], *, t_kernel: int = 3, clip_len: int = 8,
              crop_size: int = 112, num_classes: int = 10,
              t_kernels: Sequence[int] | None = None) -> ArchSpec:
    """A ResNet-18-shaped spec from ``N_LAYERS`` kinds (stem first); "2d" blocks get t=1.

    ``t_kernels`` gives each layer its own temporal extent (else every one gets ``t_kernel``).
    """
    if len(kinds) != N_LAYERS:
        raise ValueError(f"need {N_LAYERS} kinds (stem + {N_LAYERS - 1} blocks), got {len(kinds)}")
    extents = list(t_kernels) if t_kernels is not None else [t_kernel] * N_LAYERS
    stem_kind = kinds[0] if kinds[0] in ("2d", "3d", "2plus1d") else "3d"
    stem = StemSpec(kind=stem_kind, t_kernel=1 if stem_kind == "2d" else extents[0])
    stages, i = [], 1
    for s, (width, depth) in enumerate(zip(WIDTHS, DEPTHS, strict=True)):
        blocks = []
        for b in range(depth):
            kind = kinds[i]
            blocks.append(BlockSpec(kind=kind, t_kernel=1 if kind == "2d" else extents[i],
                                    s_stride=2 if s > 0 and b == 0 else 1))
            i += 1
        stages.append(StageSpec(width=width, blocks=tuple(blocks)))
    return ArchSpec(stem=stem, stages=tuple(stages), clip_len=clip_len, crop_size=crop_size,
                    num_classes=num_classes)


@dataclass
class SyntheticTrial:
    """One trial to write: its spec, seed, label, final state and per-epoch metrics."""

    spec: ArchSpec
    seed: int
    label: str | None
    state: TrialState
    epochs: list[dict[str, float]] = field(default_factory=list)  # epoch 1, 2, ...
    results: dict[str, float] = field(default_factory=dict)  # final metrics
    error: str | None = None
    family: str | None = None  # the design's group ("bottom-heavy", ...), as a grid cell has
    # trial columns of the protocol (schema 0003): data_seed, plateaued, train_val_gap,
    # chance_acc, majority_acc; left null when absent, as on an old database
    protocol: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # what a search sampled (params_json)


def _true_accuracy(kinds: Sequence[str]) -> float:
    gain = 0.0
    for i, kind in enumerate(kinds):
        if kind not in ("2d", "r2d"):
            depth = i / (len(kinds) - 1)
            gain += (0.035 * (1 - depth) + 0.012) * (1.08 if kind != "3d" else 1.0)
    return 0.52 + 0.22 * math.tanh(gain / 0.15)


def simulate(spec: ArchSpec, kinds: Sequence[str], seed: int, rng: np.random.Generator, *,
             label: str | None = None, n_epochs: int = 6, state: TrialState = TrialState.COMPLETE,
             seed_offset: float = 0.0, family: str | None = None, plateaued: bool = True,
             tau: float = 2.0, epoch_time_s: float = 30.0,
             true_accuracy: float | None = None) -> SyntheticTrial:
    """Made-up training of one (spec, seed): a saturating curve around the placement's accuracy
    (``true_accuracy``, else the module's made-up model of ``kinds``; the val loss falls as the
    accuracy rises), with the protocol facts the driver records.

    ``tau`` is the curve's time constant in epochs (larger: slower learning); epoch times scatter
    around ``epoch_time_s`` by 1/30 of it.
    """
    truth = _true_accuracy(kinds) if true_accuracy is None else true_accuracy
    final = truth + seed_offset + rng.normal(0, 0.006)
    last = n_epochs if state is not TrialState.PRUNED else max(1, n_epochs // 3)
    if state is TrialState.FAILED:
        last = max(1, n_epochs // 2)
    epochs = []
    for e in range(1, last + 1):
        frac = (1 - math.exp(-e / tau)) / (1 - math.exp(-n_epochs / tau))
        acc = float(np.clip(0.1 + (final - 0.1) * frac + rng.normal(0, 0.004), 0, 1))
        epochs.append({TRAIN_LOSS: 2.3 * (1 - 0.8 * frac) + rng.normal(0, 0.02),
                       TRAIN_ACC1: min(1.0, acc + 0.05 * frac), VAL_LOSS: 2.3 * (1 - 0.7 * frac) - 2.0 * (final - 0.5) * frac
                       + rng.normal(0, 0.02),
                       VAL_ACC1: acc, VAL_ACC5: min(1.0, acc + 0.2 + rng.normal(0, 0.01)),
                       "lr": 0.1 * 0.5 * (1 + math.cos(math.pi * e / n_epochs)),
                       "epoch_time_s": epoch_time_s + rng.normal(0, 1) * epoch_time_s / 30.0})
    results = dict(epochs[-1]) if state is not TrialState.FAILED else {}
    if state is TrialState.FAILED:
        results = {TRAIN_LOSS: math.nan}
    chance = 1.0 / spec.num_classes
    protocol: dict[str, Any] = {"data_seed": seed, "chance_acc": chance,
                                "majority_acc": round(chance + 0.025, 4)}
    if state is TrialState.COMPLETE:
        protocol.update(plateaued=plateaued,
                        train_val_gap=results[TRAIN_ACC1] - results[VAL_ACC1])
    return SyntheticTrial(spec, seed, label, state, epochs, results,
                          error="loss became NaN" if state is TrialState.FAILED else None,
                          family=family, protocol=protocol)


def _cost(spec: ArchSpec) -> dict[str, Any]:
    per_block = estimate_layer_macs(spec)
    sizes = spec.feature_sizes()
    per_layer = [{"layer": name, "kind": spec.kinds().get(name, "linear"), "macs": macs,
                  "params": int(macs / max(1, math.prod(sizes.get(name, (1, 1, 1)))))}
                 for name, macs in per_block.items()]
    macs = sum(per_block.values())
    return {"macs": macs, "params": sum(p["params"] for p in per_layer),
            "latency_ms": round(2.0 * macs / 1e9 + 3.0, 3), "per_layer": per_layer}


def bottom_vs_top_trials(seeds: Sequence[int] = (0, 1, 2), n_epochs: int = 6,
                         rng_seed: int = 0) -> list[SyntheticTrial]:
    """The paper's placements (``arch_space.presets``), every seed, with their placement
    family as the design's group; one PRUNED, one FAILED and one not plateaued (``mc2``, last
    seed) trial for realism."""
    rng = np.random.default_rng(rng_seed)
    offsets = {s: rng.normal(0, 0.012) for s in seeds}
    trials = []
    for name in PAPER_PRESETS:
        spec = preset(name, num_classes=10, clip_len=8, crop_size=112)
        kinds = list(spec.kinds().values())
        family = describe(spec).family
        for seed in seeds:
            state = TrialState.COMPLETE
            if (name, seed) == ("rmc4", seeds[-1]):
                state = TrialState.PRUNED
            elif (name, seed) == ("r2plus1d", seeds[-1]):
                state = TrialState.FAILED
            trials.append(simulate(spec, kinds, seed, rng, label=name, n_epochs=n_epochs,
                                   state=state, seed_offset=offsets[seed], family=family,
                                   plateaued=(name, seed) != ("mc2", seeds[-1])))
    return trials


def _search_params(spec: ArchSpec) -> dict[str, Any]:
    """The parameters a per-block search would have sampled for ``spec`` (extents only where
    the layer is temporal, as ``SearchSpace.sample`` suggests them)."""
    params: dict[str, Any] = {"stem.kind": spec.stem.kind}
    if spec.stem.kind in TEMPORAL_STEM_KINDS:
        params["stem.t_kernel"] = spec.stem.t_kernel
    for path, block in spec.block_paths():
        params[f"{path}.kind"] = block.kind
        if block.kind in TEMPORAL_KINDS:
            params[f"{path}.t_kernel"] = block.t_kernel
    return params


def random_trials(n_archs: int, seeds: Sequence[int] = (0,), n_epochs: int = 6,
                  rng_seed: int = 1,
                  kinds: Sequence[str] = ("2d", "3d", "2plus1d", "p3d_b", "p3d_c"),
                  pruned_frac: float = 0.1, *, t_kernels: Sequence[int] = (3,),
                  truth: Callable[[ArchSpec], float] | None = None) -> list[SyntheticTrial]:
    """A random placement search: a kind per block (stem: 2d/3d/2plus1d), uniformly, without
    repeats; some trials PRUNED. Each trial records the parameters a search would have sampled.

    Args:
        t_kernels: temporal extents to draw per layer (one value: every layer gets it).
        truth: the true accuracy of a spec (default: the module's made-up model), e.g. one that
            depends on a single position, to test that an analysis finds that position.
    """
    stem_kinds = [k for k in ("2d", "3d", "2plus1d") if k in kinds] or ["3d"]
    possible = len(stem_kinds) * len(kinds) ** (N_LAYERS - 1)
    if n_archs > possible:
        raise ValueError(f"only {possible} distinct placements of {list(kinds)}; "
                         f"asked for {n_archs}")
    rng = np.random.default_rng(rng_seed)
    offsets = {s: rng.normal(0, 0.012) for s in seeds}
    trials: list[SyntheticTrial] = []
    seen: set[tuple[str, ...]] = set()
    seen_specs: set[str] = set()
    while len(seen_specs) < n_archs:
        choice = (str(rng.choice(stem_kinds)),
                  *(str(k) for k in rng.choice(kinds, size=N_LAYERS - 1)))
        extents = ([int(t) for t in rng.choice(t_kernels, size=N_LAYERS)]
                   if len(t_kernels) > 1 else None)  # draws only when there is a choice
        if choice in seen and extents is None:
            continue
        seen.add(choice)
        spec = make_spec(choice, t_kernel=t_kernels[0], t_kernels=extents)
        if spec.arch_id in seen_specs:
            continue
        seen_specs.add(spec.arch_id)
        for seed in seeds:
            state = TrialState.PRUNED if rng.random() < pruned_frac else TrialState.COMPLETE
            trial = simulate(spec, choice, seed, rng, n_epochs=n_epochs, state=state,
                             seed_offset=offsets[seed],
                             true_accuracy=truth(spec) if truth is not None else None)
            trial.params = _search_params(spec)
            trials.append(trial)
    return trials


def write_trials(engine: Engine, study: str, trials: Sequence[SyntheticTrial], *,
                 kind: str = "grid", config: dict[str, Any] | None = None) -> None:
    """Write trials the way the driver does: store functions, one trial at a time."""
    with session_scope(engine) as s:
        row = get_or_create_study(s, study, kind=kind, config=config or {"synthetic": True})
        study_id = row.id
    costs: dict[str, dict[str, Any]] = {}
    for t in trials:
        with session_scope(engine) as s:
            arch_id = t.spec.arch_id
            if arch_id not in costs:
                costs[arch_id] = _cost(t.spec)
                upsert_arch(s, arch_id, t.spec.to_json(), **costs[arch_id])
            trial = start_trial(s, study_id, arch_id=arch_id, seed=t.seed, label=t.label,
                                family=t.family, params=t.params)
            for epoch, metrics in enumerate(t.epochs, start=1):
                record_epoch(s, trial.id, epoch, metrics)
            finish_trial(s, trial.id, t.state, results=t.results, error=t.error)
            for name, value in t.protocol.items():
                setattr(trial, name, value)
            # the simulated wall-clock time, so that "compute used" is not zero
            trial.finished_at = trial.started_at + timedelta(
                seconds=sum(e.get("epoch_time_s", 0.0) for e in t.epochs))


def bulk_write_trials(engine: Engine, study: str, trials: Sequence[SyntheticTrial], *,
                      kind: str, config: dict[str, Any], with_epochs: bool = True,
                      cost_of: Any = None) -> None:
    """Write trials through ORM bulk inserts into the driver's tables (large studies).

    ``cost_of(spec) -> {"macs", "params", "latency_ms"}`` (default: the made-up ``_cost``).
    """
    cost_of = cost_of or _cost
    now = utcnow()
    with session_scope(engine) as s:
        study_id = get_or_create_study(s, study, kind=kind, config=config).id
        known = set(s.scalars(select(ArchRow.arch_id)))
        archs = {}
        for t in trials:
            arch_id = t.spec.arch_id
            if arch_id not in known and arch_id not in archs:
                cost = cost_of(t.spec)
                archs[arch_id] = {"arch_id": arch_id, "spec_json": t.spec.to_json(),
                                  "macs": cost["macs"], "params": cost["params"],
                                  "latency_ms": cost["latency_ms"], "per_layer_json": "[]",
                                  "created_at": now}
        if archs:
            s.execute(insert(ArchRow), list(archs.values()))
        first_id = (s.scalar(select(TrialRow.id).order_by(TrialRow.id.desc()).limit(1)) or 0) + 1
        s.execute(insert(TrialRow), [
            {"id": first_id + i, "study_id": study_id, "number": i, "arch_id": t.spec.arch_id,
             "seed": t.seed, "label": t.label, "family": t.family, "params_json": json.dumps(t.params),
             "state": t.state, "attempt": 1, "started_at": now, "finished_at": now,
             "resources_json": "{}", **t.protocol}
            for i, t in enumerate(trials)])
        results: list[dict[str, Any]] = []
        epochs: list[dict[str, Any]] = []
        for i, t in enumerate(trials):
            for name, value in t.results.items():
                results.append({"trial_id": first_id + i, "name": name, "value": value,
                                "value_type": ValueType.FINITE})
            if with_epochs:
                for e, metrics in enumerate(t.epochs, start=1):
                    epochs.extend({"trial_id": first_id + i, "epoch": e, "name": name,
                                   "value": value, "value_type": ValueType.FINITE}
                                  for name, value in metrics.items())
        s.execute(insert(ResultRow), results)
        if epochs:
            s.execute(insert(EpochMetricRow), epochs)


def bulk_write_random(engine: Engine, study: str, n_trials: int, *, seeds: int = 5,
                      n_epochs: int = 0, rng_seed: int = 0) -> None:
    """A large random-placement study: ``n_trials // seeds`` archs, each run with ``seeds``
    seeds, final metrics for every trial. Per-epoch rows only when ``n_epochs`` > 0 (then
    trial by trial through ``bulk_write_trials``); otherwise ``analysis.synthetic_bulk``
    writes it in bulk (a million trials in minutes)."""
    if n_epochs > 0:
        trials = random_trials(max(1, n_trials // seeds), seeds=tuple(range(seeds)),
                               n_epochs=n_epochs, rng_seed=rng_seed)[:n_trials]
        bulk_write_trials(engine, study, trials, kind="random",
                          config={"synthetic": True, "n_trials": n_trials})
        return
    from analysis.synthetic_bulk import bulk_write_random as bulk

    bulk(engine, study, n_trials, seeds=seeds, rng_seed=rng_seed)


# --- an exhaustive benchmark (search.replay) --------------------------------------------------

# Made-up epoch times of the benchmark's tiny networks: a fixed part plus a part per million
# MACs, near the CPU seconds one epoch of study=bench_video took on one core (all-2D, 10 M MACs:
# 1.0 s; 3D stem + stage 1: 1.5 s; all-(2+1)D: 2.3 s).
EPOCH_BASE_S = 0.6
EPOCH_S_PER_MMAC = 0.05


def exhaustive_trials(cells: Sequence[Any], seeds: Sequence[int] = (0, 1, 2), n_epochs: int = 6,
                      rng_seed: int = 0) -> list[SyntheticTrial]:
    """Every cell of an exhaustive grid (``search.design.space_grid.space_cells``) x every seed,
    COMPLETE, with per-epoch curves: accuracy from the placement model above, learning slower
    the more temporal layers a network has (so early epochs can mislead early stopping), epoch
    times growing with MACs (``EPOCH_BASE_S`` + ``EPOCH_S_PER_MMAC`` per million MACs)."""
    from arch_space.estimate import estimate_macs

    rng = np.random.default_rng(rng_seed)
    offsets = {s: rng.normal(0, 0.012) for s in seeds}
    trials = []
    for cell in cells:
        kinds = list(cell.spec.kinds().values())
        temporal = sum(k not in ("2d", "r2d") for k in kinds)
        seconds = EPOCH_BASE_S + EPOCH_S_PER_MMAC * estimate_macs(cell.spec) / 1e6
        for seed in seeds:
            trials.append(simulate(cell.spec, kinds, seed, rng, label=cell.label,
                                   n_epochs=n_epochs, seed_offset=offsets[seed],
                                   tau=1.0 + 0.6 * temporal, epoch_time_s=seconds))
    return trials


def estimated_cost(spec: ArchSpec) -> dict[str, Any]:
    """MACs and parameters from ``arch_space.estimate`` (torch-free; what fvcore would count)."""
    from arch_space.estimate import estimate_macs, estimate_params

    return {"macs": estimate_macs(spec), "params": estimate_params(spec), "latency_ms": None}


DEMO_CONTRASTS = ("bottom-heavy - top-heavy", "each vs 2D")  # declared by the demo study


def make_demo_db(url: str, *, seeds: Sequence[int] = (0, 1, 2), n_random: int = 60) -> Engine:
    """A database with a ``bottom_vs_top`` grid study and a ``random_placement`` search."""
    engine = open_engine(url, create=True)
    write_trials(engine, "bottom_vs_top", bottom_vs_top_trials(seeds),
                 config={"synthetic": True, "seeds": list(seeds),
                         "num_trials": len(PAPER_PRESETS) * len(seeds),
                         "study": {"contrasts": list(DEMO_CONTRASTS)}})
    if n_random:
        write_trials(engine, "random_placement", random_trials(n_random, seeds=(0, 1)),
                     kind="random", config={"synthetic": True, "num_trials": 2 * n_random})
    return engine


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.synthetic demo.db``: write a demo database for the dashboard."""
    import argparse

    parser = argparse.ArgumentParser(description="Write a synthetic vidarch results database "
                                                 "(made-up accuracies, real schema).")
    parser.add_argument("path", help="SQLite file to create, e.g. demo.db")
    parser.add_argument("--random", type=int, default=60, help="archs of the random study")
    args = parser.parse_args(argv)
    make_demo_db(f"sqlite:///{args.path}", n_random=args.random).dispose()
    from search.results.loopback import dashboard_command

    print(f"wrote {args.path}; view it with: {dashboard_command(f'sqlite:///{args.path}')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
