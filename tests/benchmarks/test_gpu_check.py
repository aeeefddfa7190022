"""benchmarks/gpu_check.sh: its dry run (everything but the GPU, on the CPU) and its peak table."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable}


def test_peak_table_matches_device_names() -> None:
    peak = _module().peak_tflops
    assert peak("NVIDIA H200") == peak("NVIDIA H100 80GB HBM3") == 989.0
    assert peak("NVIDIA H100 PCIe") == 756.0
    assert peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak("NVIDIA L40S") == 362.0 and peak("NVIDIA L4") == 121.0
    assert peak("Some Future GPU") is None and peak("Some Future GPU", 500.0) == 500.0


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_without_a_gpu_the_real_check_says_so() -> None:
    out = subprocess.run(["bash", str(SCRIPT)], env=_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr == ("gpu_check: no nvidia-smi here; this check needs an NVIDIA GPU (or use "
                          "--dry-run)\n")


@pytest.mark.slow
def test_dry_run_checks_everything_but_the_gpu(tmp_path: Path) -> None:
    result = tmp_path / "gpu_check.json"
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--peak-tflops", "1",
                          "--json", str(result)], env=_env(), capture_output=True, text=True,
                         timeout=330)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "all checks passed" in out.stdout and "| MFU |" in out.stdout
    data = json.loads(result.read_text())
    train = data["train"]
    assert train["clip"] == [8, 32, 32] and train["macs_per_clip"] > 1e9  # r2plus1d_18 at 8x32^2
    flops = train["macs_per_clip"] * 2 * 3 * train["clips_per_s"]  # fwd + bwd
    assert train["tflops"] == pytest.approx(flops / 1e12)
    assert train["mfu"] == pytest.approx(train["tflops"] / 1.0)
    study = data["study"]
    assert study["ok"] and study["states"] == ["COMPLETE"] * 4 and study["devices"] == ["cpu"]
    assert "study=smoke hardware=local" in study["command"]
    from search.data.decoders import torchcodec_problem

    assert data["decode"]["ok"] is (torchcodec_problem() is None)
