"""What a network costs: MACs, FLOPs, parameters, activations and latency, per layer and in total.

Conventions (stated once, used everywhere in vidarch):

* **MACs** are multiply-accumulates of the convolutions and the classifier (conv + linear), the
  convention of torchvision's published figures and of Tran et al. 2018. They come from fvcore's
  ``FlopCountAnalysis``, which counts *one multiply-add as one "flop"* — so its number is MACs.
  fvcore also counts batch-norm (0.1 % of r3d_18, 0.3 % of r2plus1d_18); it is reported apart in
  ``CostReport.macs_by_op`` and left out of ``macs``.
* **FLOPs** = 2 × MACs, cross-checked against ``torch.utils.flop_counter.FlopCounterMode``, which
  counts a multiply-add as two FLOPs (``CostReport.flop_counter_flops``).
* **Parameters** are learnable parameters, batch-norm affine weights included (torchvision's
  published counts include them); buffers (running statistics) are not.
* **Activations** are the elements written by conv and linear layers (fvcore's
  ``ActivationCountAnalysis``), a proxy for activation memory.

``estimate_macs`` / ``estimate_params`` (``arch_space.estimate``, re-exported here) compute the
same conv + linear MACs and the parameter count from the spec alone, without torch; tests check
they equal fvcore exactly.

torch and fvcore are imported lazily, so ``arch_space.space`` can import this module torch-free.
fvcore's import-time deprecation warnings and its "Unsupported operator ..." log lines are
silenced here and never reach users.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from arch_space.estimate import ConvShape as ConvShape  # re-exported: the torch-free half
from arch_space.estimate import conv_shapes as conv_shapes
from arch_space.estimate import estimate_macs as estimate_macs
from arch_space.estimate import estimate_params as estimate_params
from arch_space.estimate import estimate_per_layer as estimate_per_layer
from arch_space.estimate import spec_at
from arch_space.spec import ArchSpec

if TYPE_CHECKING:
    from torch import nn

# fvcore operator names that make up ``macs`` (conv + linear); the rest (batch_norm, ...) is
# reported apart in ``macs_by_op``.
CONV_LINEAR_OPS: frozenset[str] = frozenset({"conv", "linear", "addmm", "matmul", "bmm", "einsum"})
# Loggers whose warnings fvcore emits while tracing.
_NOISY_LOGGERS = ("fvcore", "fvcore.nn.jit_analysis", "iopath")


# --- the report -------------------------------------------------------------------------------
@dataclass
class CostReport:
    """Cost of one network at one input size (``batch`` clips of ``clip``)."""

    arch_id: str  # id of the spec as measured (re-sized to `clip` when one was given)
    clip: tuple[int, int, int]  # (T, H, W) measured at
    batch: int  # clips per forward pass
    macs: int  # conv + linear multiply-adds (fvcore: one multiply-add = one "flop")
    flops: int  # 2 × macs
    flop_counter_flops: int  # FLOPs by torch.utils.flop_counter (a multiply-add = 2), cross-check
    params: int  # learnable parameters (BN affine included)
    activations: int  # elements written by conv and linear layers (fvcore)
    latency_ms: float | None  # median forward time over latency_runs on `device`; None if not run
    device: str  # device the network ran on
    macs_by_op: dict[str, int] = field(default_factory=dict)  # fvcore's totals per operator
    per_layer: list[dict[str, Any]] = field(default_factory=list)  # stem, blocks, fc

    @property
    def gmacs(self) -> float:
        """MACs in units of 10⁹."""
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        """FLOPs in units of 10⁹."""
        return self.flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        out = asdict(self)
        out["clip"] = list(self.clip)
        return out


# --- measurement (torch + fvcore) ----------------------------------------------------------------
@contextlib.contextmanager
def quiet_fvcore() -> Iterator[None]:
    """Silence fvcore while inside: its import-time ``torch.jit.script`` DeprecationWarning,
    tracer warnings, and the "Unsupported operator ..." / "never called" log lines."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _analyses(model: nn.Module, inputs: Any) -> tuple[Any, Any]:
    with quiet_fvcore():
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

        flops = FlopCountAnalysis(model, inputs)
        acts = ActivationCountAnalysis(model, inputs)
        for analysis in (flops, acts):
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
        flops.total()  # trace now, inside the quiet block
        acts.total()
    return flops, acts


