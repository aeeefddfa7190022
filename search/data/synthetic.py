"""Built-in synthetic video: small clips, made in memory from a seed, where time can matter.

Four tasks share one renderer (sprites pasted on a torus, vectorized with ``scatter_reduce``):

- ``"appearance"``: which handwritten digit (``sklearn.datasets.load_digits``) drifts through the
  clip among small distractors. One frame suffices; a 2D network solves it.
- ``"motion"``: which way a few small digits move *together* among distractors that move in
  random directions (a random-dot kinematogram with digits for dots). Positions live on a torus
  with uniform starts, so every single frame has the same distribution for every class, and the
  classes ``k`` and ``k + K/2`` are exact temporal reverses of each other: a network that averages
  per-frame features over time sees the same expected logits for every class. Small objects that
  move about a pixel per frame are resolved only at high resolution, so temporal modelling pays
  off near the input (bottom-heavy placements).
- ``"rotation"``: which way (one sense or the other) a few digits turn, at ``angular_speed``
  from a uniform start angle, while drifting; the two classes are time reverses of each other.
- ``"long_order"``: in which order ``E`` digits (``0 .. E-1``) flash briefly, each in its own
  time slot far apart from the others and at a random place, among moving distractors. Labels
  are the ``E!`` orders; the set of frames is the same for every order, so only a network whose
  receptive field spans the gap in time *and* space can solve it (top, long extents).
  ``event_gap`` fixes the frames between onsets, so the clip length can vary alone.
- ``"appearance_motion"``: which digit (``label // K``) moves in which direction (``label % K``)
  among distractors. One frame tells the digit, never the sense of the motion: an all-2D network
  is capped at 1/2 (``search.design.tasks.order_blind_ceiling``), far above chance 1/(digits x K).

``scale`` zooms every task's small moving digits (``object_size`` and ``speed`` grow together):
at scale 1 a 5 px digit moves 1 px per frame and its motion lives only in the high-resolution
early layers; at scale 3 it is 15 px moving 3 px per frame and survives spatial downsampling,
where top-heavy temporal modelling can see it.

Measured placement effects at the CPU defaults are in docs/calibration.md (bottom-heavy wins
motion and rotation, 2D wins appearance, all-3D wins long_order).

Train and validation clips draw digits from disjoint halves of the digit images, so appearance
must generalise to unseen handwriting.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# The tasks' settings live torch-free in search.design.tasks (the config code reads them there).
from search.design.tasks import TASKS as TASKS
from search.design.tasks import SyntheticConfig as SyntheticConfig
from search.design.tasks import default_cpu_config as default_cpu_config
from search.design.tasks import long_order_events as _n_events


class ClipSet(torch.utils.data.Dataset):
    """Clips and labels held in memory; index it, batch it directly, or wrap it in a DataLoader.

    Attributes:
        clips: float32 ``(N, 3, T, H, W)``.
        labels: int64 ``(N,)``.
        num_classes: number of classes.
    """

    def __init__(self, clips: Tensor, labels: Tensor, num_classes: int) -> None:
        if clips.ndim != 5 or clips.shape[0] != labels.shape[0]:
            raise ValueError(f"clips must be (N, C, T, H, W) with one label each; got "
                             f"{tuple(clips.shape)} and {tuple(labels.shape)} labels")
        self.clips = clips
        self.labels = labels
        self.num_classes = num_classes

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.clips[index], self.labels[index]

    def frames(self) -> ClipSet:
        """Every frame as its own one-frame clip with the clip's label, ``(N*T, 3, 1, H, W)``."""
        n, c, t, h, w = self.clips.shape
        # (N, 3, T, H, W) -> (N, T, 3, H, W) -> (N*T, 3, 1, H, W)
        frames = self.clips.transpose(1, 2).reshape(n * t, c, 1, h, w)
        return ClipSet(frames, self.labels.repeat_interleave(t), self.num_classes)


