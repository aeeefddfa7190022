"""Can real video keep up with training? PyAV vs torchcodec vs the decoded-clip cache.

Measures in one run, on the same mp4s (64 frames at 128 x 172, written here with PyAV):

- clips/s of one worker (one process, one torch thread: what a DataLoader worker does; both
  decoders let FFmpeg pick its own threads, as they do in the loader) producing
  16 x 112 x 112 training clips (every 2nd frame, random start, random crop and flip) with
  PyAV, with torchcodec on the CPU, and from the clip cache (``data.cache=true``);
- the rate a CPU trial consumes clips: ``search.train`` on the default study's cheapest network
  (all-2D, widths 8-16-32-64) at 16 x 112 x 112 (a real-video trial), and ``bench_train.py``'s
  reference trial on the synthetic motion clips (what the default studies train), one thread;
- each source's rate divided by each consumption (the cache must reach >= 10x).

Rates are the best of ``--repeats`` passes, so a neighbour's burst on a shared machine does not
decide them. Run::

    python benchmarks/bench_decode.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

CLIP_LEN, STRIDE, RESIZE, CROP = 16, 2, 128, 112


def write_videos(directory: Path, n_videos: int, n_frames: int = 64) -> list[Path]:
    """mp4s (mpeg4, 128 x 172) of a drifting colour pattern with mild noise."""
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:172]
    paths = []
    for i in range(n_videos):
        path = directory / f"v{i}.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("mpeg4", rate=25)
            stream.height, stream.width, stream.pix_fmt = 128, 172, "yuv420p"
            for t in range(n_frames):
                wave = 127 + 100 * (np.sin((xx + 3 * t) / 9.0 + i) * np.cos(yy / 13.0))[..., None]
                image = wave * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 8, (128, 172, 3))
                frame = av.VideoFrame.from_ndarray(image.clip(0, 255).astype(np.uint8),
                                                   format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def clip_rate(dataset: torch.utils.data.Dataset, n_clips: int, repeats: int) -> float:
    """Best clips/s over ``repeats`` passes of ``n_clips`` items (one process)."""
    dataset[0]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n_clips):
            dataset[i % len(dataset)]
        best = min(best, time.perf_counter() - start)
    return n_clips / best


def consumption_rate(steps: int, batch_size: int, repeats: int) -> float:
    """Clips/s ``search.train`` trains the default study's all-2D network at 16 x 112^2."""
    from arch_space.presets import uniform
    from search.data.synthetic import ClipSet
    from search.train import TrainConfig

    spec = uniform("2d", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), num_classes=10,
                   clip_len=CLIP_LEN, crop_size=CROP)
    n = steps * batch_size
    gen = torch.Generator().manual_seed(0)
    clips = ClipSet(torch.randn(n, 3, CLIP_LEN, CROP, CROP, generator=gen),
                    torch.randint(10, (n,), generator=gen), 10)
    val = ClipSet(clips.clips[:1], clips.labels[:1], 10)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, warmup_epochs=0, device="cpu")
    return _train_rate(spec, clips, val, cfg, repeats, seed=0)


def synthetic_consumption_rate(n_clips: int, repeats: int) -> float:
    """Clips/s ``search.train`` trains in a default (synthetic) CPU trial: the reference of
    ``bench_train.py`` (uniform 3D, widths 16-128, the motion task's clips), the issue's 101."""
    from arch_space.presets import uniform
    from search.data.synthetic import default_cpu_config, generate
    from search.train import TrainConfig

    data = default_cpu_config("motion")
    cfg = TrainConfig(epochs=1, warmup_epochs=0, device="cpu")
    spec = uniform("3d", widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), stem_width=16,
                   num_classes=data.num_classes, clip_len=data.clip_len, crop_size=data.size)
    clips = generate(data, n_clips, seed=0)
    val = generate(data, cfg.batch_size, seed=1, split="val")
    return _train_rate(spec, clips, val, cfg, repeats, seed=1)


def _train_rate(spec: Any, clips: Any, val: Any, cfg: Any, repeats: int, *, seed: int) -> float:
    """Clips/s of ``search.train`` on ``clips``: the best of ``repeats`` one-epoch runs, each
    from the same fresh network."""
    from arch_space.builder import build_network
    from search.train import train

    best = float("inf")
    for _ in range(repeats):
        torch.manual_seed(0)
        model = build_network(spec)
        start = time.perf_counter()
        train(model, clips, val, cfg, seed=seed)
        best = min(best, time.perf_counter() - start)
    return len(clips.labels) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8, help="mp4s to decode")
    parser.add_argument("--clips", type=int, default=24, help="clips per timed decode pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (best is kept)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed pass")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one worker, one thread

    from search.data.decoders import torchcodec_problem
    from search.data.transforms import ClipTransform
    from search.data.video import ClipSampling, VideoDataset

    consumption = consumption_rate(args.steps, args.batch_size, args.repeats)
    synthetic = synthetic_consumption_rate(128, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        items = [(path, 0) for path in write_videos(Path(tmp), args.videos)]

        def dataset(decoder: str) -> VideoDataset:
            return VideoDataset(items, ["x"], ClipSampling(CLIP_LEN, STRIDE, "random"),
                                ClipTransform(resize=RESIZE, crop_size=CROP), decoder=decoder)

        rows.append(("PyAV decode + transform", clip_rate(dataset("pyav"), args.clips,
                                                          args.repeats), ""))
        problem = torchcodec_problem()
        if problem is None:
            rows.append(("torchcodec (CPU) decode + transform",
                         clip_rate(dataset("torchcodec"), args.clips, args.repeats), ""))
        else:
            rows.append(("torchcodec (CPU) decode + transform", float("nan"), problem))
        cached = dataset("auto")
        start = time.perf_counter()
        cached.use_cache(Path(tmp) / "cache")
        build_s = time.perf_counter() - start
        rows.append(("clip cache read + transform", clip_rate(cached, 20 * args.clips,
                                                              args.repeats),
                     f"written once in {build_s:.1f} s ({cached.decoder}, every frame at "
                     f"{RESIZE} px)"))

    print(f"\ntorch {torch.__version__}, torchcodec "
          f"{getattr(sys.modules.get('torchcodec'), '__version__', '-')}, 1 thread per worker; "
          f"FFmpeg threads auto; {args.videos} mp4s of 64 frames at 128x172 (mpeg4), clips {CLIP_LEN}x{CROP}x{CROP} "
          f"(stride {STRIDE}, random start, crop and flip), best of {args.repeats}\n")
    print(f"training consumption, real-video CPU trial: {consumption:.1f} clips/s (search.train, "
          f"all-2D widths 8-64, {CLIP_LEN}x{CROP}x{CROP}, batch {args.batch_size}, 1 thread)")
    print(f"training consumption, default synthetic CPU trial: {synthetic:.1f} clips/s "
          f"(bench_train.py's reference: uniform 3D widths 16-128 on the motion task's clips)\n")
    print("| source | clips/s per worker | x real-video trial | x synthetic trial | note |\n"
          "| --- | --- | --- | --- | --- |")
    for name, rate, note in rows:
        print(f"| {name} | {rate:.1f} | {rate / consumption:.1f}x | {rate / synthetic:.1f}x "
              f"| {note} |")


if __name__ == "__main__":
    main()
