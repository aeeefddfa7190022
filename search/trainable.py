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

from search.checkpoints import RESUME_NOTE
from search.results.metrics import VAL_ACC1

CHECKPOINT_FILE = "state.pt"
SKIPPED_METRIC = "data/skipped"  # real video: videos skipped as unreadable so far


class TrialFailure(RuntimeError):
    """A trial ended without a usable result (NaN loss, injected fault); the message says why."""


@dataclass(frozen=True)
class TrialContext:
    """Study-wide settings every trial shares (plain data, pickled once by Ray)."""

    data: dict[str, Any]  # search.design.config.DataConfig fields
    train: dict[str, Any]  # search.design.config.TrainSettings fields
    epochs: int  # planned epochs: the maximum budget (fewer: a plateau, ASHA, or interrupted)
    num_threads: int  # torch intra-op threads (= CPUs reserved per trial)
    device: str  # "auto", "cpu" or "cuda"
    latency_runs: int = 0  # timed forward passes of the network on the trial's device; 0: none
    pretrain_epochs: int = 3  # inflation study: epochs of 2D pretraining on frames
    pretrain_shuffle: bool = False  # inflation's compute control: pretrain on shuffled labels
    hooks: dict[str, Any] = field(default_factory=dict)  # test-only faults (search.faults)
    checkpoint_root: str = ""  # Tune storage path: resume points are read only from inside it
    study: str = ""  # ... and only from this study's experiment directories


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: one (arch, seed) cell, reported once per epoch."""
    from ray import tune

    if config.get("skip"):  # a proposal the driver answers without training (budget, repeat)
        tune.report({VAL_ACC1: float(config.get("skip_value", 0.0)),
                     "macs": float(config["macs"]), "epoch": 0.0, "skipped": 1.0})
        return

    import torch

    from arch_space import build_network
    from arch_space.spec import ArchSpec
    from search.design.config import PLATEAU_KEYS
    from search.design.protocol import baselines
    from search.train import TrainConfig, seed_everything, train

    torch.set_num_threads(max(1, context.num_threads))
    seed = int(config["seed"])
    hooks = context.hooks
    spec = ArchSpec.from_json(config["spec_json"])
    if hooks.get("fail_on_seed") is not None and seed == hooks["fail_on_seed"]:
        raise TrialFailure(f"injected failure (fail_on_seed={seed}, VIDARCH_TEST_FAULTS)")
    # The clips this trial draws: the study's data, the cell's overrides, and the effective
    # data seed the driver planned (search.design.protocol.trial_data_seed).
    data = {**context.data, **json.loads(config.get("data_json") or "{}"),
            "data_seed": int(config["data_seed"])}
    video = data.get("source", "synthetic") != "synthetic"
    train_set, val_set = _video_sets(data) if video else _synthetic_sets(_hashable(data))

    # Everything below that draws random numbers (pretraining, a new head, the weights) starts
    # from this seed, so nothing depends on what ran before in this worker process.
    state_2d = None
    if config.get("pretrained"):
        state_2d = _pretrained_2d_of(spec, context, seed, int(config["data_seed"]))
    seed_everything(seed)
    if state_2d is not None:
        from arch_space import build_inflated

        model = build_inflated(spec, state_2d)
    else:
        model = build_network(spec)

    settings = {k: v for k, v in context.train.items() if k not in PLATEAU_KEYS}
    channels_last = settings.pop("channels_last", "auto")
    settings["channels_last"] = {"true": True, "false": False}.get(str(channels_last).lower(),
                                                                   channels_last)
    settings.update(epochs=context.epochs, num_threads=context.num_threads,
                    device=_device(context.device))
    if video:  # decode in DataLoader workers (the trial's other CPUs by default)
        workers = data.get("num_workers")
        if workers is None:
            workers = settings.get("num_workers") or max(0, context.num_threads - 1)
        settings["num_workers"] = int(workers) if data.get("decode_device") != "cuda" else 0
        if data.get("cache"):  # decode once (per node and data setting), read every epoch
            for dataset in (train_set, val_set):
                dataset.use_cache(data["cache_dir"], workers=settings["num_workers"])
    train_cfg = TrainConfig(**settings)

    checkpoint, resume_note = _load_checkpoint(config.get("resume_from"), model, context)
    from search.hardware import HARDWARE_RESULT, describe_json

    hardware = {HARDWARE_RESULT: describe_json(train_cfg.device)}  # with the first result only
    chance, majority = baselines(_labels(val_set), int(val_set.num_classes))
    extra: dict[str, Any] = {"macs": float(config["macs"]),
                             "params": float(config.get("params", 0)),
                             "epochs_planned": float(context.epochs), "chance_acc": chance,
                             "majority_acc": majority}
    if context.latency_runs:  # before training: the network as built, on the trial's device
        from arch_space.cost import measure_latency
        from search.results.metrics import LATENCY_MS

        extra[LATENCY_MS] = measure_latency(model, spec, context.latency_runs, train_cfg.device)
    if resume_note:  # the driver stores it with the trial
        extra[RESUME_NOTE] = resume_note
    if checkpoint is not None and _ended_at_plateau(checkpoint, context):
        # The driver died after the stopper ended this trial, before it recorded the end: report
        # the last epoch again (the stopper ends it there) instead of training on.
        tune.report({**checkpoint["history"][-1], **extra, **hardware})
        return
    pending: dict[str, float] = {}

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
            tune.report({**pending, **extra, **hardware},
                        checkpoint=tune.Checkpoint.from_directory(tmp))
            hardware.clear()

    if hooks.get("nan_on_seed") is not None and seed == hooks["nan_on_seed"]:
        _poison(model)
    result = train(model, train_set, val_set, train_cfg, seed=seed, on_epoch=on_epoch,
                   checkpoint=checkpoint, save_checkpoint=save_checkpoint)
    if result.status != "ok":
        raise TrialFailure(f"nan: {result.reason or 'non-finite loss'}")
    if not reported and result.final:
        # Resumed from a checkpoint of the last epoch (the driver died before it recorded the
        # end): report that epoch again so the trial completes with its metrics.
        tune.report({**result.final, **extra, **hardware})


def _ended_at_plateau(checkpoint: dict[str, Any], context: TrialContext) -> bool:
    """True when plateau stopping is on and the checkpoint's curve has plateaued already."""
    from search.design.protocol import curve_plateaued

    history = checkpoint.get("history") or []
    metric = context.train.get("plateau_metric")
    if not context.train.get("plateau_stop") or not history or metric is None:
        return False
    return len(history) < context.epochs and curve_plateaued(
        [float(h[metric]) for h in history], context.train)


