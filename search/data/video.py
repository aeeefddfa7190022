"""Real video on PyAV: class-per-folder trees, Kinetics-style CSV and Something-Something JSON.

Every loader returns a ``VideoDataset``: a list of ``(path, label)`` items plus the class names
(the listing itself, torch-free, is ``search.design.video_lists``).
``dataset[i]`` decodes one clip with PyAV, samples ``clip_len`` frames (random temporal jitter,
uniform over the whole video, or the centre; every ``frame_stride``-th frame), and resizes, crops
and normalises it to float ``(3, T, H, W)``. A video that cannot be opened or decoded (missing,
corrupt, truncated to nothing) is skipped with a warning and counted in ``dataset.failures``;
the next readable video stands in for it, so an epoch never crashes on bad files and batches
keep their size. Use it with a ``DataLoader`` (``TrainConfig.num_workers``) as any dataset.

Layouts:
- ``folder_dataset(root)``: ``root/<class>/<video>``; with UCF101 split files
  (``classInd.txt``, ``trainlist01.txt``/``testlist01.txt``) or HMDB51 split files
  (``<class>_test_split1.txt`` with ``name 1|2``) when ``split_dir`` is given.
- ``csv_dataset(csv, root)``: Kinetics (``label,youtube_id,time_start,time_end,split``, files at
  ``root/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``) or plain ``path,label``.
- ``json_dataset(json, labels_json, root)``: Something-Something v2 (``[{"id", "template",
  "label"}]``; class = template without brackets, indexed by ``labels_json``; ``root/<id>.webm``).
"""

from __future__ import annotations

import multiprocessing as mp
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import torch
from torch import Tensor

from search.data.decoders import check_decoder, decode_frames
from search.data.transforms import ClipTransform
from search.design.video_lists import SOURCE_PATHS as SOURCE_PATHS
from search.design.video_lists import VIDEO_SUFFIXES as VIDEO_SUFFIXES
from search.design.video_lists import DataError as DataError
from search.design.video_lists import check_paths as check_paths
from search.design.video_lists import csv_listing, folder_listing, json_listing, video_lists
from search.design.video_lists import draws_with_seed as draws_with_seed

if TYPE_CHECKING:
    from search.data.cache import ClipCache


@dataclass(frozen=True)
class ClipSampling:
    """Which frames of a video make a clip."""

    clip_len: int = 16  # frames per clip (T)
    frame_stride: int = 2  # take every n-th frame ("random" and "center")
    mode: str = "random"  # "random" (temporal jitter, training), "center", or "uniform" (spread over the video)

    def indices(self, n_frames: int, generator: torch.Generator | None = None) -> np.ndarray:
        """Frame indices into a video of ``n_frames`` frames; short videos repeat their last frame."""
        span = (self.clip_len - 1) * self.frame_stride + 1
        if self.mode == "uniform":
            # Evenly spread over the whole video (TSN-style), ignoring frame_stride.
            return np.linspace(0, n_frames - 1, self.clip_len).round().astype(np.int64)
        slack = max(0, n_frames - span)
        if self.mode == "random":
            start = int(torch.randint(slack + 1, (), generator=generator))
        elif self.mode == "center":
            start = slack // 2
        else:
            raise ValueError(f"mode: unknown {self.mode!r}; choose random, center or uniform")
        return np.minimum(start + self.frame_stride * np.arange(self.clip_len), n_frames - 1)


