"""Calibrate the synthetic tasks: accuracy of placement families at the default CPU budget.

Trains tiny video ResNets (widths 16-32-64-128, one block per stage) with ``search.train`` on each
task, one thread per run, ``--jobs`` runs at a time, and prints one row per run plus a summary
(mean ± std over seeds). The numbers in docs/calibration.md come from::

    python benchmarks/calibrate_tasks.py --tasks motion appearance long_order \\
        --placements 2d 3d bottom2 top2 --seeds 0 1 2 --jobs 2 --out calibration.jsonl

Overrides: ``--data key=value`` (SyntheticConfig fields) and ``--train key=value`` (TrainConfig).

``--study NAME`` calibrates a study preset instead: its arms exactly as the study builds them
(matched widths, every variant's data and training settings; ``--set key=value`` adds Hydra
overrides), a chosen few (``--arms``, ``--variants``) for a few epochs (``--epochs``), trained
without Ray; each row keeps the per-epoch validation accuracy and the seconds per epoch, from
which the study's cost is estimated::

    python benchmarks/calibrate_tasks.py --study placement_crossover --arms mc4 rmc4 \
        --seeds 0 --epochs 6 --jobs 2 --out docs/calibration.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

from search.results.metrics import TRAIN_ACC1, VAL_ACC1

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> (helper, argument); all share the tiny widths below.
PLACEMENTS: dict[str, tuple[str, int | str]] = {
    "2d": ("uniform", "2d"),  # R2D-style: per-frame convs, time pooled at the end
    "3d": ("uniform", "3d"),  # R3D: 3D stem and every stage
    "2plus1d": ("uniform", "2plus1d"),  # R(2+1)D
    "bottom1": ("bottom_heavy", 1),  # MC3: 3D stem + stage 1
    "bottom2": ("bottom_heavy", 2),  # MC4: 3D stem + stages 1-2
    "bottom3": ("bottom_heavy", 3),  # MC5
    "top1": ("top_heavy", 1),  # rMC5: 3D in stage 4 only
    "top2": ("top_heavy", 2),  # rMC4: 3D in stages 3-4
    "top3": ("top_heavy", 3),  # rMC3
}
NET = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "stem_width": 16}


def _parse(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_one(job: tuple[str, str, int, dict, dict]) -> dict:
    """Build, train and evaluate one network on one task; returns a result row."""
    task, placement, seed, data_over, train_over = job
    import torch

    torch.set_num_threads(1)
    from arch_space import presets
    from arch_space.builder import build_network
    from search.data.synthetic import default_cpu_config, make_synthetic
    from search.train import TrainConfig, train

    t0 = time.perf_counter()
    data_cfg = dataclasses.replace(default_cpu_config(task), **data_over)
    train_set, val_set = make_synthetic(data_cfg, seed=seed)
    t_data = time.perf_counter() - t0
    helper, arg = PLACEMENTS[placement]
    spec = getattr(presets, helper)(arg, **NET, num_classes=data_cfg.num_classes,
                                    clip_len=data_cfg.clip_len, crop_size=data_cfg.size)
    torch.manual_seed(seed)
    model = build_network(spec)
    cfg = dataclasses.replace(TrainConfig(), **train_over)
    result = train(model, train_set, val_set, cfg, seed=seed)
    return {"task": task, "placement": placement, "seed": seed, "status": result.status,
            "val_acc1": result.final.get(VAL_ACC1, float("nan")),
            "train_acc1": result.final.get(TRAIN_ACC1, float("nan")),
            "data_s": round(t_data, 2), "total_s": round(time.perf_counter() - t0, 2),
            "chance": 1.0 / data_cfg.num_classes, "data": data_over, "train": train_over}


def study_jobs(study: str, sets: list[str], arms: list[str] | None, variants: list[str] | None,
               seeds: list[int], epochs: int | None) -> list[tuple]:
    """One job per (variant, arm, seed) of a study preset, with its matched spec."""
    from search.design.composing import compose, studies_of
    from search.design.studies import build_design
    from search.design.variants import SEPARATOR

    jobs = []
    for cfg in studies_of(compose([f"study={study}", *sets])):
        variant = cfg.study.name.rpartition(SEPARATOR)[2] if cfg.study.variants else "-"
        if variants and variant not in variants:
            continue
        design = build_design(cfg)
        data = dataclasses.asdict(cfg.data)
        train = {k: v for k, v in dataclasses.asdict(cfg.train).items() if v is not None}
        if epochs:
            train["epochs"] = epochs
        for cell in design.cells:
            if arms and cell.label not in arms:
                continue
            pretrain = ({"epochs": cfg.study.pretrain_epochs,
                         "shuffle": cfg.study.pretrain_shuffle} if cell.pretrained else None)
            jobs += [(cfg.study.name, cell.label, seed, cell.spec.to_json(),
                      {**data, **cell.data}, train, pretrain) for seed in seeds]
    return jobs


def run_study_arm(job: tuple) -> dict:
    """Train one arm of a study (its matched spec, its data) for the given epochs."""
    name, label, seed, spec_json, data, train_over, pretrain = job
    import torch

    torch.set_num_threads(1)
    from arch_space.builder import build_network
    from arch_space.spec import ArchSpec
    from search.data.synthetic import make_synthetic
    from search.design.studies import synthetic_config
    from search.train import TrainConfig, train

    t0 = time.perf_counter()
    data_cfg = synthetic_config(data)
    train_set, val_set = make_synthetic(data_cfg, seed=seed)
    t_data = time.perf_counter() - t0
    spec = ArchSpec.from_json(spec_json)
    torch.manual_seed(seed)
    if pretrain:
        from arch_space import build_inflated
        from search.pretrain import PRETRAIN_CONFIG, as_2d, pretrain_2d

        cfg_2d = dataclasses.replace(PRETRAIN_CONFIG, epochs=pretrain["epochs"], num_threads=1)
        state = pretrain_2d(as_2d(spec), seed=seed, cfg=cfg_2d, shuffle_labels=pretrain["shuffle"])
        model = build_inflated(spec, state)
    else:
        model = build_network(spec)
    from search.design.config import PLATEAU_KEYS  # the trial's stopper, not the loop's

    cfg = TrainConfig(**{k: v for k, v in train_over.items()
                         if k != "channels_last" and k not in PLATEAU_KEYS})
    t_train = time.perf_counter()
    result = train(model, train_set, val_set, cfg, seed=seed)
    epoch_s = (time.perf_counter() - t_train) / max(1, len(result.history))
    return {"task": name, "placement": label, "seed": seed, "status": result.status,
            "val_acc1": result.final.get(VAL_ACC1, float("nan")),
            "train_acc1": result.final.get(TRAIN_ACC1, float("nan")),
            "val_curve": [round(h[VAL_ACC1], 4) for h in result.history],
            "epoch_s": round(epoch_s, 2), "data_s": round(t_data, 2),
            "total_s": round(time.perf_counter() - t0, 2),
            "chance": 1.0 / data_cfg.num_classes, "data": {k: data[k] for k in
                                                           ("task", "scale", "n_train")},
            "train": {"epochs": cfg.epochs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["motion"])
    parser.add_argument("--placements", nargs="+", default=["2d", "3d", "bottom2", "top2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--data", nargs="*", default=[], help="SyntheticConfig overrides k=v")
    parser.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides k=v")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    parser.add_argument("--summarize", nargs="+", type=Path, default=None,
                        help="only print the summary of these JSON-lines files")
    parser.add_argument("--study", default=None, help="calibrate this study preset's arms")
    parser.add_argument("--set", nargs="*", default=[], help="--study: Hydra overrides k=v")
    parser.add_argument("--arms", nargs="*", default=None, help="--study: these labels only")
    parser.add_argument("--variants", nargs="*", default=None, help="--study: these only")
    parser.add_argument("--epochs", type=int, default=None, help="--study: epochs per arm")
    args = parser.parse_args()
    if args.summarize:
        rows = [json.loads(line) for path in args.summarize for line in path.open()]
        tasks = list(dict.fromkeys(r["task"] for r in rows))
        placements = list(dict.fromkeys(r["placement"] for r in rows))
        _summary(rows, tasks, placements)
        return

    if args.study:
        jobs = study_jobs(args.study, args.set, args.arms, args.variants, args.seeds, args.epochs)
        worker, args.tasks = run_study_arm, list(dict.fromkeys(j[0] for j in jobs))
        args.placements = list(dict.fromkeys(j[1] for j in jobs))
    else:
        jobs = [(task, placement, seed, _parse(args.data), _parse(args.train))
                for task in args.tasks for seed in args.seeds for placement in args.placements]
        worker = run_one
    rows = []
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for row in pool.imap(worker, jobs):
            rows.append(row)
            print(f"{row['task']:<11} {row['placement']:<8} seed {row['seed']}  "
                  f"val/acc1 {row['val_acc1']:.3f}  train/acc1 {row['train_acc1']:.3f}  "
                  f"{row['total_s']:.1f} s  {row.get('val_curve', '')}", flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")

    _summary(rows, args.tasks, args.placements)


def _summary(rows: list[dict], tasks: list[str], placements: list[str]) -> None:
    print("\n| task | placement | val/acc1 mean ± std | per seed | chance | s/trial | s/epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for task in tasks:
        for placement in placements:
            sel = [r for r in rows if r["task"] == task and r["placement"] == placement]
            if not sel:
                continue
            sel.sort(key=lambda r: r["seed"])
            accs = [r["val_acc1"] for r in sel]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            secs = statistics.mean(r["total_s"] for r in sel)
            epoch = [r["epoch_s"] for r in sel if "epoch_s" in r]
            per_epoch = f"{statistics.mean(epoch):.1f}" if epoch else "–"
            per_seed = " ".join(f"{a:.3f}" for a in accs)
            print(f"| {task} | {placement} | {statistics.mean(accs):.3f} ± {std:.3f} | "
                  f"{per_seed} | {sel[0]['chance']:.3f} | {secs:.0f} | {per_epoch} |")


if __name__ == "__main__":
    main()