def _flop_counter_flops(model: nn.Module, inputs: Any) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(inputs)
    return int(counter.get_total_flops())


def time_forward(model: nn.Module, inputs: Any, runs: int, device: str) -> float:
    """Median wall time (ms) of ``runs`` forward passes of ``model`` on ``inputs`` (on
    ``device``, CUDA synchronised), after up to 3 warm-up passes; no gradients."""
    import torch

    def sync() -> None:
        if str(device).startswith("cuda"):
            torch.cuda.synchronize(device)

    times = []
    with torch.inference_mode():
        for _ in range(min(3, runs)):  # warm-up: allocator, cuDNN autotuning, caches
            model(inputs)
        sync()
        for _ in range(runs):
            start = time.perf_counter()
            model(inputs)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return float(statistics.median(times))


def measure_latency(model: nn.Module, spec: ArchSpec, runs: int, device: str = "cpu") -> float:
    """Median forward time (ms) of one ``spec``-sized clip through ``model`` on ``device``.

    The model is timed in eval mode and put back in the mode it was in; the clip is drawn from
    a private generator, so the caller's random streams are untouched (a trial stays a pure
    function of its seed).
    """
    import torch

    if runs < 1:
        raise ValueError(f"runs: must be >= 1, got {runs}")
    generator = torch.Generator().manual_seed(0)
    clip = torch.randn(1, spec.in_channels, spec.clip_len, spec.crop_size, spec.crop_size,
                       generator=generator).to(device)  # (1, C, T, H, W)
    was_training = model.training
    model.to(device).eval()
    try:
        return time_forward(model, clip, runs, device)
    finally:
        model.train(was_training)


def measure_cost(spec: ArchSpec, clip: tuple[int, int, int] | None = None, *,
                 device: str = "cpu", latency_runs: int = 0, batch: int = 1) -> CostReport:
    """Build ``spec`` and measure its cost on a random input of ``batch`` clips.

    Args:
        spec: the architecture.
        clip: input (T, H, W); default the spec's ``clip_len × crop_size²``. The spec is
            re-sized to it first (this matters only for R2D's whole-clip stem).
        device: torch device for the forward passes ("cpu", "cuda", "cuda:1", ...).
        latency_runs: timed forward passes (after up to 3 warm-up passes); 0 skips timing.
        batch: clips per forward pass; MACs, FLOPs and activations are for the whole batch.

    Returns:
        A ``CostReport``: totals, fvcore's per-operator totals, and one ``per_layer`` row per
        stem, block and the classifier (``layer, kind, macs, params``).
    """
    import torch

    from arch_space.builder import build_network

    if batch < 1:
        raise ValueError(f"batch: must be >= 1, got {batch}")
    if latency_runs < 0:
        raise ValueError(f"latency_runs: must be >= 0, got {latency_runs}")
    spec = spec_at(spec, clip)
    t, h, w = clip or (spec.clip_len, spec.crop_size, spec.crop_size)
    model = build_network(spec).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, spec.in_channels, t, h, w, generator=generator).to(device)

    with torch.no_grad():
        flops, acts = _analyses(model, inputs)
    by_op = {op: int(n) for op, n in flops.by_operator().items()}
    by_module_op = flops.by_module_and_operator()
    macs = sum(n for op, n in by_op.items() if op in CONV_LINEAR_OPS)
    with quiet_fvcore():
        from fvcore.nn import parameter_count

        param_counts = parameter_count(model)

    kinds = spec.kinds()
    kinds["fc"] = "linear"
    per_layer = []
    for layer, kind in kinds.items():
        ops = by_module_op.get(layer, {})
        per_layer.append({"layer": layer, "kind": kind,
                          "macs": int(sum(n for op, n in ops.items() if op in CONV_LINEAR_OPS)),
                          "params": int(param_counts.get(layer, 0))})

    return CostReport(
        arch_id=spec.arch_id,
        clip=(t, h, w),
        batch=batch,
        macs=int(macs),
        flops=2 * int(macs),
        flop_counter_flops=_flop_counter_flops(model, inputs),
        params=int(param_counts[""]),
        activations=int(acts.total()),
        latency_ms=time_forward(model, inputs, latency_runs, device) if latency_runs else None,
        device=str(device),
        macs_by_op=by_op,
        per_layer=per_layer,
    )