def make_synthetic(cfg: SyntheticConfig, seed: int) -> tuple[ClipSet, ClipSet]:
    """Make the train and validation clips of ``cfg.task``, deterministic in ``seed``.

    Args:
        cfg: what to draw and how many clips.
        seed: seeds a private ``torch.Generator``; the global RNG is untouched.

    Returns:
        ``(train, val)`` ``ClipSet``s with ``cfg.n_train`` and ``cfg.n_val`` clips.
    """
    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    digits, digit_labels = _digit_images()
    # Disjoint halves of the handwriting for train and val (fixed split, independent of seed).
    split = torch.arange(digits.shape[0]) % 2 == 0
    train = _make_split(cfg, cfg.n_train, digits[split], digit_labels[split], gen)
    val = _make_split(cfg, cfg.n_val, digits[~split], digit_labels[~split], gen)
    return train, val


def generate(cfg: SyntheticConfig, n: int, seed: int, *, split: str = "train") -> ClipSet:
    """``n`` clips of one split (``"train"`` or ``"val"`` handwriting); for benchmarks and tests."""
    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    digits, digit_labels = _digit_images()
    mask = (torch.arange(digits.shape[0]) % 2 == 0) == (split == "train")
    return _make_split(cfg, n, digits[mask], digit_labels[mask], gen)


# --- generation -------------------------------------------------------------------------------
_CHUNK = 256  # clips rendered at once: bounds the scatter index tensors to a few MB


def _make_split(cfg: SyntheticConfig, n: int, digits: Tensor, digit_labels: Tensor,
                gen: torch.Generator) -> ClipSet:
    labels = torch.randint(cfg.num_classes, (n,), generator=gen)
    clips = torch.zeros(n, 3, cfg.clip_len, cfg.size, cfg.size)  # (N, 3, T, H, W)
    for i in range(0, n, _CHUNK):
        _draw(cfg, labels[i:i + _CHUNK], digits, digit_labels, gen, out=clips[i:i + _CHUNK])
    return ClipSet(clips, labels, cfg.num_classes)


def _draw(cfg: SyntheticConfig, labels: Tensor, digits: Tensor, digit_labels: Tensor,
          gen: torch.Generator, out: Tensor) -> None:
    """Render the clips of ``labels`` into the zeroed ``out``, ``(n, 3, T, H, W)`` float32."""
    cfg = cfg.rendered()  # scale applied to object_size and speed
    n, t_len, size = labels.shape[0], cfg.clip_len, cfg.size
    t = torch.arange(t_len, dtype=torch.float32)
    layers = []  # (sprites, ys, xs, colours, visible) per object group

    # Clutter: small digits drifting in random directions, independent of the label.
    if cfg.n_distractors:
        angle = torch.rand(n, cfg.n_distractors, generator=gen) * 2 * math.pi
        layers.append(_moving(cfg, n, cfg.n_distractors, angle, cfg.object_size, digits, gen, t))

    if cfg.task == "appearance":
        # One larger digit of the label's class drifting in a random direction.
        angle = torch.rand(n, 1, generator=gen) * 2 * math.pi
        sprites = _sprites(_pick_digit(labels[:, None], digits, digit_labels, gen), cfg.target_size)
        layers.append(_moving(cfg, n, 1, angle, cfg.target_size, digits, gen, t,
                              sprites=sprites, wrap=False))
    elif cfg.task == "motion":
        # n_objects small digits moving together in direction 2*pi*label/K.
        angle = (2 * math.pi * labels.float() / cfg.num_classes)[:, None]
        angle = angle.expand(n, cfg.n_objects)
        layers.append(_moving(cfg, n, cfg.n_objects, angle, cfg.object_size, digits, gen, t))
    elif cfg.task == "rotation":
        # n_objects digits turning in the label's sense (label 1 is label 0 played backwards)
        # from a uniform start angle, so every frame looks alike, while drifting randomly.
        index = torch.randint(digits.shape[0], (n, cfg.n_objects), generator=gen)
        start = torch.rand(n, cfg.n_objects, 1, generator=gen) * 2 * math.pi
        sense = (1 - 2 * labels.float())[:, None, None]  # +1 / -1
        turn = start + sense * cfg.angular_speed * t  # (n, O, T) angle of every frame
        sprites = _rotated_sprites(digits[index], cfg.target_size, turn)  # (n, O, T, s, s)
        drift = torch.rand(n, cfg.n_objects, generator=gen) * 2 * math.pi
        layers.append(_moving(cfg, n, cfg.n_objects, drift, cfg.target_size, digits, gen, t,
                              sprites=sprites))
    elif cfg.task == "appearance_motion":
        layers.append(_appearance_motion(cfg, labels, digits, digit_labels, gen, t))
    else:  # long_order
        n_events = _n_events(cfg.num_classes)
        order = torch.tensor(_orders(n_events))[labels]  # (n, E): digit shown in slot e
        sprites = _sprites(_pick_digit(order, digits, digit_labels, gen), cfg.target_size)
        onset = _event_onsets(cfg, n, n_events, gen)  # (n, E)
        visible = (t[None, None, :] >= onset[..., None]) & (t[None, None, :] < onset[..., None] + cfg.event_len)
        # Still, anywhere inside the frame (never cut at an edge).
        inside = size - cfg.target_size + 1
        ys = torch.randint(inside, (n, n_events, 1), generator=gen).expand(n, n_events, t_len)
        xs = torch.randint(inside, (n, n_events, 1), generator=gen).expand(n, n_events, t_len)
        layers.append((sprites, ys, xs, _colours(n, n_events, gen), visible))

    # Every object of every group in one max-compositing scatter.
    pasted = [_paste_index(*layer, size) for layer in layers]
    out.view(-1).scatter_reduce_(0, torch.cat([index for index, _ in pasted]),
                                 torch.cat([value for _, value in pasted]), reduce="amax")
    if cfg.noise:
        # i.i.d. Gaussian noise frames drawn afresh per chunk (4 per clip frame), each clip frame
        # taking a random one: the pixel noise of a clip is independent across its frames at
        # 1/64 of the cost of drawing every clip's noise.
        bank = cfg.noise * torch.randn(4 * t_len, 3, size, size, generator=gen)  # (F, 3, H, W)
        pick = torch.randint(bank.shape[0], (n, t_len), generator=gen)  # (n, T)
        out += bank[pick].transpose(1, 2)  # (n, T, 3, H, W) -> (n, 3, T, H, W)


