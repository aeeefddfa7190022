"""Real video on PyAV: class-per-folder trees, Kinetics-style CSV and Something-Something JSON.

Every loader returns a ``VideoDataset``: a list of ``(path, label)`` items plus the class names.
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

import csv
import json
import multiprocessing as mp
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from search.data.transforms import ClipTransform

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v")


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
        failures: videos skipped so far, summed over DataLoader workers.
    """

    def __init__(self, items: Sequence[tuple[str | Path, int]], classes: Sequence[str],
                 sampling: ClipSampling | None = None, transform: ClipTransform | None = None,
                 max_substitutes: int = 16) -> None:
        self.items = [(str(path), int(label)) for path, label in items]
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.sampling = sampling or ClipSampling()
        self.transform = transform or ClipTransform()
        self.max_substitutes = max_substitutes  # bad videos tried in a row before giving up
        self._failures = mp.get_context("spawn").Value("i", 0)  # shared with worker processes
        self._bad: set[int] = set()  # indices known bad in this process

    def __len__(self) -> int:
        return len(self.items)

    @property
    def failures(self) -> int:
        """Number of videos that could not be decoded so far (all workers)."""
        return int(self._failures.value)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        for attempt in range(self.max_substitutes + 1):
            i = (index + attempt) % len(self.items)
            if i in self._bad:
                continue
            path, label = self.items[i]
            try:
                frames = decode_clip(path, self.sampling)
            except Exception as err:  # PyAV raises several error types for broken files
                self._bad.add(i)
                with self._failures.get_lock():
                    self._failures.value += 1
                warnings.warn(f"skipping unreadable video {path}: {type(err).__name__}: {err}",
                              RuntimeWarning, stacklevel=2)
                continue
            return self.transform(frames), label
        raise RuntimeError(f"{self.max_substitutes + 1} videos in a row from index {index} "
                           f"could not be decoded; is the dataset root right?")


def decode_clip(path: str | Path, sampling: ClipSampling,
                generator: torch.Generator | None = None) -> Tensor:
    """Decode the frames of one clip with PyAV: uint8 ``(T, H, W, 3)``.

    Decodes from the start up to the last frame needed. When the container does not state its
    frame count, or states more frames than it holds (a truncated file), the frames actually
    decoded are used. Raises when no frame can be decoded.
    """
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


# --- layouts ---------------------------------------------------------------------------------
def folder_dataset(root: str | Path, *, split_dir: str | Path | None = None, split: int = 1,
                   train: bool = True, sampling: ClipSampling | None = None,
                   transform: ClipTransform | None = None) -> VideoDataset:
    """A class-per-folder tree ``root/<class>/<video>`` (UCF101 / HMDB51 layout).

    Args:
        root: the folder of class folders.
        split_dir: folder with UCF101 (``classInd.txt``, ``trainlist0N.txt``,
            ``testlist0N.txt``) or HMDB51 (``<class>_test_splitN.txt``) split files; None
            takes every video under ``root``.
        split: which official split (1, 2 or 3).
        train: the training or the test part of the split.
        sampling, transform: clip sampling and transform (defaults follow ``train``).
    """
    root = Path(root)
    sampling = sampling or ClipSampling(mode="random" if train else "center")
    transform = transform or ClipTransform(train=train)
    if split_dir is None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        items = [(path, label) for label, name in enumerate(classes)
                 for path in sorted((root / name).iterdir()) if path.suffix.lower() in VIDEO_SUFFIXES]
        return VideoDataset(items, classes, sampling, transform)
    split_dir = Path(split_dir)
    if (split_dir / "classInd.txt").exists():
        classes, items = _ucf_split(root, split_dir, split, train)
    else:
        classes, items = _hmdb_split(root, split_dir, split, train)
    return VideoDataset(items, classes, sampling, transform)


