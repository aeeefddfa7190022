"""The training loop: plain PyTorch, no Ray, readable in one sitting (nanoGPT style).

``train(model, train_set, val_set, cfg, seed=...)`` trains for ``cfg.epochs`` epochs with SGD or
AdamW under a cosine schedule with linear warm-up, label smoothing and gradient clipping,
evaluates top-1/top-5 after every epoch, and reports each epoch through ``on_epoch``. A
non-finite loss ends the run with ``status="nan"``. ``save_checkpoint`` receives a dict after
every epoch; passing it back as ``checkpoint`` resumes the run exactly where it stopped (same
metrics as an uninterrupted run on CPU).

Datasets: a ``ClipSet`` (tensors in memory) is batched by indexing, with no DataLoader between
the tensors and the model; any other map-style dataset yielding ``(clip, label)`` goes through a
``DataLoader`` with ``cfg.num_workers`` workers. Either way the order of an epoch comes from a
``torch.Generator`` seeded with ``(seed, epoch)``, so it does not depend on what ran before.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search.design.train_config import TrainConfig as TrainConfig  # torch-free; re-exported
from search.results.metrics import TRAIN_ACC1, TRAIN_LOSS, VAL_ACC1, VAL_ACC5, VAL_LOSS


@dataclass
class TrainResult:
    """What a run produced."""

    status: str  # "ok", or "nan" when a non-finite loss ended the run
    history: list[dict[str, float]] = field(default_factory=list)  # one metrics dict per epoch
    final: dict[str, float] = field(default_factory=dict)  # the last epoch's metrics
    reason: str | None = None  # one line saying why a run ended early


EpochCallback = Callable[[int, dict[str, float]], None]


def train(model: nn.Module, train_set: Any, val_set: Any, cfg: TrainConfig, *, seed: int,
          on_epoch: EpochCallback | None = None, checkpoint: dict[str, Any] | None = None,
          save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train ``model`` on ``train_set`` and evaluate on ``val_set`` after every epoch.

    Args:
        model: maps ``(B, C, T, H, W)`` clips to ``(B, num_classes)`` logits.
        train_set, val_set: a ``ClipSet`` or a map-style dataset of ``(clip, label)``.
        cfg: optimisation settings.
        seed: seeds torch, numpy, random and the data order.
        on_epoch: called as ``on_epoch(epoch, metrics)`` after each epoch (epochs count from 1).
        checkpoint: a dict given earlier to ``save_checkpoint``; training resumes after its epoch.
        save_checkpoint: receives a self-contained checkpoint dict after every epoch.

    Returns:
        ``TrainResult``; ``status="nan"`` when a non-finite loss or gradient ended the run.
    """
    # --- set-up: threads, seeds, device, precision, memory format ------------------------------
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                          else "cpu" if cfg.device == "auto" else cfg.device)
    use_bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    channels_last = cfg.channels_last in (True, "auto")
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)

    # --- optimizer and schedule (per step: linear warm-up, then cosine to zero) ----------------
    steps_per_epoch = _num_batches(len(train_set), cfg.batch_size, drop_last=True)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    optimizer = _make_optimizer(model, cfg)

    def lr_factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    # --- resume -----------------------------------------------------------------------------
    history: list[dict[str, float]] = []
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch = int(checkpoint["epoch"])
        history = list(checkpoint.get("history", []))
        _set_rng_state(checkpoint["rng"])

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16
                else contextlib.nullcontext())

    # --- epochs -----------------------------------------------------------------------------
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        lr = optimizer.param_groups[0]["lr"]  # the lr of this epoch's first step
        for step, (x, y) in enumerate(_batches(train_set, cfg.batch_size, seed, epoch, cfg,
                                               shuffle=True)):
            x = x.to(device, non_blocking=True, memory_format=memory_format)
            y = y.to(device, non_blocking=True)
            with autocast:
                logits = model(x)  # (B, num_classes)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                return _stopped(history, f"non-finite loss {loss_value} at epoch {epoch} "
                                         f"step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if not torch.isfinite(grad_norm):
                    return _stopped(history, f"non-finite gradient norm at epoch {epoch} "
                                             f"step {step + 1}")
            optimizer.step()
            scheduler.step()
            loss_sum += loss_value * y.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]

        val = evaluate(model, val_set, cfg, device=device, memory_format=memory_format,
                       autocast=autocast)
        metrics = {"epoch": float(epoch),
                   TRAIN_LOSS: loss_sum / max(1, seen), TRAIN_ACC1: correct / max(1, seen),
                   VAL_LOSS: val["loss"], VAL_ACC1: val["acc1"], VAL_ACC5: val["acc5"],
                   "lr": lr, "epoch_time_s": time.perf_counter() - t0}
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
        if not math.isfinite(val["loss"]):  # reported above, then the run ends
            return _stopped(history, f"non-finite validation loss at epoch {epoch}")
        if save_checkpoint is not None:
            save_checkpoint({"model": copy.deepcopy(model.state_dict()),
                             "optimizer": copy.deepcopy(optimizer.state_dict()),
                             "scheduler": scheduler.state_dict(), "epoch": epoch,
                             "history": [dict(h) for h in history], "rng": _get_rng_state(),
                             "seed": seed})
    return TrainResult(status="ok", history=history, final=history[-1] if history else {})


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, cfg: TrainConfig, *, device: torch.device,
             memory_format: torch.memory_format = torch.contiguous_format,
             autocast: Any = None) -> dict[str, float]:
    """Plain cross-entropy, top-1 and top-5 accuracy (fractions) of ``model`` on ``dataset``."""
    model.eval()
    loss_sum, top1, top5, seen = 0.0, 0, 0, 0
    batch_size = cfg.eval_batch_size or 2 * cfg.batch_size
    for x, y in _batches(dataset, batch_size, 0, 0, cfg, shuffle=False):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        with autocast or contextlib.nullcontext():
            logits = model(x).float()  # (B, num_classes)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        topk = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, k)
        hits = topk == y[:, None]  # (B, k)
        top1 += int(hits[:, 0].sum())
        top5 += int(hits.any(1).sum())
        seen += y.shape[0]
    seen = max(1, seen)
    return {"loss": loss_sum / seen, "acc1": top1 / seen, "acc5": top5 / seen}


# --- helpers ----------------------------------------------------------------------------------
def _batches(dataset: Any, batch_size: int, seed: int, epoch: int, cfg: TrainConfig, *,
             shuffle: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of one epoch; the order depends only on ``(seed, epoch)``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    n = len(dataset)
    drop_last = shuffle and n > batch_size  # equal train batches keep BatchNorm statistics sane
    if hasattr(dataset, "clips") and hasattr(dataset, "labels"):  # in memory: index directly
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        for i in range(_num_batches(n, batch_size, drop_last)):
            index = order[i * batch_size:(i + 1) * batch_size]
            yield dataset.clips[index], dataset.labels[index]
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=drop_last,
        num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available() and getattr(dataset, "decode_device", "cpu") == "cpu",
        persistent_workers=False, worker_init_fn=_seed_worker if cfg.num_workers else None)
    yield from loader


def _num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    if drop_last and n > batch_size:
        return n // batch_size
    return math.ceil(n / batch_size)


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay on conv/linear weights only (ndim > 1), not on norms and biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise ValueError(f"optimizer: unknown {cfg.optimizer!r}; choose 'sgd' or 'adamw'")


def _stopped(history: list[dict[str, float]], reason: str) -> TrainResult:
    return TrainResult(status="nan", history=history, final=history[-1] if history else {},
                       reason=reason)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (call it before building a model)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _get_rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