def _event_onsets(cfg: SyntheticConfig, n: int, n_events: int, gen: torch.Generator) -> Tensor:
    """long_order: the first frame of each event, ``(n, E)``, jittered by +- ``slot_jitter``.

    ``event_gap`` 0: slot e is centred at (e + 0.5) * T / E (the gap grows with T). Otherwise
    onsets are ``event_gap`` frames apart, the events centred in the clip: the gap is fixed in
    frames whatever the clip length.
    """
    t_len = cfg.clip_len
    slots = torch.arange(n_events)
    if cfg.event_gap:
        span = (n_events - 1) * cfg.event_gap + cfg.event_len
        centre = ((t_len - span) // 2 + slots * cfg.event_gap).float()
    else:
        centre = (slots + 0.5) * t_len / n_events - cfg.event_len / 2
    jitter = torch.randint(-cfg.slot_jitter, cfg.slot_jitter + 1, (n, n_events), generator=gen)
    return (centre.round().long() + jitter).clamp(0, t_len - cfg.event_len)


def _appearance_motion(cfg: SyntheticConfig, labels: Tensor, digits: Tensor,
                       digit_labels: Tensor, gen: torch.Generator, t: Tensor):
    """appearance_motion: one large digit (``label // K``) moving along direction
    ``2 * pi * (label % K) / K`` on the torus, its path centred on the clip's middle frame.

    Every random draw has a shape independent of the labels, and the path is centred in time, so
    the same seed with direction k and with its reverse k + K/2 draws the same clip played
    backwards: the frames say which digit, never the sense of its motion.
    """
    n, k = labels.shape[0], cfg.n_directions
    digit, direction = labels // k, labels % k
    sprites = _sprites(_pick_digit(digit[:, None], digits, digit_labels, gen), cfg.target_size)
    # Direction k + K/2 is exactly minus direction k (no rounding of sin(angle + pi)).
    angle = 2 * math.pi * (direction % (k // 2)).float() / k  # (n,)
    sense = torch.where(direction < k // 2, 1.0, -1.0) * cfg.speed  # (n,)
    vy, vx = sense * torch.sin(angle), sense * torch.cos(angle)  # (n,)
    centre = torch.rand(n, 2, generator=gen) * cfg.size  # (n, 2) position at the middle frame
    mid = t - (t.shape[0] - 1) / 2  # (T,) frames from the middle: frame T-1-t is at -mid
    ys = torch.floor(centre[:, :1] + vy[:, None] * mid + 0.5).long()[:, None]  # (n, 1, T)
    xs = torch.floor(centre[:, 1:] + vx[:, None] * mid + 0.5).long()[:, None]  # (n, 1, T)
    visible = torch.ones(n, 1, t.shape[0], dtype=torch.bool)
    return sprites, ys, xs, _colours(n, 1, gen), visible


def render(cfg: SyntheticConfig, labels: Tensor, seed: int, *, split: str = "train") -> ClipSet:
    """The clips of given ``labels`` (int64 ``(N,)``), from the ``split`` handwriting; for tests
    and analyses that need a chosen class per clip. Deterministic in ``seed``."""
    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    digits, digit_labels = _digit_images()
    mask = (torch.arange(digits.shape[0]) % 2 == 0) == (split == "train")
    clips = torch.zeros(labels.shape[0], 3, cfg.clip_len, cfg.size, cfg.size)  # (N, 3, T, H, W)
    for i in range(0, labels.shape[0], _CHUNK):
        _draw(cfg, labels[i:i + _CHUNK], digits[mask], digit_labels[mask], gen,
              out=clips[i:i + _CHUNK])
    return ClipSet(clips, labels, cfg.num_classes)


def _moving(cfg: SyntheticConfig, n: int, count: int, angle: Tensor, side: int, digits: Tensor,
            gen: torch.Generator, t: Tensor, sprites: Tensor | None = None, wrap: bool = True):
    """Objects moving at ``cfg.speed`` along ``angle`` ``(n, count)``.

    ``wrap``: uniform start anywhere on the torus, so every frame is uniformly distributed (the
    motion task needs that). Otherwise the start is uniform over the places from which the whole
    path stays inside the frame, so the digit is never cut at an edge.
    """
    if sprites is None:
        index = torch.randint(digits.shape[0], (n, count), generator=gen)
        sprites = _sprites(digits[index], side)
    vy, vx = cfg.speed * torch.sin(angle), cfg.speed * torch.cos(angle)  # (n, count)
    u = torch.rand(n, count, 2, generator=gen)
    if wrap:
        start_y, start_x = u[..., 0] * cfg.size, u[..., 1] * cfg.size
    else:
        # Path extent along each axis; start in [max(0, -d), size - side - max(0, d)].
        span = float(t[-1])
        low_y, low_x = (-vy * span).clamp(min=0), (-vx * span).clamp(min=0)
        room_y = (cfg.size - side - (vy * span).abs()).clamp(min=0)
        room_x = (cfg.size - side - (vx * span).abs()).clamp(min=0)
        start_y, start_x = low_y + u[..., 0] * room_y, low_x + u[..., 1] * room_x
    # Positions at every frame, rounded to the pixel grid: (n, count, T).
    ys = torch.floor(start_y[..., None] + vy[..., None] * t + 0.5).long()
    xs = torch.floor(start_x[..., None] + vx[..., None] * t + 0.5).long()
    visible = torch.ones(n, count, t.shape[0], dtype=torch.bool)
    return sprites, ys, xs, _colours(n, count, gen), visible


def _paste_index(sprites: Tensor, ys: Tensor, xs: Tensor, colours: Tensor, visible: Tensor,
                 size: int) -> tuple[Tensor, Tensor]:
    """Flat indices into ``(n, 3, T, size, size)`` and values that paste sprites on a torus.

    Args:
        sprites: ``(n, O, s, s)`` intensities in [0, 1], or ``(n, O, T, s, s)`` per frame.
        ys, xs: ``(n, O, T)`` integer top-left corners (wrapped modulo ``size``).
        colours: ``(n, O, 3)``.
        visible: ``(n, O, T)`` bool; hidden objects are not drawn.

    Returns:
        ``(index, value)``, both flat, for ``scatter_reduce_(..., reduce="amax")``.
    """
    n, side = sprites.shape[0], sprites.shape[-1]
    t_len = ys.shape[-1]
    offsets = torch.arange(side)
    rows = (ys[..., None] + offsets) % size  # (n, O, T, s)
    cols = (xs[..., None] + offsets) % size  # (n, O, T, s)
    pixel = rows[..., :, None] * size + cols[..., None, :]  # (n, O, T, s, s) index in H*W
    clip = torch.arange(n)[:, None, None, None, None, None]  # (n, 1, 1, 1, 1, 1)
    channel = torch.arange(3)[None, None, :, None, None, None]  # (1, 1, 3, 1, 1, 1)
    frame = torch.arange(t_len)[None, None, None, :, None, None]  # (1, 1, 1, T, 1, 1)
    # Flat index into (n, 3, T, H*W): (n, O, 3, T, s, s).
    index = ((clip * 3 + channel) * t_len + frame) * (size * size) + pixel[:, :, None]
    # Values: sprite x colour x visibility, (n, O, 3, T, s, s).
    if sprites.ndim == 4:
        sprites = sprites[:, :, None]  # (n, O, 1, s, s): the same sprite in every frame
    value = (sprites[:, :, None] * colours[..., None, None, None]
             * visible[:, :, None, :, None, None])
    return index.expand_as(value).reshape(-1), value.reshape(-1)


def _rotated_sprites(images: Tensor, side: int, angle: Tensor) -> Tensor:
    """Digit images ``(n, O, 8, 8)`` turned by ``angle`` ``(n, O, T)``: ``(n, O, T, side, side)``."""
    n, count, t_len = angle.shape
    base = _sprites(images, side)  # (n, O, s, s)
    # One affine sampling grid per (clip, object, frame): (M, 1, s, s), M = n * O * T.
    flat = base[:, :, None].expand(n, count, t_len, side, side).reshape(-1, 1, side, side)
    cos, sin = angle.reshape(-1).cos(), angle.reshape(-1).sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, [flat.shape[0], 1, side, side], align_corners=False)  # (M, s, s, 2)
    turned = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return turned.reshape(n, count, t_len, side, side)  # (M, 1, s, s) -> (n, O, T, s, s)


def _colours(n: int, count: int, gen: torch.Generator) -> Tensor:
    """Random bright colours ``(n, count, 3)``; colour never carries the label."""
    return 0.5 + 0.5 * torch.rand(n, count, 3, generator=gen)


def _pick_digit(classes: Tensor, digits: Tensor, digit_labels: Tensor,
                gen: torch.Generator) -> Tensor:
    """A random image of each requested digit class: ``classes`` (n, k) -> (n, k, 8, 8)."""
    # Per class, the indices of its images; draw a uniform position within each class's list.
    by_class = [torch.nonzero(digit_labels == c).flatten() for c in range(10)]
    counts = torch.tensor([len(b) for b in by_class])
    table = torch.full((10, int(counts.max())), -1, dtype=torch.long)
    for c, b in enumerate(by_class):
        table[c, :len(b)] = b
    pos = (torch.rand(classes.shape, generator=gen) * counts[classes]).long()
    return digits[table[classes, pos]]


def _sprites(images: Tensor, side: int) -> Tensor:
    """Resize 8x8 digit images ``(..., 8, 8)`` to ``(..., side, side)`` intensities in [0, 1]."""
    lead = images.shape[:-2]
    flat = images.reshape(-1, 1, 8, 8)  # (M, 1, 8, 8)
    resized = F.interpolate(flat, size=(side, side), mode="bilinear", align_corners=False,
                            antialias=side < 8)
    return resized.clamp(0, 1).reshape(*lead, side, side)



@functools.cache
def _orders(n_events: int) -> list[tuple[int, ...]]:
    """All orders of ``n_events`` digits; label ``i`` is ``_orders(E)[i]``."""
    return list(itertools.permutations(range(n_events)))


@functools.cache
def _digit_images() -> tuple[Tensor, Tensor]:
    """The 1,797 8x8 handwritten digits bundled with scikit-learn, as ``(M, 8, 8)`` in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0
    return images, torch.tensor(data.target, dtype=torch.long)