def _ucf_split(root: Path, split_dir: Path, split: int,
               train: bool) -> tuple[list[str], list[tuple[Path, int]]]:
    # classInd.txt: "1 ApplyEyeMakeup" (1-based); lists: "Class/v_x.avi [label]".
    index = {}
    for line in (split_dir / "classInd.txt").read_text().split("\n"):
        if line.strip():
            number, name = line.split()
            index[name] = int(number) - 1
    classes = [name for name, _ in sorted(index.items(), key=lambda kv: kv[1])]
    listing = split_dir / f"{'train' if train else 'test'}list{split:02d}.txt"
    items = []
    for line in listing.read_text().split("\n"):
        if line.strip():
            relative = line.split()[0]
            items.append((root / relative, index[relative.split("/")[0]]))
    return classes, items


def _hmdb_split(root: Path, split_dir: Path, split: int,
                train: bool) -> tuple[list[str], list[tuple[Path, int]]]:
    # One file per class, "<class>_test_split<N>.txt", lines "video.avi 1|2|0" (train|test|unused).
    files = sorted(split_dir.glob(f"*_test_split{split}.txt"))
    if not files:
        raise FileNotFoundError(f"no classInd.txt (UCF101) or *_test_split{split}.txt (HMDB51) "
                                f"in {split_dir}")
    classes = [re.sub(rf"_test_split{split}\.txt$", "", f.name) for f in files]
    wanted = "1" if train else "2"
    items = []
    for label, (name, file) in enumerate(zip(classes, files, strict=True)):
        for line in file.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[1] == wanted:
                items.append((root / name / parts[0], label))
    return classes, items


def csv_dataset(csv_path: str | Path, root: str | Path, *, split: str | None = None,
                classes: Sequence[str] | None = None, suffix: str = ".mp4",
                sampling: ClipSampling | None = None,
                transform: ClipTransform | None = None) -> VideoDataset:
    """Kinetics-style CSV (``label,youtube_id,time_start,time_end,split``) or ``path,label``.

    Args:
        csv_path: the annotation file (with a header row).
        root: where the videos are; Kinetics files are ``root/<label>/<id>_<start>_<end>.mp4``.
        split: keep only rows of this ``split`` column value (Kinetics), e.g. ``"train"``.
        classes: class names in label order; default: sorted labels found in the CSV.
        suffix: video file suffix of Kinetics rows.
        sampling, transform: clip sampling and transform.
    """
    root = Path(root)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    if rows and "youtube_id" in rows[0]:
        def locate(r: dict) -> Path:
            name = (f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_"
                    f"{int(float(r['time_end'])):06d}{suffix}")
            return root / r["label"] / name
    elif rows and "path" in rows[0]:
        def locate(r: dict) -> Path:
            return root / r["path"]
    elif rows:
        raise ValueError(f"{csv_path}: expected columns label,youtube_id,time_start,time_end"
                         f"[,split] or path,label; got {list(rows[0])}")
    classes = list(classes) if classes is not None else sorted({r["label"] for r in rows})
    index = {name: i for i, name in enumerate(classes)}
    items = [(locate(r), index[r["label"]]) for r in rows]
    train = split in (None, "train")
    return VideoDataset(items, classes, sampling or ClipSampling(mode="random" if train else "center"),
                        transform or ClipTransform(train=train))


def json_dataset(json_path: str | Path, labels_path: str | Path, root: str | Path, *,
                 suffix: str = ".webm", train: bool = True, sampling: ClipSampling | None = None,
                 transform: ClipTransform | None = None) -> VideoDataset:
    """Something-Something-style JSON: ``[{"id", "template", "label"}]`` plus a labels JSON.

    The class of an entry is its ``template`` with the brackets removed (``"Pushing
    [something] from left to right"`` -> ``"Pushing something from left to right"``), indexed
    by ``labels_path`` (``{"Pushing something from left to right": "86", ...}``). Left/right
    labels make horizontal flips wrong, so the default transform does not flip.
    """
    root = Path(root)
    labels = {name: int(i) for name, i in json.loads(Path(labels_path).read_text()).items()}
    classes = [name for name, _ in sorted(labels.items(), key=lambda kv: kv[1])]
    items = []
    for entry in json.loads(Path(json_path).read_text()):
        template = entry["template"].replace("[", "").replace("]", "")
        items.append((root / f"{entry['id']}{suffix}", labels[template]))
    return VideoDataset(items, classes, sampling or ClipSampling(mode="random" if train else "center"),
                        transform or ClipTransform(train=train, hflip=False))
