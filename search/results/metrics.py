"""Metric facts, in one place: names, which way is better, and the protocol's thresholds.

Torch-free and pandas-free: the trainer reports under these names, the driver's searcher and
the CLI summary rank by them, and ``analysis`` and the dashboard read them from here. A metric's
direction is known from its name (losses lower, accuracies higher, costs lower); a study may
declare the direction of any other metric in ``study.directions``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

# --- names (what train() reports each epoch, and the final results) ---------------------------
TRAIN_LOSS = "train/loss"
TRAIN_ACC1 = "train/acc1"
VAL_LOSS = "val/loss"
VAL_ACC1 = "val/acc1"
VAL_ACC5 = "val/acc5"
LR = "lr"
EPOCH_TIME_S = "epoch_time_s"
# cost columns of a trial (the arch row) and the protocol columns of a trial (schema 0003)
MACS = "macs"
GMACS = "gmacs"
PARAMS = "params"
LATENCY_MS = "latency_ms"
TRAIN_VAL_GAP = "train_val_gap"
CHANCE_ACC = "chance_acc"
MAJORITY_ACC = "majority_acc"
PLATEAUED = "plateaued"
DATA_SEED = "data_seed"

MAX, MIN = "max", "min"
# Metrics ranked by default, best first: the first one a study has (and that varies) is used.
PREFERRED: tuple[str, ...] = (VAL_ACC1, VAL_LOSS, VAL_ACC5, TRAIN_ACC1, TRAIN_LOSS)
# Columns that are costs (lower is better) whatever their name says.
COSTS: frozenset[str] = frozenset({MACS, GMACS, PARAMS, LATENCY_MS, "activations",
                                   EPOCH_TIME_S, TRAIN_VAL_GAP})

# --- protocol thresholds ----------------------------------------------------------------------
# Final train/acc1 - val/acc1 above this: the arm memorises its training clips (the issue's
# top-heavy nets reach train 0.99 / val 0.25, a gap of 0.74; healthy small nets stay below 0.2).
MEMORISING_GAP = 0.3
CONFIDENCE = 0.95  # every interval vidarch reports is a 95% interval


class DirectionError(ValueError):
    """A metric whose direction is unknown, or a declared direction that cannot hold."""


def is_accuracy(name: str) -> bool:
    """``val/acc1``, ``train/acc5``, ``acc``: a fraction of clips classified right."""
    return name.rsplit("/", 1)[-1].startswith("acc")


def bounds(name: str) -> tuple[float, float]:
    """The range a metric's values (and so their mean) can take: an interval of its mean is
    clipped to it (an accuracy's to [0, 1], a loss's to [0, inf))."""
    if is_accuracy(name):
        return 0.0, 1.0
    if is_loss(name):
        return 0.0, math.inf
    return -math.inf, math.inf


def is_loss(name: str) -> bool:
    """``val/loss``, ``train/loss``, ``loss``."""
    return name.rsplit("/", 1)[-1].endswith("loss")


def known_direction(name: str) -> str | None:
    """The direction a metric's name implies: ``"max"``, ``"min"``, or None when it says none."""
    if is_accuracy(name):
        return MAX
    if is_loss(name) or name in COSTS:
        return MIN
    return None


def direction(name: str, declared: Mapping[str, str] | None = None) -> str:
    """``"max"`` or ``"min"``: which way ``name`` is better (a study's ``declared`` first).

    Raises:
        DirectionError: the name implies no direction and none is declared.
    """
    if declared and name in declared:
        return str(declared[name])
    found = known_direction(name)
    if found is None:
        raise DirectionError(f"metric {name!r}: unknown direction; declare it in "
                             f"study.directions (e.g. ['{name}:max'])")
    return found


def has_direction(name: str, declared: Mapping[str, str] | None = None) -> bool:
    """True when ``direction(name, declared)`` would answer."""
    return bool(declared and name in declared) or known_direction(name) is not None


def sign(mode: str) -> float:
    """+1 for ``"max"``, -1 for ``"min"``: multiply to make "higher is better"."""
    if mode not in (MAX, MIN):
        raise DirectionError(f"direction must be 'max' or 'min', got {mode!r}")
    return 1.0 if mode == MAX else -1.0


def better(a: float, b: float, mode: str) -> bool:
    """``a`` strictly better than ``b`` under ``mode`` (NaN is never better)."""
    if math.isnan(a):
        return False
    return math.isnan(b) or (a > b if mode == MAX else a < b)


def wording(mode: str) -> str:
    """``"higher is better"`` / ``"lower is better"``."""
    return "higher is better" if mode == MAX else "lower is better"


def parse_directions(declared: Iterable[str]) -> dict[str, str]:
    """A study's ``directions`` (``["val/f1:max", ...]``) as ``{metric: "max" | "min"}``.

    Raises:
        DirectionError: one line, starting with ``study.directions``.
    """
    out: dict[str, str] = {}
    for item in declared:
        name, _, mode = str(item).rpartition(":")
        name, mode = name.strip(), mode.strip()
        if not name or mode not in (MAX, MIN):
            raise DirectionError(f"study.directions: {item!r}: write 'metric:max' or "
                                 f"'metric:min'")
        implied = known_direction(name)
        if implied is not None and implied != mode:
            raise DirectionError(f"study.directions: {name!r} is better when "
                                 f"{'higher' if implied == MAX else 'lower'} ({implied}); "
                                 f"it cannot be declared {mode!r}")
        if out.get(name, mode) != mode:
            raise DirectionError(f"study.directions: {name!r} is declared both ways")
        out[name] = mode
    return out


def study_directions(config: Mapping[str, object] | None) -> dict[str, str]:
    """The declared directions of a stored study config (``{}`` when none or unreadable)."""
    study = (config or {}).get("study")
    declared = study.get("directions") if isinstance(study, Mapping) else None
    if not isinstance(declared, list | tuple):
        return {}
    try:
        return parse_directions(declared)
    except DirectionError:
        return {}


def is_constant(values: Iterable[float]) -> bool:
    """Two or more finite values, all equal (e.g. ``val/acc5`` = 1.0 on a 4-class task)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return len(finite) >= 2 and max(finite) == min(finite)


def is_memorising(gap: float) -> bool:
    """A final train - val accuracy gap above ``MEMORISING_GAP``."""
    return gap is not None and math.isfinite(gap) and gap > MEMORISING_GAP
