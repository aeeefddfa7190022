"""The synthetic tasks' settings, torch-free: ``SyntheticConfig``, ``TASKS`` and the calibrated
``default_cpu_config``.

``search.data.synthetic`` renders the clips (with torch) and re-exports these names; the config
code (``search.design.config``, ``search.design.studies``) reads them from here, so composing, checking and
dry-running a study loads neither torch nor Ray.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

TASKS: tuple[str, ...] = ("appearance", "motion", "rotation", "long_order", "appearance_motion")


@dataclass(frozen=True)
class SyntheticConfig:
    """What the synthetic clips show and how many there are. Defaults: the calibrated CPU size."""

    task: str = "motion"  # one of TASKS
    clip_len: int = 8  # frames per clip (T)
    size: int = 32  # frame height = width in pixels (H = W)
    num_classes: int = 4  # appearance: 2..10 digits; motion: even number of directions; rotation: 2; long_order: 2, 6 or 24 (orders of 2, 3, 4 events); appearance_motion: digits x n_directions
    n_train: int = 1024  # training clips
    n_val: int = 512  # validation clips
    object_size: int = 5  # side in pixels of the small moving digits (motion signal, distractors)
    target_size: int = 12  # side in pixels of the digit to name (appearance) or of a flashing event (long_order)
    speed: float = 1.0  # pixels per frame of every moving object
    n_objects: int = 3  # motion: digits moving coherently in the label direction; rotation: digits turning
    angular_speed: float = 0.4  # rotation: radians per frame (0.4 ~ 23 degrees)
    n_distractors: int = 6  # clutter: small digits moving in random directions (all tasks)
    noise: float = 0.15  # std of i.i.d. Gaussian pixel noise added to every frame
    event_len: int = 2  # long_order: frames an event stays visible
    slot_jitter: int = 1  # long_order: +- frames an event's onset varies around its slot centre
    # Knobs where the answer can move (docs/calibration.md, "Task knobs"):
    scale: float = 1.0  # zoom: multiplies object_size and speed (coarse motion survives downsampling)
    n_directions: int = 2  # appearance_motion: directions K; labels are digit * K + direction
    event_gap: int = 0  # long_order: frames between event onsets, events centred; 0 spreads them over the clip

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when the config is inconsistent."""
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; choose one of {list(TASKS)}")
        for name in ("clip_len", "size", "num_classes", "n_train", "n_val", "object_size",
                     "target_size", "event_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.n_objects < 0 or self.n_distractors < 0 or self.noise < 0 or self.speed < 0:
            raise ValueError("n_objects, n_distractors, noise and speed must be >= 0")
        if self.object_size > self.size or self.target_size > self.size:
            raise ValueError("object_size and target_size must not exceed size")
        if self.scale <= 0:
            raise ValueError(f"scale: must be > 0, got {self.scale}")
        if not 1 <= round(self.object_size * self.scale) <= self.size:
            raise ValueError(f"scale: object_size {self.object_size} x scale {self.scale} must be "
                             f"1..size ({self.size}) pixels")
        if self.task == "appearance" and not 2 <= self.num_classes <= 10:
            raise ValueError(f"num_classes: appearance has 2..10 digit classes, got {self.num_classes}")
        if self.task == "motion":
            if self.num_classes < 2 or self.num_classes % 2:
                raise ValueError(f"num_classes: motion needs an even number of directions "
                                 f"(each with its reverse), got {self.num_classes}")
            if self.n_objects < 1:
                raise ValueError("n_objects: motion needs at least one signal object")
        if self.task == "rotation":
            if self.num_classes != 2:
                raise ValueError(f"num_classes: rotation has 2 classes (the two senses of "
                                 f"turning), got {self.num_classes}")
            if self.n_objects < 1:
                raise ValueError("n_objects: rotation needs at least one turning digit")
        if self.task == "long_order":
            if self.num_classes not in (2, 6, 24):
                raise ValueError(f"num_classes: long_order has E! orders of E = 2, 3 or 4 "
                                 f"events (2, 6 or 24), got {self.num_classes}")
            n_events = long_order_events(self.num_classes)
            if self.event_gap < 0:
                raise ValueError(f"event_gap: must be >= 0 (0 spreads the events over the clip), "
                                 f"got {self.event_gap}")
            if self.event_gap and self.event_gap < self.event_len + 2 * self.slot_jitter:
                raise ValueError(f"event_gap: {self.event_gap} frames between onsets let events of "
                                 f"{self.event_len} frames (jitter +-{self.slot_jitter}) overlap")
            span = ((n_events - 1) * self.event_gap + self.event_len + 2 * self.slot_jitter
                    if self.event_gap else n_events * (self.event_len + 2 * self.slot_jitter))
            if self.clip_len < span:
                raise ValueError(f"clip_len: {self.clip_len} frames cannot hold {n_events} "
                                 f"separate events of {self.event_len} frames"
                                 + (f" {self.event_gap} frames apart" if self.event_gap else ""))
        if self.task == "appearance_motion":
            k = self.n_directions
            if k < 2 or k % 2:
                raise ValueError(f"n_directions: appearance_motion needs an even number of "
                                 f"directions (each with its reverse), got {k}")
            if self.num_classes % k or not 2 <= self.num_classes // k <= 10:
                raise ValueError(f"num_classes: appearance_motion has digits x directions "
                                 f"classes (2..10 digits x n_directions={k}), got "
                                 f"{self.num_classes}")


    def rendered(self) -> SyntheticConfig:
        """The config the renderer draws: ``scale`` applied to ``object_size`` and ``speed``."""
        if self.scale == 1:
            return self
        return dataclasses.replace(self, object_size=round(self.object_size * self.scale),
                                   speed=self.speed * self.scale, scale=1.0)


def order_blind_ceiling(cfg: SyntheticConfig) -> float:
    """The best accuracy any classifier can reach that sees the frames but not their order.

    It bounds every all-2D network (per-frame convs, time pooled at the end). Each task is built
    so that a clip played backwards (or its events swapped) is a clip of another class drawn
    with the same probability, with the same frames:

    - appearance: 1 (one frame tells the digit).
    - motion, rotation: 1/2 -- direction k and k + K/2 (the two senses) are time reverses; at
      best the axis of motion is seen (chance 1/K).
    - long_order: 1/E! -- every order shows the same frames (chance).
    - appearance_motion: 1/2 -- the digit is seen in one frame, the sense of its motion is not;
      reached exactly by a perfect digit reader when K = 2 (chance 1/(digits x K)).
    """
    cfg.validate()
    if cfg.task == "appearance":
        return 1.0
    if cfg.task in ("motion", "rotation", "appearance_motion"):
        return 0.5
    return 1.0 / cfg.num_classes


def long_order_events(num_classes: int) -> int:
    """long_order: the number of events E whose E! orders are its ``num_classes`` labels."""
    return {2: 2, 6: 3, 24: 4}[num_classes]


def default_cpu_config(task: str = "motion") -> SyntheticConfig:
    """The calibrated CPU size of ``task`` (numbers in docs/calibration.md).

    Sized so one trial of a tiny network (widths 16-32-64-128, one block per stage) with the
    default ``TrainConfig`` takes about 30-60 s on one CPU thread, and so that no placement sits
    at ceiling: motion 4 directions at T=8; rotation 2 senses at T=8; appearance 10 digits drawn
    large (16 px); long_order 2 orders at T=16 (events 6-10 frames apart) on 512 clips, the same
    compute as 1,024 clips of 8 frames; appearance_motion 3 digits (14 px) x 2 senses at T=8,
    where 2D reaches ~0.41 of its 0.5 ceiling and bottom-heavy 3D ~0.64 (with 2 digits every
    temporal placement saturates at ~0.99).
    """
    overrides: dict[str, dict] = {
        "appearance": {"num_classes": 10, "target_size": 16},
        "appearance_motion": {"num_classes": 6, "target_size": 14},
        "motion": {},
        "rotation": {"num_classes": 2},
        "long_order": {"num_classes": 2, "clip_len": 16, "n_train": 512},
    }
    return dataclasses.replace(SyntheticConfig(task=task), **overrides[task])