class VideoDataset(torch.utils.data.Dataset):
    """Clips decoded on the fly from ``(path, label)`` items; bad videos skipped and counted.

    Attributes:
        items: ``(path, label)`` pairs.
        classes: class names; ``label`` indexes them.
        failures: distinct videos skipped so far, over all DataLoader workers.
    """

    def __init__(self, items: Sequence[tuple[str | Path, int]], classes: Sequence[str],
                 sampling: ClipSampling | None = None, transform: ClipTransform | None = None,
                 max_substitutes: int = 16, decoder: str = "auto",
                 decode_device: str = "cpu") -> None:
        self.items = [(str(path), int(label)) for path, label in items]
        self.decoder_setting = decoder  # data.decoder: "auto", "torchcodec" or "pyav"
        self._decoder: str | None = None  # resolved on first use (see ``decoder``)
        self.decode_device = decode_device  # "cuda": torchcodec decodes on the GPU
        self.cache: ClipCache | None = None  # set by use_cache: clips read, not decoded
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.sampling = sampling or ClipSampling()
        self.transform = transform or ClipTransform()
        self.max_substitutes = max_substitutes  # bad videos tried in a row before giving up
        ctx = mp.get_context("spawn")
        self._failures = ctx.Value("i", 0)  # shared with worker processes
        # One flag per item, shared with worker processes: a video found bad is counted once
        # and never decoded again, in any worker or epoch.
        self._bad_flags = ctx.RawArray("b", max(1, len(self.items)))
        self._bad: set[int] = set()  # indices known bad in this process

    def __len__(self) -> int:
        return len(self.items)

    @property
    def failures(self) -> int:
        """Number of distinct videos that could not be decoded so far (all workers)."""
        return int(self._failures.value)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        for attempt in range(self.max_substitutes + 1):
            i = (index + attempt) % len(self.items)
            if i in self._bad or self._bad_flags[i]:
                continue
            path, label = self.items[i]
            try:
                if self.cache is not None:  # uint8 frames already at the resize
                    frames, indices = self.cache.clip(i, self.sampling)
                    clip = self.transform.from_resized(frames, indices=indices)
                else:
                    clip = self.transform(decode_clip(path, self.sampling, decoder=self.decoder,
                                                      device=self.decode_device))
            except Exception as err:  # decoders raise several error types for broken files
                self._bad.add(i)
                with self._failures.get_lock():
                    if not self._bad_flags[i]:  # two workers may hit it at once: count it once
                        self._bad_flags[i] = 1
                        self._failures.value += 1
                warnings.warn(f"skipping unreadable video {path}: {type(err).__name__}: {err}",
                              RuntimeWarning, stacklevel=2)
                continue
            return clip, label
        raise RuntimeError(f"{self.max_substitutes + 1} videos in a row from index {index} "
                           f"could not be decoded; is the dataset root right?")


    @property
    def decoder(self) -> str:
        """The decoder that runs: ``"torchcodec"`` or ``"pyav"`` (a notice when auto falls back)."""
        if self._decoder is None:
            self._decoder = check_decoder(self.decoder_setting, self.decode_device)
            if self._decoder == "pyav":
                self.decode_device = "cpu"
        return self._decoder

    def use_cache(self, directory: str | Path, workers: int = 0) -> None:
        """Read clips from the decoded-clip cache under ``directory``, building it first when
        no valid one exists for these videos and this sampling (``search.data.cache``)."""
        if self.cache is None:
            from search.data.cache import open_or_build

            self.cache = open_or_build(self, Path(directory).expanduser(), workers=workers)


def decode_clip(path: str | Path, sampling: ClipSampling,
                generator: torch.Generator | None = None, *, decoder: str = "pyav",
                device: str = "cpu") -> Tensor:
    """Decode the frames of one clip: uint8 ``(T, H, W, 3)``.

    torchcodec (``decoder="torchcodec"``) counts the frames the file holds, then decodes those
    of the clip. PyAV decodes from the start up to the last frame needed; when the container
    does not state its frame count, or states more frames than it holds (a truncated file),
    the frames actually decoded are used. Raises when no frame can be decoded.
    """
    if decoder != "pyav":
        return decode_frames(path, lambda n: sampling.indices(n, generator), decoder=decoder,
                             device=device)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n_stated = stream.frames
        wanted = sampling.indices(n_stated, generator) if n_stated > 0 else None
        keep = set(wanted.tolist()) if wanted is not None else None  # None: keep every frame
        last = int(wanted.max()) if wanted is not None else None
        frames: dict[int, np.ndarray] = {}
        count = 0
        for frame in container.decode(stream):
            if keep is None or count in keep:
                frames[count] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
            count += 1
            if last is not None and count > last:
                break
    if count == 0:
        raise ValueError("no decodable video frames")
    if wanted is None or count <= last:  # unknown or overstated length: use what is there
        if keep is not None:  # frames were skipped on the way: decode them all (rare)
            frames = _decode_all(path)
            count = len(frames)
        wanted = sampling.indices(count, generator)
    return torch.from_numpy(np.stack([frames[int(i)] for i in wanted]))  # (T, H, W, 3)


