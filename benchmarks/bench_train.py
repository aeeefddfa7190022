"""Is the loop the bottleneck? Throughput of ``search.train`` against what bounds it.

Measures in one run, on the same model and the same batches:

- clips/s of ``train()`` against a bare PyTorch loop (zero_grad, forward, cross-entropy,
  backward, step) — the loop's overhead (schedule, clipping, metrics, NaN check, eval);
- synthetic clip generation rate against the rate training consumes clips;
- PyAV decode + transform rate of small mp4s written here;
- achieved GFLOP/s of training (FLOPs of a forward+backward step from
  ``torch.utils.flop_counter``) against an fp32 matmul measured in the same run.

Loop and bare loop run in ``--repeats`` pairs (alternating which goes first); rates are the best
run of each, the ratio the median over pairs, so a busy shared machine hurts both alike. Run::

    python benchmarks/bench_train.py --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F


def bare_loop(model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor,
              order: torch.Tensor, batch_size: int, lr: float) -> float:
    """The reference: the plainest loop over the same batches. Returns seconds."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for i in range(len(order) // batch_size):
        index = order[i * batch_size:(i + 1) * batch_size]
        x = clips[index].contiguous(memory_format=torch.channels_last_3d)
        loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (trials use 1)")
    parser.add_argument("--clips", type=int, default=384, help="training clips per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="paired timed runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from arch_space.builder import build_network
    from arch_space.presets import uniform
    from search.data.synthetic import default_cpu_config, generate, make_synthetic
    from search.train import TrainConfig, train

    data_cfg = default_cpu_config("motion")
    cfg = TrainConfig(epochs=1, warmup_epochs=0)
    spec = uniform("3d", widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), stem_width=16,
                   num_classes=data_cfg.num_classes, clip_len=data_cfg.clip_len,
                   crop_size=data_cfg.size)
    train_set = generate(data_cfg, args.clips, seed=0)
    # Evaluation is part of train(); keep the val set one batch so the comparison is the loop's.
    val_set = generate(data_cfg, cfg.batch_size, seed=1, split="val")
    # train() draws epoch 1's order from this generator; the bare loop uses the same order.
    order = torch.randperm(args.clips, generator=torch.Generator().manual_seed(1_000_003 + 1))

    def make_model() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_network(spec).to(memory_format=torch.channels_last_3d)

    # --- loop vs bare loop: paired runs, alternating which goes first -------------------------
    bare_loop(make_model(), train_set.clips, train_set.labels, order[:64], cfg.batch_size, cfg.lr)
    bare_s, loop_s = [], []

    def run_loop() -> float:
        model = make_model()
        start = time.perf_counter()
        result = train(model, train_set, val_set, cfg, seed=1)
        assert result.status == "ok"
        return time.perf_counter() - start

    def run_bare() -> float:
        return bare_loop(make_model(), train_set.clips, train_set.labels, order, cfg.batch_size,
                         cfg.lr)

    for i in range(args.repeats):
        if i % 2:
            loop_s.append(run_loop())
            bare_s.append(run_bare())
        else:
            bare_s.append(run_bare())
            loop_s.append(run_loop())
    steps = args.clips // cfg.batch_size
    bare_rate = steps * cfg.batch_size / min(bare_s)
    loop_rate = steps * cfg.batch_size / min(loop_s)
    # A neighbour's burst hits one side of a pair at random: the median pair ratio resists it.
    ratio = statistics.median(b / lo for b, lo in zip(bare_s, loop_s, strict=True))

    # --- data: synthetic generation vs consumption ----------------------------------------------
    generate(data_cfg, 64, seed=2)
    start = time.perf_counter()
    n_gen = 1024
    make_synthetic(dataclasses.replace(data_cfg, n_train=n_gen, n_val=1), seed=3)
    gen_rate = (n_gen + 1) / (time.perf_counter() - start)

    # --- video decoding -------------------------------------------------------------------------
    decode_rate = _decode_rate()

    # --- achieved GFLOP/s vs fp32 matmul ---------------------------------------------------------
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model()
    x = train_set.clips[:cfg.batch_size].contiguous(memory_format=torch.channels_last_3d)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), train_set.labels[:cfg.batch_size]).backward()
    flops_per_clip = counter.get_total_flops() / cfg.batch_size
    train_gflops = flops_per_clip * loop_rate / 1e9
    matmul_gflops = _matmul_gflops()

    rows = [
        ("bare PyTorch loop", f"{bare_rate:.1f} clips/s", ""),
        ("search.train loop", f"{loop_rate:.1f} clips/s",
         f"{ratio:.3f}x bare, median of {args.repeats} pairs "
         f"(best-of ratio {loop_rate / bare_rate:.3f}; target >= 0.95)"),
        ("synthetic generation", f"{gen_rate:.0f} clips/s",
         f"{gen_rate / loop_rate:.1f}x consumption (target >= 10)"),
        ("PyAV decode+transform", f"{decode_rate:.1f} clips/s",
         f"{decode_rate / loop_rate:.2f}x consumption per worker (16x112x112 from 128x171)"),
        ("training compute", f"{train_gflops:.2f} GFLOP/s",
         f"{flops_per_clip / 1e9:.3f} GFLOP per clip (fwd+bwd)"),
        ("fp32 matmul 1024^2", f"{matmul_gflops:.2f} GFLOP/s",
         f"training reaches {train_gflops / matmul_gflops:.0%} of it"),
    ]
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s); model uniform('3d') widths "
          f"16-32-64-128, clips {data_cfg.clip_len}x{data_cfg.size}x{data_cfg.size}, "
          f"batch {cfg.batch_size}, {steps} steps, rates best of {args.repeats}\n")
    print("| measure | rate | note |\n| --- | --- | --- |")
    for name, rate, note in rows:
        print(f"| {name} | {rate} | {note} |")


def _decode_rate(n_videos: int = 6) -> float:
    """Clips/s of one process decoding 16-frame clips (stride 2) from 64-frame mp4s."""
    import av
    import numpy as np

    from search.data.transforms import ClipTransform
    from search.data.video import ClipSampling, VideoDataset

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:128, 0:172]
        for i in range(n_videos):
            path = Path(tmp) / f"v{i}.mp4"
            with av.open(str(path), mode="w") as container:
                stream = container.add_stream("mpeg4", rate=25)
                stream.height, stream.width, stream.pix_fmt = 128, 171 + 1, "yuv420p"
                for t in range(64):
                    # A drifting colour pattern with mild noise: closer to camera video than
                    # pure noise, which is the codec's worst case.
                    wave = 127 + 100 * np.sin((xx + 3 * t) / 9.0 + i)[..., None] * np.cos(yy / 13.0)[..., None]
                    image = (wave * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 8, (128, 172, 3)))
                    image = image.clip(0, 255).astype(np.uint8)
                    for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            paths.append((path, 0))
        dataset = VideoDataset(paths, ["x"], ClipSampling(clip_len=16, frame_stride=2),
                               ClipTransform(resize=128, crop_size=112), decoder="pyav")
        dataset[0]
        start = time.perf_counter()
        for i in range(n_videos * 2):
            dataset[i % n_videos]
        return n_videos * 2 / (time.perf_counter() - start)


def _matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


if __name__ == "__main__":
    main()