def _hashable(data: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A data config as a cache key (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in data.items()))


@functools.lru_cache(maxsize=2)
def _synthetic_sets(items: tuple[tuple[str, Any], ...]) -> tuple[Any, Any]:
    """The synthetic train / val clips of a data config, made in memory.

    Cached per worker process, keyed by every data field including the effective
    ``data_seed``: trials of the same data share the tensors (the train loop never writes them).
    """
    from search.data.synthetic import make_synthetic
    from search.design.studies import synthetic_config

    data: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    return make_synthetic(synthetic_config(data), seed=int(data["data_seed"]))


def _video_sets(data: dict[str, Any]) -> tuple[Any, Any]:
    """Real video: listed per trial (not cached: a dataset counts the unreadable videos it met,
    and that count is a metric of this trial), decoded on the fly by the DataLoader workers; the
    files must be readable from the node this trial runs on."""
    from search.data.video import video_sets

    return video_sets(data)


def _labels(dataset: Any) -> list[int]:
    """The labels of a ClipSet (tensor) or a VideoDataset (``(path, label)`` items)."""
    if hasattr(dataset, "labels"):
        return [int(y) for y in dataset.labels.tolist()]
    return [int(y) for _, y in dataset.items]


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


def _load_checkpoint(path: str | None, model: Any, context: TrialContext
                     ) -> tuple[dict[str, Any] | None, str | None]:
    """The train state saved at ``path`` for ``model``, and why it is not used when it is not.

    Weights only, from the study's own checkpoint directory, and only a state of this network
    (``search.checkpoints.load_train_state``); otherwise the cell starts from scratch.
    """
    from search.checkpoints import load_train_state

    return load_train_state(path, model, root=context.checkpoint_root, study=context.study,
                            epochs=context.epochs)


def _poison(model: Any) -> None:
    """Testing hook: make every loss NaN (the train loop then ends with status 'nan')."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.fill_(math.nan)


def _pretrained_2d_of(spec: Any, context: TrialContext, seed: int, data_seed: int) -> Any:
    """Inflation study: the weights of ``spec``'s 2D twin pretrained on single frames (I3D)."""
    from search.pretrain import as_2d

    return _pretrained_2d(as_2d(spec).to_json(), seed, data_seed, context.pretrain_epochs,
                          context.num_threads, context.pretrain_shuffle)


@functools.lru_cache(maxsize=4)
def _pretrained_2d(spec_2d_json: str, seed: int, data_seed: int, epochs: int,
                   num_threads: int, shuffle: bool = False) -> Any:
    """2D weights for a spec (cached per worker: every kind of a seed shares its 2D twin).

    Keyed by all it depends on: the twin, the seed (init, image order), the data seed (which
    images are drawn), the epochs, the threads and ``shuffle`` (the compute control, pretrained
    on shuffled labels). ``pretrain_2d`` seeds before it builds.
    """
    import dataclasses

    from arch_space.spec import ArchSpec
    from search.pretrain import PRETRAIN_CONFIG, pretrain_2d

    # as_2d of the 2D twin is the twin itself, so it is a valid argument for pretrain_2d.
    cfg = dataclasses.replace(PRETRAIN_CONFIG, epochs=epochs, num_threads=num_threads)
    return pretrain_2d(ArchSpec.from_json(spec_2d_json), seed=seed, cfg=cfg,
                       image_seed=data_seed, shuffle_labels=shuffle)