def _decode_all(path: str | Path) -> dict[int, np.ndarray]:
    with av.open(str(path)) as container:
        return {i: frame.to_ndarray(format="rgb24")
                for i, frame in enumerate(container.decode(container.streams.video[0]))}


# --- layouts (the listings: search.design.video_lists) ------------------------------------------
def folder_dataset(root: str | Path, *, split_dir: str | Path | None = None, split: int = 1,
                   train: bool = True, sampling: ClipSampling | None = None,
                   transform: ClipTransform | None = None) -> VideoDataset:
    """A class-per-folder tree ``root/<class>/<video>`` (UCF101 / HMDB51 layout): the arguments
    of ``folder_listing``, plus the clip sampling and transform (defaults follow ``train``)."""
    classes, items = folder_listing(root, split_dir=split_dir, split=split, train=train)
    return VideoDataset(items, classes, sampling or ClipSampling(mode="random" if train else "center"),
                        transform or ClipTransform(train=train))


def csv_dataset(csv_path: str | Path, root: str | Path, *, split: str | None = None,
                classes: Sequence[str] | None = None, suffix: str = ".mp4",
                sampling: ClipSampling | None = None,
                transform: ClipTransform | None = None) -> VideoDataset:
    """Kinetics-style CSV or ``path,label`` (``csv_listing``), plus sampling and transform."""
    names, items = csv_listing(csv_path, root, split=split, classes=classes, suffix=suffix)
    train = split in (None, "train")
    return VideoDataset(items, names, sampling or ClipSampling(mode="random" if train else "center"),
                        transform or ClipTransform(train=train))


def json_dataset(json_path: str | Path, labels_path: str | Path, root: str | Path, *,
                 suffix: str = ".webm", train: bool = True, sampling: ClipSampling | None = None,
                 transform: ClipTransform | None = None) -> VideoDataset:
    """Something-Something-style JSON (``json_listing``), plus sampling and transform. Left/right
    labels make horizontal flips wrong, so the default transform does not flip."""
    classes, items = json_listing(json_path, labels_path, root, suffix=suffix)
    return VideoDataset(items, classes, sampling or ClipSampling(mode="random" if train else "center"),
                        transform or ClipTransform(train=train, hflip=False))


# --- from a study's data config ----------------------------------------------------------------
def video_sets(data: Mapping[str, Any]) -> tuple[VideoDataset, VideoDataset]:
    """The train and validation ``VideoDataset`` of a data config (``DataConfig`` fields).

    Lists the videos only (nothing is decoded): ``video_lists`` picks them (held-out split,
    ``classes`` subset, ``n_train`` / ``n_val``, all drawn with ``data_seed``); raises
    ``DataError`` naming the key of what cannot be read.
    """
    lists = video_lists(data)
    hflip = data.get("hflip")
    hflip = data["source"] != "json" if hflip is None else bool(hflip)

    def parts(train: bool) -> dict[str, Any]:
        return {"sampling": ClipSampling(clip_len=int(data["clip_len"]),
                                         frame_stride=int(data.get("frame_stride") or 1),
                                         mode=data["train_sampling" if train else "val_sampling"]),
                "transform": ClipTransform(resize=int(data.get("resize") or 0),
                                           crop_size=int(data["crop_size"]), train=train,
                                           hflip=hflip),
                "decoder": data.get("decoder") or "auto",
                "decode_device": data.get("decode_device") or "cpu"}

    sets = (VideoDataset(lists.train, lists.classes, **parts(True)),
            VideoDataset(lists.val, lists.classes, **parts(False)))
    for dataset in sets:  # resolved (and any fallback noticed) here, in the process that lists
        _ = dataset.decoder
    return sets
