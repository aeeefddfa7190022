"""``TrainConfig``: how one trial trains, torch-free.

``search.train`` runs the loop (with torch) and re-exports it; ``search.design.config`` fills the
command line's null train settings from its defaults without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """How to train one trial. Defaults: the calibrated CPU budget (docs/calibration.md)."""

    epochs: int = 4  # passes over the training set
    batch_size: int = 32  # clips per optimizer step
    optimizer: str = "adamw"  # "adamw" (robust across placements at small budgets) or "sgd"
    lr: float = 2e-3  # peak learning rate, reached after warm-up
    weight_decay: float = 0.05  # decoupled for AdamW, L2 for SGD; not applied to norms and biases
    momentum: float = 0.9  # SGD momentum (Nesterov); AdamW's beta1
    warmup_epochs: float = 1.0  # linear warm-up from 0 before the cosine decay to 0
    label_smoothing: float = 0.1  # on the training loss only; val/loss is plain cross-entropy
    grad_clip: float | None = 1.0  # max global grad norm; None turns clipping off
    channels_last: bool | str = "auto"  # channels_last_3d; "auto" = on (1.1-1.3x faster on CPU too, docs/calibration.md)
    amp: str = "auto"  # "auto" = bf16 autocast on CUDA only; "bf16" or "off" force it
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda[:i]"
    num_threads: int | None = None  # torch intra-op threads; None leaves torch's setting
    num_workers: int = 0  # DataLoader workers for datasets that are not in memory
    eval_batch_size: int | None = None  # None = 2 x batch_size (no gradients to hold)
