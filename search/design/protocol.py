"""The study protocol's per-trial rules, torch-free: data seed, plateau, baselines, gap.

Each rule lives here once; the trainable, the Tune stopper and the driver's writer call it.

- ``trial_data_seed``: which clips a trial draws. By default every seed draws its own train/val
  clips; a study pins them with ``data.data_seed=N`` to measure weight-init variance alone.
- ``plateaued``: whether a validation curve has flattened (no improvement larger than
  ``min_delta`` over the last ``patience`` epochs). The stopper ends trials with it; the writer
  records it for every trial, also for fixed-epoch training.
- ``baselines``: chance (1 / classes) and majority-class accuracy of the drawn val set.
- ``train_val_gap``: final ``train/acc1 - val/acc1`` (large: memorising).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from search.design.train_config import TrainConfig
from search.results import metrics
from search.results.metrics import TRAIN_ACC1, VAL_ACC1

# The curves the plateau rule may watch, with their direction (True: higher is better) from the
# one table of metric facts (search.results.metrics).
PLATEAU_METRICS: dict[str, bool] = {name: metrics.direction(name) == "max"
                                    for name in (metrics.VAL_ACC1, metrics.VAL_LOSS)}
MAX_DATA_SEED = 2**31 - 1  # a data seed fits the 32-bit trials.data_seed column


def trial_data_seed(pinned: int | None, seed: int) -> int:
    """The effective data seed of a trial of seed ``seed``.

    ``pinned`` (``data.data_seed``) when the study pins the data; otherwise the first 31 bits of
    ``sha256("vidarch-data:<seed>")``: a different draw per seed, and a stream unrelated to the
    one ``torch.manual_seed(seed)`` gives the weights (a plain ``seed`` would reuse it).
    """
    if pinned is not None:
        return int(pinned)
    digest = hashlib.sha256(f"vidarch-data:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & MAX_DATA_SEED


def plateaued(curve: Sequence[float], *, patience: int, min_delta: float,
              higher_is_better: bool, min_epochs: int = 0) -> bool:
    """True when the last ``patience`` values did not beat the best before them by > min_delta.

    A curve of ``patience`` values or fewer, or shorter than ``min_epochs``, has not shown a
    plateau yet (False). Non-finite values never count as an improvement.

    Args:
        curve: one value per epoch, in epoch order.
        patience: epochs without improvement that make a plateau (>= 1).
        min_delta: the smallest change that counts as an improvement (>= 0).
        higher_is_better: True for accuracies, False for losses.
        min_epochs: epochs a curve must have before a plateau can be called.
    """
    if len(curve) <= patience or len(curve) < min_epochs:
        return False
    sign = 1.0 if higher_is_better else -1.0
    scores = [sign * v if math.isfinite(v) else -math.inf for v in curve]
    before, recent = max(scores[:-patience]), max(scores[-patience:])
    return not recent > before + min_delta


def protocol_problem(cfg: Any) -> str | None:
    """One line naming the first bad protocol key of a ``RunConfig`` (``data.data_seed``,
    ``train.plateau_*``), or None."""
    pinned = cfg.data.data_seed
    if pinned is not None and not 0 <= pinned <= MAX_DATA_SEED:
        return f"data.data_seed: must be null or in 0..{MAX_DATA_SEED}, got {pinned}"
    settings = cfg.train
    if settings.plateau_metric not in PLATEAU_METRICS:
        return (f"train.plateau_metric: unknown curve {settings.plateau_metric!r} (choose from "
                f"{', '.join(PLATEAU_METRICS)})")
    if settings.plateau_patience < 1:
        return f"train.plateau_patience: must be >= 1 epoch, got {settings.plateau_patience}"
    if not (math.isfinite(settings.plateau_min_delta) and settings.plateau_min_delta >= 0):
        return f"train.plateau_min_delta: must be >= 0, got {settings.plateau_min_delta}"
    if settings.plateau_min_epochs is not None and settings.plateau_min_epochs < 0:
        return f"train.plateau_min_epochs: must be null or >= 0, got {settings.plateau_min_epochs}"
    return None


def curve_plateaued(curve: Sequence[float], settings: Mapping[str, Any]) -> bool:
    """``plateaued`` with the ``plateau_*`` fields (and ``epochs``) of a ``TrainSettings``
    mapping."""
    return plateaued(curve, patience=int(settings["plateau_patience"]),
                     min_delta=float(settings["plateau_min_delta"]),
                     higher_is_better=PLATEAU_METRICS[settings["plateau_metric"]],
                     min_epochs=plateau_min_epochs(settings))


def plateau_min_epochs(settings: Mapping[str, Any]) -> int:
    """Epochs before which no plateau is called: ``plateau_min_epochs``, or when null (or
    absent) half the epoch budget rounded up."""
    explicit = settings.get("plateau_min_epochs")
    if explicit is not None:
        return int(explicit)
    budget = settings.get("epochs") or TrainConfig.epochs
    return math.ceil(int(budget) / 2)


def baselines(labels: Iterable[int], num_classes: int) -> tuple[float, float]:
    """``(chance, majority)``: 1 / classes, and the share of the most frequent label."""
    counts = Counter(int(y) for y in labels)
    total = sum(counts.values())
    majority = max(counts.values()) / total if total else math.nan
    return 1.0 / num_classes, majority


def train_val_gap(metrics: Mapping[str, Any]) -> float | None:
    """Final ``train/acc1 - val/acc1``, or None when either is missing or not finite."""
    train, val = metrics.get(TRAIN_ACC1), metrics.get(VAL_ACC1)
    if train is None or val is None or not math.isfinite(train) or not math.isfinite(val):
        return None
    return float(train) - float(val)
