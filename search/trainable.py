"""The Ray Tune function trainable: build the network, train it, report once per epoch.

Runs in a Ray worker. It never opens the results database: it reports metrics (and a
checkpoint) to Tune, and the driver's callback writes them. Everything it needs arrives in the
trial config (the cell: spec JSON, seed, label, ...) and in ``TrialContext`` (the study-wide
settings, passed once with ``tune.with_parameters``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKPOINT_FILE = "state.pt"
SKIPPED_METRIC = "data/skipped"  # real video: videos skipped as unreadable so far


class TrialFailure(RuntimeError):
    """A trial ended without a usable result (NaN loss, injected fault); the message says why."""


@dataclass(frozen=True)
class TrialContext:
    """Study-wide settings every trial shares (plain data, pickled once by Ray)."""

    data: dict[str, Any]  # search.config.DataConfig fields
    train: dict[str, Any]  # search.config.TrainSettings fields
    epochs: int  # planned epochs (a trial that reports fewer was stopped early: PRUNED)
    num_threads: int  # torch intra-op threads (= CPUs reserved per trial)
    device: str  # "auto", "cpu" or "cuda"
    pretrain_epochs: int = 3  # inflation study: epochs of 2D pretraining on frames
    pretrain_shuffle: bool = False  # inflation's compute control: pretrain on shuffled labels
    hooks: dict[str, Any] = field(default_factory=dict)  # testing hooks (FaultHooks fields)


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: one (arch, seed) cell, reported once per epoch."""
    from ray import tune

    if config.get("skip"):  # a proposal the driver answers without training (budget, repeat)
        tune.report({"val/acc1": float(config.get("skip_value", 0.0)),
                     "macs": float(config["macs"]), "epoch": 0.0, "skipped": 1.0})
        return

    import torch

    from arch_space import build_network
    from arch_space.spec import ArchSpec
    from search.train import TrainConfig, train

    torch.set_num_threads(max(1, context.num_threads))
    seed = int(config["seed"])
    hooks = context.hooks
    spec = ArchSpec.from_json(config["spec_json"])
    if hooks.get("fail_on_seed") is not None and seed == hooks["fail_on_seed"]:
        raise TrialFailure(f"injected failure (testing.fail_on_seed={seed})")
    data = {**context.data, **json.loads(config.get("data_json") or "{}")}
    train_set, val_set = _datasets(_hashable(data))
    video = data.get("source", "synthetic") != "synthetic"

    if config.get("pretrained"):
        model = _inflated_model(spec, context, seed)
    else:
        model = build_network(spec)

    settings = dict(context.train)
    channels_last = settings.pop("channels_last", "auto")
    settings["channels_last"] = {"true": True, "false": False}.get(str(channels_last).lower(),
                                                                   channels_last)
    settings.update(epochs=context.epochs, num_threads=context.num_threads,
                    device=_device(context.device))
    if video:  # decode in DataLoader workers (the trial's other CPUs by default)
        workers = data.get("num_workers")
        if workers is None:
            workers = settings.get("num_workers") or max(0, context.num_threads - 1)
        settings["num_workers"] = int(workers)
    train_cfg = TrainConfig(**settings)

    checkpoint = _load_checkpoint(config.get("resume_from"))
    pending: dict[str, float] = {}
    extra = {"macs": float(config["macs"]), "params": float(config.get("params", 0)),
             "epochs_planned": float(context.epochs)}

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        pending.clear()
        pending.update(metrics, epoch=float(epoch))
        if video:  # distinct unreadable videos found so far (train + val, all workers)
            pending[SKIPPED_METRIC] = float(train_set.failures + val_set.failures)

    reported = []  # epochs reported to Tune by this run

    def save_checkpoint(state: dict[str, Any]) -> None:
        reported.append(state.get("epoch"))
        if hooks.get("epoch_sleep_s"):
            time.sleep(float(hooks["epoch_sleep_s"]))
        # Staged inside the trial's own directory: a worker killed mid-report leaves nothing
        # behind in /tmp.
        with tempfile.TemporaryDirectory(prefix="staging-", dir=_trial_dir()) as tmp:
            torch.save(state, Path(tmp) / CHECKPOINT_FILE)
            tune.report({**pending, **extra}, checkpoint=tune.Checkpoint.from_directory(tmp))

    if hooks.get("nan_on_seed") is not None and seed == hooks["nan_on_seed"]:
        _poison(model)
    result = train(model, train_set, val_set, train_cfg, seed=seed, on_epoch=on_epoch,
                   checkpoint=checkpoint, save_checkpoint=save_checkpoint)
    if result.status != "ok":
        raise TrialFailure(f"nan: {result.reason or 'non-finite loss'}")
    if not reported and result.final:
        # Resumed from a checkpoint of the last epoch (the driver died before it recorded the
        # end): report that epoch again so the trial completes with its metrics.
        tune.report({**result.final, **extra})


