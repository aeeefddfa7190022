"""GPU check: does vidarch's GPU path run, and how fast? (``benchmarks/gpu_check.sh`` runs it.)

On one NVIDIA GPU, in under five minutes:

1. trains torchvision's ``r2plus1d_18`` (the arch_space preset) on random 16 x 112 x 112 clips
   with bf16 autocast and channels_last_3d for a fixed number of steps, and prints clips/s,
   achieved TFLOP/s and MFU. FLOPs per clip = fvcore MACs x 2 (multiply + add) x 3 (forward +
   backward, the usual 1 + 2 estimate); MFU = achieved / the GPU's dense bf16 peak (table below,
   matched on the device name, or ``--peak-tflops``);
2. decodes clips with torchcodec on the GPU (NVDEC) when it can, else says why not;
3. runs ``python -m search.run study=smoke hardware=gpu`` end to end into a temporary database
   and checks that every trial completed on a CUDA device and stored its GPU model.

``--dry-run`` checks everything but the GPU on the CPU: a few tiny steps (8 x 32 x 32 clips),
CPU decoding, and the study with ``hardware=local``. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; the first
# pattern found in the device name wins, so longer names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0),
)


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The dense bf16 peak of a GPU by name (``override`` wins); None when unknown."""
    if override:
        return override
    for pattern, peak in PEAK_BF16_TFLOPS:
        if pattern.lower() in device_name.lower():
            return peak
    return None


def train_rate(*, device: str, clip_len: int, size: int, batch: int, warmup: int,
               steps: int) -> dict[str, Any]:
    """Train r2plus1d_18 for ``steps`` timed steps (bf16 autocast, channels_last_3d)."""
    import torch
    import torch.nn.functional as F

    from arch_space.builder import build_network
    from arch_space.cost import measure_cost
    from arch_space.presets import preset

    spec = preset("r2plus1d_18", num_classes=400, clip_len=clip_len, crop_size=size)
    macs = measure_cost(spec).macs  # fvcore, one clip, forward: conv + linear multiply-adds
    torch.manual_seed(0)
    model = build_network(spec).to(device=device, memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, clip_len, size, size, device=device).contiguous(
        memory_format=torch.channels_last_3d)  # (B, C, T, H, W), channels last
    y = torch.randint(400, (batch,), device=device)

    def step() -> float:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - start
    clips_per_s = steps * batch / seconds
    tflops = macs * 2 * 3 * clips_per_s / 1e12  # MACs x 2 FLOPs x 3 (forward + backward)
    return {"macs_per_clip": int(macs), "clips_per_s": clips_per_s, "tflops": tflops,
            "final_loss": float(loss), "seconds": seconds, "batch": batch, "steps": steps,
            "clip": [clip_len, size, size],
            "max_memory_gib": (torch.cuda.max_memory_allocated() / 2**30
                               if device.startswith("cuda") else None)}


