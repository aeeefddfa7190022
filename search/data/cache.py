"""The decoded-clip cache: every video decoded once into memory-mapped uint8 shards.

``data.cache=true`` makes a trial decode its videos once (``open_or_build``) and read clips from
the cache in every epoch after (``ClipCache.clip``), so decoding is paid once per node, not once
per epoch and trial. What is stored is what the clip sampling allows:

- random sampling (training: temporal jitter): every frame of every video at the resize
  (short side ``resize``); the clip's frames, crop and flip are drawn from them each epoch;
- centre / uniform sampling (validation): the clip's frames only, at the resize.

A cache lives in ``<cache_dir>/<key>/``: raw uint8 shards (``shard-00000.u8``, read with
``numpy.memmap``) and ``index.json`` (offset and shape of every video's frames, or the error
that made it unreadable; no pickle). ``key`` hashes everything that determines the stored
frames: the videos (paths in order, sizes, modification times), the resize, the decoder, and
for centre / uniform sampling the clip length, stride and mode; a change of any of them is a
new key, hence a new cache (old ones stay until removed: ``rm -r <cache_dir>``). A cache is
written under a temporary name and renamed into place whole, by one process at a time (a lock
file), so readers never see half a cache and a concurrent or killed writer corrupts nothing.
Size: frames x H x W x 3 bytes, e.g. 64 frames at 128 x 171 are 4.2 MB per training video.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search.data.decoders import decode_frames, notice
from search.data.transforms import resize_frames

CACHE_VERSION = 1  # bump when the layout or the stored content changes
SHARD_BYTES = 1 << 30  # a new shard starts past this size
INDEX = "index.json"


class CachedFailure(RuntimeError):
    """The video could not be decoded when the cache was written (the message says why)."""


def cache_key(dataset: Any) -> str:
    """Hex key of everything that determines the frames a cache of ``dataset`` holds."""
    files = []
    for path, _ in dataset.items:
        try:
            stat = os.stat(path)
            files.append([path, stat.st_size, stat.st_mtime_ns])
        except OSError:
            files.append([path, -1, -1])
    sampling = dataset.sampling
    what: dict[str, Any] = {"version": CACHE_VERSION, "files": files, "mode": sampling.mode,
                            "resize": dataset.transform.resize, "decoder": dataset.decoder}
    if sampling.mode != "random":  # the stored clip is fixed by the sampling
        what.update(clip_len=sampling.clip_len, frame_stride=sampling.frame_stride)
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


class ClipCache:
    """The read side: clips of one dataset from its shards (opened lazily in every process)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        index = json.loads((directory / INDEX).read_text())
        if index.get("version") != CACHE_VERSION:
            raise ValueError(f"{directory}: cache version {index.get('version')}")
        self.mode: str = index["mode"]
        self.entries: list[dict[str, Any]] = index["entries"]
        self.shards: list[str] = index["shards"]
        for name, size in zip(self.shards, index["shard_bytes"], strict=True):
            if (directory / name).stat().st_size != size:
                raise ValueError(f"{directory / name}: truncated shard")
        self._maps: dict[int, np.memmap] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers map the shards themselves (a pickled memmap would be a full copy).
        return {**self.__dict__, "_maps": {}}

    def frames(self, index: int) -> np.ndarray:
        """The stored uint8 frames of video ``index``: ``(N, H, W, 3)``, a read-only view."""
        entry = self.entries[index]
        if "error" in entry:
            raise CachedFailure(entry["error"])
        shard = entry["shard"]
        if shard not in self._maps:
            self._maps[shard] = np.memmap(self.directory / self.shards[shard], dtype=np.uint8,
                                          mode="r")
        n, h, w = entry["shape"]
        flat = self._maps[shard][entry["offset"]:entry["offset"] + n * h * w * 3]
        return flat.reshape(n, h, w, 3)  # (N * H * W * 3,) -> (N, H, W, 3)

    def clip(self, index: int, sampling: Any, generator: torch.Generator | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Video ``index``'s stored frames and the clip's indices among them (None: all).

        Random sampling stores every frame, so the clip's frames are drawn here (the same draw
        as decoding would make); otherwise the stored frames are the clip. Nothing is copied:
        ``ClipTransform.from_resized`` copies the crop only.
        """
        frames = self.frames(index)
        if self.mode == "random":
            return frames, sampling.indices(len(frames), generator)
        return frames, None


def open_or_build(dataset: Any, root: Path, *, workers: int = 0) -> ClipCache:
    """The cache of ``dataset`` under ``root``: opened when a valid one exists, else written
    first (decoding every video once, ``workers`` DataLoader processes) and then opened."""
    final = root / cache_key(dataset)
    cache = _open(final)
    if cache is not None:
        return cache
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{final.name}.lock"):
        cache = _open(final)  # another process may have written it while we waited
        if cache is not None:
            return cache
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=root))
        try:
            _write(dataset, tmp, workers)
            if final.exists():  # an invalid leftover (we hold the lock): replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if _open(final) is None:  # not a concurrent writer's finished cache: a real error
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    cache = _open(final)
    if cache is None:
        raise RuntimeError(f"{final}: the clip cache was written but cannot be read")
    return cache


def _open(directory: Path) -> ClipCache | None:
    try:
        return ClipCache(directory)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file (released when the process dies, too)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Decoded(torch.utils.data.Dataset):
    """What the cache stores of each video: uint8 frames at the resize, or an error line."""

    def __init__(self, dataset: Any) -> None:
        self.paths = [path for path, _ in dataset.items]
        self.sampling = dataset.sampling
        self.resize = dataset.transform.resize
        self.decoder = dataset.decoder
        self.device = dataset.decode_device

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray | str:
        path = self.paths[index]
        try:
            # random: every frame (the clip is drawn at read time); else the fixed clip
            which = None if self.sampling.mode == "random" else self.sampling.indices
            frames = decode_frames(path, which, decoder=self.decoder, device=self.device)
            return resize_frames(frames, self.resize).cpu().numpy()
        except Exception as err:  # decoders raise several error types for broken files
            return f"unreadable video {path}: {type(err).__name__}: {err}".splitlines()[0]


def _identity(item: Any) -> Any:
    return item


def _write(dataset: Any, directory: Path, workers: int) -> None:
    """Decode every video of ``dataset`` once into shards and an index in ``directory``."""
    source = _Decoded(dataset)
    workers = 0 if source.device != "cpu" else workers  # CUDA decoding stays in this process
    loader = torch.utils.data.DataLoader(source, batch_size=None, num_workers=workers,
                                         collate_fn=_identity)
    notice(f"caching {len(source)} videos ({dataset.sampling.mode} sampling) in {directory.parent}")
    t0 = time.monotonic()
    entries: list[dict[str, Any]] = []
    shards: list[str] = []
    sizes: list[int] = []
    for item in loader:
        if isinstance(item, str):
            entries.append({"error": item})
            continue
        if not sizes or sizes[-1] >= SHARD_BYTES:
            shards.append(f"shard-{len(shards):05d}.u8")
            sizes.append(0)
        frames = np.ascontiguousarray(item)
        entries.append({"shard": len(shards) - 1, "offset": sizes[-1],
                        "shape": list(frames.shape[:3])})
        with open(directory / shards[-1], "ab") as handle:
            handle.write(memoryview(frames).cast("B"))
        sizes[-1] += frames.nbytes
    index = {"version": CACHE_VERSION, "mode": dataset.sampling.mode, "entries": entries,
             "shards": shards, "shard_bytes": sizes}
    (directory / INDEX).write_text(json.dumps(index))
    notice(f"cached {len(entries)} videos: {sum(sizes) / 2**20:.1f} MiB in "
           f"{time.monotonic() - t0:.1f} s ({directory.parent / directory.name.split('.tmp-')[0]})")