def _hashable(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A data config as a cache key (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in data.items()))


@functools.lru_cache(maxsize=4)
def _datasets(items: tuple[tuple[str, Any], ...]) -> tuple[Any, Any]:
    """The train / val sets of a data config (cached per worker process: trials share them).

    Synthetic clips are made in memory; real video is listed here and decoded on the fly by the
    DataLoader workers, so its files must be readable from the node this trial runs on.
    """
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    if data.get("source", "synthetic") != "synthetic":
        from search.data.video import video_sets

        return video_sets(data)
    from search.data.synthetic import make_synthetic
    from search.studies import synthetic_config

    return make_synthetic(synthetic_config(data), seed=int(data.get("data_seed", 0)))


def _trial_dir() -> str | None:
    """The trial's local directory (None outside Tune: the system temp dir is used)."""
    from ray import tune

    try:
        path = tune.get_context().get_trial_dir()
    except Exception:  # pragma: no cover - outside a Tune session
        return None
    if path and os.path.isdir(path):
        return path
    return None


def _device(device: str) -> str:
    if device == "cuda":
        return "cuda"
    if device == "cpu":
        return "cpu"
    import ray

    gpus = ray.get_gpu_ids() if ray.is_initialized() else []
    return "cuda" if gpus else "cpu"


def _load_checkpoint(path: str | None) -> dict[str, Any] | None:
    """The train state saved at ``path`` (a Tune checkpoint directory or URI), or None."""
    if not path:
        return None
    import torch
    from ray import tune

    try:
        with tune.Checkpoint(path).as_directory() as local:
            file = Path(local) / CHECKPOINT_FILE
            if not file.is_file():
                return None
            return torch.load(file, map_location="cpu", weights_only=False)
    except (OSError, FileNotFoundError, RuntimeError):
        return None  # a vanished or broken checkpoint: start the cell from scratch


def _poison(model: Any) -> None:
    """Testing hook: make every loss NaN (the train loop then ends with status 'nan')."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.fill_(math.nan)


def _inflated_model(spec: Any, context: TrialContext, seed: int) -> Any:
    """Inflation study: a 2D twin pretrained on single frames, inflated into ``spec`` (I3D)."""
    from arch_space import build_inflated
    from search.pretrain import as_2d

    state_2d = _pretrained_2d(as_2d(spec).to_json(), seed, context.pretrain_epochs,
                              context.num_threads, context.pretrain_shuffle)
    return build_inflated(spec, state_2d)


@functools.lru_cache(maxsize=4)
def _pretrained_2d(spec_2d_json: str, seed: int, epochs: int, num_threads: int,
                   shuffle: bool = False) -> Any:
    """2D weights for a spec (cached per worker: every kind of a seed shares its 2D twin);
    ``shuffle``: the compute control, pretrained on shuffled labels."""
    import dataclasses

    from arch_space.spec import ArchSpec
    from search.pretrain import PRETRAIN_CONFIG, pretrain_2d

    # as_2d of the 2D twin is the twin itself, so it is a valid argument for pretrain_2d.
    cfg = dataclasses.replace(PRETRAIN_CONFIG, epochs=epochs, num_threads=num_threads)
    return pretrain_2d(ArchSpec.from_json(spec_2d_json), seed=seed, cfg=cfg, shuffle_labels=shuffle)


def worker_env() -> dict[str, str]:
    """Environment for Ray workers: quiet, and torch threads from the trial (not the node)."""
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