def decode_rate(device: str, n_clips: int = 8) -> dict[str, Any]:
    """Clips/s of torchcodec decoding 16-frame clips on ``device``, or why it cannot."""
    import numpy as np
    import torch

    from search.data.decoders import decode_frames, torchcodec_problem

    problem = torchcodec_problem()
    if problem is not None:
        return {"ok": False, "why": problem}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_decode import write_videos

    with tempfile.TemporaryDirectory() as tmp:
        path = write_videos(Path(tmp), 1)[0]
        indices = np.arange(0, 32, 2)
        try:
            decode_frames(path, indices, decoder="torchcodec", device=device)
            start = time.perf_counter()
            for _ in range(n_clips):
                frames = decode_frames(path, indices, decoder="torchcodec", device=device)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            rate = n_clips / (time.perf_counter() - start)
        except Exception as exc:  # NVDEC missing for this codec or GPU, a CPU-only build
            return {"ok": False, "why": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return {"ok": True, "clips_per_s": rate, "device": str(frames.device),
            "shape": list(frames.shape)}


def run_study(hardware: str, timeout_s: float) -> dict[str, Any]:
    """``python -m search.run study=smoke hardware=...`` into a temporary database."""
    with tempfile.TemporaryDirectory(prefix="vidarch-gpu-check-") as tmp:
        db = Path(tmp) / "gpu_check.db"
        cmd = [sys.executable, "-m", "search.run", "study=smoke", f"hardware={hardware}",
               f"storage=sqlite:///{db}", f"hardware.checkpoint_dir={Path(tmp) / 'ray'}",
               "summary=false"]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                             if p)}
        start = time.perf_counter()
        try:
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"ok": False, "why": f"timed out after {timeout_s:.0f} s",
                    "command": " ".join(cmd[1:])}
        seconds = time.perf_counter() - start
        rows = []
        if db.exists():
            conn = sqlite3.connect(db)
            try:
                rows = conn.execute("SELECT state, resources_json FROM trials").fetchall()
            finally:
                conn.close()
    states = [state for state, _ in rows]
    hardware_records = [json.loads(r or "{}") for _, r in rows]
    devices = sorted({h.get("device") or "-" for h in hardware_records})
    gpus = sorted({h.get("gpu_model") or "-" for h in hardware_records})
    ok = out.returncode == 0 and len(states) == 4 and set(states) == {"COMPLETE"}
    if hardware != "local":  # trials must have trained on the GPU and said so
        ok = ok and all(d.startswith("cuda") for d in devices) and "-" not in gpus
    return {"ok": ok, "returncode": out.returncode, "states": states, "devices": devices,
            "gpus": gpus, "seconds": seconds, "command": " ".join(cmd[1:]),
            "stderr_tail": "" if ok else out.stderr[-2000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="everything but the GPU, on the CPU (tiny steps, hardware=local)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps")
    parser.add_argument("--batch", type=int, default=None, help="clips per step")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak (default: from the table by name)")
    parser.add_argument("--study-timeout", type=float, default=180.0, help="seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU (torch.cuda.is_available() is False); "
              "run `make install` on the GPU machine, or use --dry-run", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    name = "CPU (dry run)" if dry else torch.cuda.get_device_name(0)
    peak = peak_tflops(name, args.peak_tflops) if not dry or args.peak_tflops else None
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {name}, "
          f"bf16 peak {f'{peak:g} TFLOP/s' if peak else 'unknown (--peak-tflops)'}", flush=True)

    setting = ({"clip_len": 8, "size": 32, "batch": args.batch or 1, "warmup": 1,
                "steps": args.steps or 1} if dry else
               {"clip_len": 16, "size": 112, "batch": args.batch or 32, "warmup": 5,
                "steps": args.steps or 40})
    train = train_rate(device=device, **setting)
    train["mfu"] = train["tflops"] / peak if peak else None
    train_ok = math.isfinite(train["final_loss"]) and train["clips_per_s"] > 0
    print(f"train: {train['clips_per_s']:.1f} clips/s, {train['tflops']:.3f} TFLOP/s", flush=True)
    decode = decode_rate(device, n_clips=2 if dry else 16)
    print(f"decode: {decode}", flush=True)
    study = run_study("local" if dry else "gpu", args.study_timeout)
    print(f"study: {'ok' if study['ok'] else 'FAILED'} in {study.get('seconds', 0):.0f} s",
          flush=True)

    clip = "x".join(map(str, train["clip"]))
    mfu = f"{100 * train['mfu']:.1f}%" if train["mfu"] is not None else "n/a (peak unknown)"
    rows = [
        ("r2plus1d_18 training", f"{train['clips_per_s']:.1f} clips/s",
         f"{clip} clips, batch {train['batch']}, {train['steps']} timed step(s), bf16 autocast, "
         f"channels_last_3d, loss {train['final_loss']:.3f}"),
        ("achieved compute", f"{train['tflops']:.3f} TFLOP/s",
         f"fvcore {train['macs_per_clip'] / 1e9:.2f} GMACs/clip x 2 x 3 (fwd + bwd)"),
        ("MFU", mfu, f"of {peak:g} TFLOP/s dense bf16" if peak else ""),
        ("torchcodec decode", f"{decode['clips_per_s']:.1f} clips/s" if decode["ok"] else "-",
         f"16 frames on {decode.get('device', device)}" if decode["ok"] else decode["why"]),
        ("study=smoke", "ok" if study["ok"] else "FAILED",
         f"{study.get('states')} on {study.get('devices')} / GPU {study.get('gpus')}, "
         f"{study.get('seconds', 0):.0f} s: {study['command']}"),
    ]
    print("\n| check | result | note |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    if not study["ok"]:
        print(f"\nstudy stderr (tail):\n{study.get('stderr_tail') or study.get('why')}")
    total = time.perf_counter() - t0
    print(f"\ngpu_check {'(dry run) ' if dry else ''}done in {total:.0f} s: "
          f"{'all checks passed' if train_ok and study['ok'] else 'FAILED'}")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "peak_tflops": peak, "train": train,
                                         "decode": decode, "study": study,
                                         "seconds": total}, indent=1, default=str))
    return 0 if train_ok and study["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
