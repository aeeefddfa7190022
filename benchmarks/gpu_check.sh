#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): r2plus1d_18 training rate, TFLOP/s and MFU with bf16 +
# channels_last_3d, torchcodec decoding on the GPU, and `study=smoke hardware=gpu` end to end.
# On a machine with one NVIDIA GPU, from a fresh checkout:
#   make install && benchmarks/gpu_check.sh          (at most 5 minutes)
#   benchmarks/gpu_check.sh --dry-run                (the same checks on the CPU, tiny)
# PYTHON=... picks the interpreter (default: .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export RAY_AUTH_MODE=disabled PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $* " != *" --dry-run "* ]]; then
  if ! command -v nvidia-smi >/dev/null; then
    echo "gpu_check: no nvidia-smi here; this check needs an NVIDIA GPU (or use --dry-run)" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec timeout --kill-after=10 300 "$PY" benchmarks/gpu_check.py "$@"
