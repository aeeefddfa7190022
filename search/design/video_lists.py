"""Which videos a real-video data config reads: the listings, torch-free and PyAV-free.

A listing is ``(classes, items)``: class names in label order and ``(path, label)`` pairs. Nothing
is opened or decoded here, so the study checks (``search.design.studies``) find the classes and
report a missing path without loading the training stack; ``search.data.video`` wraps the same
listings in ``VideoDataset``s that decode clips.

Layouts:
- ``folder_listing(root)``: ``root/<class>/<video>``; with UCF101 split files
  (``classInd.txt``, ``trainlist01.txt``/``testlist01.txt``) or HMDB51 split files
  (``<class>_test_split1.txt`` with ``name 1|2``) when ``split_dir`` is given.
- ``csv_listing(csv, root)``: Kinetics (``label,youtube_id,time_start,time_end,split``, files at
  ``root/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``) or plain ``path,label``.
- ``json_listing(json, labels_json, root)``: Something-Something v2 (``[{"id", "template",
  "label"}]``; class = template without brackets, indexed by ``labels_json``; ``root/<id>.webm``).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v")
Items = list[tuple[Path, int]]


# --- layouts ---------------------------------------------------------------------------------
def folder_listing(root: str | Path, *, split_dir: str | Path | None = None, split: int = 1,
                   train: bool = True) -> tuple[list[str], Items]:
    """A class-per-folder tree ``root/<class>/<video>`` (UCF101 / HMDB51 layout).

    Args:
        root: the folder of class folders.
        split_dir: folder with UCF101 (``classInd.txt``, ``trainlist0N.txt``,
            ``testlist0N.txt``) or HMDB51 (``<class>_test_splitN.txt``) split files; None
            takes every video under ``root``.
        split: which official split (1, 2 or 3).
        train: the training or the test part of the split.
    """
    root = Path(root)
    if split_dir is None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        items = [(path, label) for label, name in enumerate(classes)
                 for path in sorted((root / name).iterdir()) if path.suffix.lower() in VIDEO_SUFFIXES]
        return classes, items
    split_dir = Path(split_dir)
    if (split_dir / "classInd.txt").exists():
        return _ucf_split(root, split_dir, split, train)
    return _hmdb_split(root, split_dir, split, train)


def _ucf_split(root: Path, split_dir: Path, split: int, train: bool) -> tuple[list[str], Items]:
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


def _hmdb_split(root: Path, split_dir: Path, split: int, train: bool) -> tuple[list[str], Items]:
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


def csv_listing(csv_path: str | Path, root: str | Path, *, split: str | None = None,
                classes: Sequence[str] | None = None,
                suffix: str = ".mp4") -> tuple[list[str], Items]:
    """Kinetics-style CSV (``label,youtube_id,time_start,time_end,split``) or ``path,label``.

    Args:
        csv_path: the annotation file (with a header row).
        root: where the videos are; Kinetics files are ``root/<label>/<id>_<start>_<end>.mp4``.
        split: keep only rows of this ``split`` column value (Kinetics), e.g. ``"train"``.
        classes: class names in label order; default: sorted labels found in the CSV.
        suffix: video file suffix of Kinetics rows.
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
    return classes, [(locate(r), index[r["label"]]) for r in rows]


def json_listing(json_path: str | Path, labels_path: str | Path, root: str | Path, *,
                 suffix: str = ".webm") -> tuple[list[str], Items]:
    """Something-Something-style JSON: ``[{"id", "template", "label"}]`` plus a labels JSON.

    The class of an entry is its ``template`` with the brackets removed (``"Pushing
    [something] from left to right"`` -> ``"Pushing something from left to right"``), indexed
    by ``labels_path`` (``{"Pushing something from left to right": "86", ...}``).
    """
    root = Path(root)
    labels = {name: int(i) for name, i in json.loads(Path(labels_path).read_text()).items()}
    classes = [name for name, _ in sorted(labels.items(), key=lambda kv: kv[1])]
    items = []
    for entry in json.loads(Path(json_path).read_text()):
        template = entry["template"].replace("[", "").replace("]", "")
        items.append((root / f"{entry['id']}{suffix}", labels[template]))
    return classes, items


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


@dataclass(frozen=True)
class VideoLists:
    """The videos of a data config: class names, and the training and validation items."""

    classes: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]


def video_lists(data: Mapping[str, Any]) -> VideoLists:
    """The train and validation videos of a data config (``DataConfig`` fields).

    Without a validation split (a folder without ``split_dir``, a CSV / JSON without
    ``val_annotations``) ``val_fraction`` of every class is held out, chosen by ``data_seed``.
    ``classes`` keeps a subset (labels follow its order); ``n_train`` / ``n_val`` keep at most
    that many videos (a random subset, also drawn with ``data_seed``; null: 0). Raises
    ``DataError`` naming the key of what cannot be read.
    """
    source = data["source"]
    check_paths(data)
    root = Path(str(data["root"])).expanduser()
    val: tuple[list[str], Items] | None = None
    try:
        if source == "folder":
            split_dir, split = data.get("split_dir"), int(data.get("split", 1))
            train = folder_listing(root, split_dir=split_dir, split=split, train=True)
            if split_dir:
                val = folder_listing(root, split_dir=split_dir, split=split, train=False)
        elif source == "csv":
            suffix = data.get("suffix") or ".mp4"
            train = csv_listing(data["annotations"], root, suffix=suffix)
            if data.get("val_annotations"):
                val = csv_listing(data["val_annotations"], root, suffix=suffix, classes=train[0])
        else:
            suffix = data.get("suffix") or ".webm"
            train = json_listing(data["annotations"], data["labels"], root, suffix=suffix)
            if data.get("val_annotations"):
                val = json_listing(data["val_annotations"], data["labels"], root, suffix=suffix)
    except (OSError, KeyError, ValueError) as exc:
        key = "split_dir" if source == "folder" and data.get("split_dir") else (
            "root" if source == "folder" else "annotations")
        raise DataError(f"data.{key}: cannot read the dataset: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    seed = int(data.get("data_seed") or 0)  # a trial passes its own (search.design.protocol)
    train_items = [(str(p), int(y)) for p, y in train[1]]
    val_items = [(str(p), int(y)) for p, y in val[1]] if val is not None else None
    if val_items is None:
        train_items, val_items = _hold_out(train_items, float(data.get("val_fraction", 0.2)), seed)
    classes = list(train[0])
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
    return VideoLists(classes, train_items, val_items)


def draws_with_seed(data: Mapping[str, Any]) -> bool:
    """True when ``video_lists`` draws with ``data_seed``: a held-out val split (no official one
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
