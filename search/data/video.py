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
import random
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import torch
from torch import Tensor

from search.data.decoders import decode_frames, notice, resolve_decoder
from search.data.transforms import ClipTransform

if TYPE_CHECKING:
    from search.data.cache import ClipCache

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
            self._decoder = resolve_decoder(self.decoder_setting)
            if self._decoder == "pyav" and self.decode_device != "cpu":
                notice(f"notice: data.decode_device={self.decode_device}: PyAV decodes on the "
                       f"CPU only; decoding on the CPU")
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


# --- from a study's data config ----------------------------------------------------------------
# The paths each source reads: (config key, must be a directory, required).
SOURCE_PATHS: dict[str, tuple[tuple[str, bool, bool], ...]] = {
    "folder": (("root", True, True), ("split_dir", True, False)),
    "csv": (("root", True, True), ("annotations", False, True), ("val_annotations", False, False)),
    "json": (("root", True, True), ("annotations", False, True), ("labels", False, True),
             ("val_annotations", False, False)),
}


class DataError(ValueError):
    """A real-video data config cannot be read; the message starts with ``data.<key>``."""


def check_paths(data: Mapping[str, Any]) -> None:
    """Raise ``DataError`` naming the key and the path of the first missing file or folder."""
    for key, is_dir, required in SOURCE_PATHS[data["source"]]:
        value = data.get(key)
        if value in (None, "", "???"):
            if required:
                raise DataError(f"data.{key}: not set; data.source={data['source']} needs it "
                               f"(data.{key}=PATH)")
            continue
        path = Path(str(value)).expanduser()
        if is_dir and not path.is_dir():
            raise DataError(f"data.{key}: no such directory: {path}")
        if not is_dir and not path.is_file():
            raise DataError(f"data.{key}: no such file: {path}")


def video_sets(data: Mapping[str, Any]) -> tuple[VideoDataset, VideoDataset]:
    """The train and validation ``VideoDataset`` of a data config (``DataConfig`` fields).

    Lists the videos only (nothing is decoded), so the driver calls it to find the classes and
    the trials call it to train. Without a validation split (a folder without ``split_dir``, a
    CSV / JSON without ``val_annotations``) ``val_fraction`` of every class is held out, chosen
    by ``data_seed``. ``classes`` keeps a subset (labels follow its order); ``n_train`` / ``n_val``
    keep at most that many videos (a random subset, also drawn with ``data_seed``; null: 0).
    """
    source = data["source"]
    check_paths(data)
    root = Path(str(data["root"])).expanduser()
    hflip = data.get("hflip")
    hflip = source != "json" if hflip is None else bool(hflip)

    def parts(train: bool) -> dict[str, Any]:
        return {"sampling": ClipSampling(clip_len=int(data["clip_len"]),
                                         frame_stride=int(data.get("frame_stride") or 1),
                                         mode=data["train_sampling" if train else "val_sampling"]),
                "transform": ClipTransform(resize=int(data.get("resize") or 0),
                                           crop_size=int(data["crop_size"]), train=train,
                                           hflip=hflip)}

    val: VideoDataset | None = None
    try:
        if source == "folder":
            split_dir = data.get("split_dir")
            train = folder_dataset(root, split_dir=split_dir, split=int(data.get("split", 1)),
                                   train=True, **parts(True))
            if split_dir:
                val = folder_dataset(root, split_dir=split_dir, split=int(data.get("split", 1)),
                                     train=False, **parts(False))
        elif source == "csv":
            suffix = data.get("suffix") or ".mp4"
            train = csv_dataset(data["annotations"], root, suffix=suffix, **parts(True))
            if data.get("val_annotations"):
                val = csv_dataset(data["val_annotations"], root, suffix=suffix,
                                  classes=train.classes, **parts(False))
        else:
            suffix = data.get("suffix") or ".webm"
            train = json_dataset(data["annotations"], data["labels"], root, suffix=suffix,
                                 **parts(True))
            if data.get("val_annotations"):
                val = json_dataset(data["val_annotations"], data["labels"], root, suffix=suffix,
                                   train=False, **parts(False))
    except (OSError, KeyError, ValueError) as exc:
        key = "split_dir" if source == "folder" and data.get("split_dir") else (
            "root" if source == "folder" else "annotations")
        raise DataError(f"data.{key}: cannot read the dataset: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    seed = int(data.get("data_seed") or 0)  # trials pass their effective seed (search.design.protocol)
    train_items, val_items = train.items, val.items if val is not None else None
    if val_items is None:
        train_items, val_items = _hold_out(train_items, float(data.get("val_fraction", 0.2)), seed)
    classes = list(train.classes)
    wanted = data.get("classes")
    if wanted:
        unknown = [c for c in wanted if c not in classes]
        if unknown:
            raise DataError(f"data.classes: {unknown[0]!r} is not a class of the dataset "
                            f"(e.g. {', '.join(classes[:5])})")
        remap = {classes.index(c): i for i, c in enumerate(wanted)}
        train_items = [(p, remap[y]) for p, y in train_items if y in remap]
        val_items = [(p, remap[y]) for p, y in val_items if y in remap]
        classes = list(wanted)
    train_items = _at_most(train_items, data.get("n_train"), seed)
    val_items = _at_most(val_items, data.get("n_val"), seed + 1)
    if not train_items:
        where = data.get("annotations") or data.get("split_dir") or root
        raise DataError(f"data.{'root' if source == 'folder' else 'annotations'}: no training "
                        f"videos found in {where}")
    if not val_items:
        raise DataError("data.val_fraction: no validation videos (raise val_fraction, or give "
                        "a split)")
    decoding = {"decoder": data.get("decoder") or "auto",
                "decode_device": data.get("decode_device") or "cpu"}
    sets = (VideoDataset(train_items, classes, **parts(True), **decoding),
            VideoDataset(val_items, classes, **parts(False), **decoding))
    for dataset in sets:  # resolved (and any fallback noticed) here, in the process that lists
        _ = dataset.decoder
    return sets


def draws_with_seed(data: Mapping[str, Any]) -> bool:
    """True when ``video_sets`` draws with ``data_seed``: a held-out val split (no official one
    given) or an ``n_train`` / ``n_val`` subset. Otherwise the split files fix every video."""
    official = data.get("split_dir") if data["source"] == "folder" else data.get("val_annotations")
    return not official or data.get("n_train") is not None or data.get("n_val") is not None


def _hold_out(items: list[tuple[str, int]], fraction: float,
              seed: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Split every class: ``fraction`` of its videos (at least one, when it has two) to val."""
    by_class: dict[int, list[tuple[str, int]]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    held: set[str] = set()
    for members in by_class.values():
        n_val = min(len(members) - 1, max(1, round(fraction * len(members)))) if fraction > 0 else 0
        held.update(p for p, _ in rng.sample(sorted(members), n_val))
    return [i for i in items if i[0] not in held], [i for i in items if i[0] in held]


def _at_most(items: list[tuple[str, int]], n: Any, seed: int) -> list[tuple[str, int]]:
    if n is None or int(n) >= len(items):
        return list(items)
    keep = set(random.Random(seed).sample(range(len(items)), int(n)))
    return [item for i, item in enumerate(items) if i in keep]
