"""Hardware on record: where a trial ran, reported by the trial once, stored by the writer.

``describe(device)`` runs inside the trial (a Ray worker) and returns the node (IP, hostname and
Ray node id: on one machine several Ray nodes share an IP), the torch device the trial trained
on, the GPU model and count it was given, the CPU model, and the torch / CUDA / cuDNN versions.
The trainable adds it as JSON under ``HARDWARE_RESULT`` to its first result; the driver's writer
merges it into ``trials.resources_json`` (next to the CPUs and GPUs the trial reserved).
"""

from __future__ import annotations

import functools
import json
import platform
import socket
from typing import Any

from search.results.schema import HARDWARE_KEYS

__all__ = ["HARDWARE_KEYS", "HARDWARE_RESULT", "describe", "describe_json"]

HARDWARE_RESULT = "hardware_json"  # result key of the JSON the trial reports once


def describe(device: str) -> dict[str, Any]:
    """The hardware this process trains on; ``device`` is the torch device string used."""
    import torch

    gpus = _visible_gpus()
    on_gpu = device.startswith("cuda") and torch.cuda.is_available()
    index = (torch.device(device).index or 0) if on_gpu else None
    cudnn = torch.backends.cudnn.version() if on_gpu else None
    record = {
        **_node(),
        "device": f"cuda:{index}" if on_gpu else device,
        "device_name": torch.cuda.get_device_name(index) if on_gpu else _cpu_model(),
        "gpu_model": gpus[0] if gpus else None,
        "gpu_count": len(gpus),
        "cpu_model": _cpu_model(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": str(cudnn) if cudnn else None,
    }
    return record


def describe_json(device: str) -> str:
    """``describe(device)`` as the JSON string a trial reports."""
    return json.dumps(describe(device), sort_keys=True)


def _node() -> dict[str, Any]:
    """IP, hostname and Ray node id of this process (None outside Ray)."""
    node_ip, node_id = None, None
    try:
        import ray

        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
            node_ip = ray.util.get_node_ip_address()
    except Exception:  # pragma: no cover - outside a Ray worker
        pass
    if node_ip is None:
        try:
            node_ip = socket.gethostbyname(socket.gethostname())
        except OSError:
            node_ip = None
    return {"node_ip": node_ip, "hostname": socket.gethostname(), "node_id": node_id}


def _visible_gpus() -> list[str]:
    """Models of the GPUs this process may use (those Ray assigned it, via CUDA_VISIBLE_DEVICES)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
