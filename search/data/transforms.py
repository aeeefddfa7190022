"""Clip transforms on torch tensors: resize the short side, crop, flip, normalise.

Decoded frames arrive as uint8 ``(T, H, W, 3)``; ``to_clip`` turns them into float ``(3, T, H, W)``,
the layout every network here takes (batched: ``(B, C, T, H, W)``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Kinetics-400 RGB statistics (as torchvision's video models use), on a [0, 1] scale.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class ClipTransform:
    """Resize, crop, flip and normalise a clip; random parts only when ``train``."""

    resize: int = 128  # short side after resizing (pixels); 0 keeps the decoded size
    crop_size: int = 112  # square crop (H = W) the network takes
    train: bool = True  # random crop + horizontal flip; False: centre crop, no flip
    hflip: bool = True  # random horizontal flip in training (turn off for left/right labels)
    mean: tuple[float, float, float] = KINETICS_MEAN  # per-channel mean on a [0, 1] scale
    std: tuple[float, float, float] = KINETICS_STD  # per-channel std on a [0, 1] scale

    def __call__(self, frames: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 ``(T, H, W, 3)`` -> normalised float ``(3, T, crop, crop)``."""
        clip = to_clip(frames)  # (3, T, H, W)
        if self.resize:
            clip = resize_short_side(clip, self.resize)
        if self.train:
            clip = random_crop(clip, self.crop_size, generator)
            if self.hflip and torch.rand((), generator=generator) < 0.5:
                clip = clip.flip(-1)
        else:
            clip = center_crop(clip, self.crop_size)
        return normalize(clip, self.mean, self.std)

    def from_resized(self, frames: Any, generator: torch.Generator | None = None,
                     indices: np.ndarray | None = None) -> Tensor:
        """uint8 frames already resized (a cached video) -> the clip ``__call__`` would give.

        ``frames``: ``(N, H, W, 3)`` uint8, a tensor or an array (e.g. a read-only memmap);
        ``indices``: the clip's frames among them (None: all). The crop window and flip are drawn
        as ``__call__`` draws them, then only the crop is copied and converted to float, so a
        cached clip costs a fraction of a decoded one.
        """
        size = self.crop_size
        h, w = frames.shape[1:3]
        if h < size or w < size:  # padding needed (rare): the plain path, on a copy
            chosen = frames if indices is None else frames[indices]
            clip = to_clip(torch.as_tensor(np.array(chosen)))  # (3, T, H, W)
            clip = random_crop(clip, size, generator) if self.train else center_crop(clip, size)
            if self.train and self.hflip and torch.rand((), generator=generator) < 0.5:
                clip = clip.flip(-1)
            return normalize(clip, self.mean, self.std)
        if self.train:
            top = int(torch.randint(h - size + 1, (), generator=generator))
            left = int(torch.randint(w - size + 1, (), generator=generator))
            flip = self.hflip and bool(torch.rand((), generator=generator) < 0.5)
        else:
            top, left, flip = (h - size) // 2, (w - size) // 2, False
        window = frames[:, top:top + size, left:left + size]  # a view: nothing copied yet
        window = window[indices] if indices is not None else np.array(window)  # (T, s, s, 3)
        window = torch.as_tensor(window)
        if flip:
            window = window.flip(2)  # (T, s, s, 3): W is dim 2
        clip = window.permute(3, 0, 1, 2).contiguous()  # (T, s, s, 3) -> (3, T, s, s), uint8
        scale, shift = _affine(self.mean, self.std)
        return clip.float().mul_(scale).add_(shift)  # ((x / 255) - mean) / std


@functools.cache
def _affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Per-channel scale and shift with x * scale + shift == ((x / 255) - mean) / std."""
    scale = torch.tensor([1.0 / (255.0 * sd) for sd in std]).view(-1, 1, 1, 1)  # (C, 1, 1, 1)
    shift = torch.tensor([-m / sd for m, sd in zip(mean, std, strict=True)]).view(-1, 1, 1, 1)
    return scale, shift


def resize_frames(frames: Tensor, size: int, chunk: int = 32) -> Tensor:
    """uint8 ``(N, H, W, 3)`` -> uint8 ``(N, H', W', 3)`` with min(H', W') == size (0: as is).

    The bilinear resize of ``ClipTransform`` (in float), rounded back to uint8 for the clip
    cache; ``chunk`` frames at a time bound the float copy of a long video.
    """
    if not size:
        return frames
    out = []
    for start in range(0, frames.shape[0], chunk):
        clip = resize_short_side(to_clip(frames[start:start + chunk]), size)  # (3, n, H', W')
        out.append(clip.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
                   .permute(1, 2, 3, 0))  # (3, n, H', W') -> (n, H', W', 3)
    return torch.cat(out).contiguous()


def to_clip(frames: Tensor) -> Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(3, T, H, W)`` in [0, 1]."""
    return frames.permute(3, 0, 1, 2).float().div_(255.0)  # (T, H, W, 3) -> (3, T, H, W)


def resize_short_side(clip: Tensor, size: int) -> Tensor:
    """Resize ``(C, T, H, W)`` so that min(H, W) == size, keeping the aspect ratio."""
    _, _, h, w = clip.shape
    scale = size / min(h, w)
    out_hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    if out_hw == (h, w):
        return clip
    # Treat time as the batch: (C, T, H, W) -> (T, C, H, W) -> resize -> (C, T, H', W').
    frames = F.interpolate(clip.transpose(0, 1), size=out_hw, mode="bilinear",
                           align_corners=False, antialias=scale < 1)
    return frames.transpose(0, 1)


def center_crop(clip: Tensor, size: int) -> Tensor:
    """The central ``size x size`` window of ``(C, T, H, W)`` (padded with zeros if smaller)."""
    clip = _pad_to(clip, size)
    h, w = clip.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return clip[..., top:top + size, left:left + size]


def random_crop(clip: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """A random ``size x size`` window of ``(C, T, H, W)``, the same for every frame."""
    clip = _pad_to(clip, size)
    h, w = clip.shape[-2:]
    top = int(torch.randint(h - size + 1, (), generator=generator))
    left = int(torch.randint(w - size + 1, (), generator=generator))
    return clip[..., top:top + size, left:left + size]


def normalize(clip: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(clip - mean) / std`` per channel of ``(C, T, H, W)``."""
    mean_t = torch.tensor(mean, dtype=clip.dtype, device=clip.device).view(-1, 1, 1, 1)  # (C, 1, 1, 1)
    std_t = torch.tensor(std, dtype=clip.dtype, device=clip.device).view(-1, 1, 1, 1)  # (C, 1, 1, 1)
    return (clip - mean_t).div_(std_t)


def _pad_to(clip: Tensor, size: int) -> Tensor:
    h, w = clip.shape[-2:]
    if h >= size and w >= size:
        return clip
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    return F.pad(clip, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
