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

``estimate_macs`` / ``estimate_params`` compute the same conv + linear MACs and the parameter
count from the spec alone, without torch, mirroring ``builder.py`` conv by conv; search-space
constraints use them, and tests check they equal fvcore exactly.

torch and fvcore are imported lazily, so ``arch_space.space`` can import this module torch-free.
fvcore's import-time deprecation warnings and its "Unsupported operator ..." log lines are
silenced here and never reach users.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from arch_space.spec import BOTTLENECK_EXPANSION, ArchSpec, BlockSpec, SpecError

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


# --- analytic estimates (no torch) --------------------------------------------------------------
@dataclass(frozen=True)
class ConvShape:
    """One conv of a network as the builder makes it, with the size of its output."""

    layer: str  # spec path of the stem or block it belongs to ("stem", "stage2.block1")
    name: str  # module path of the conv ("stage2.block1.conv1.spatial")
    c_in: int  # input channels
    c_out: int  # output channels
    kernel: tuple[int, int, int]  # (t, k, k)
    out: tuple[int, int, int]  # output (T, H, W)

    @property
    def macs(self) -> int:
        """Multiply-adds of one clip."""
        return self.c_in * self.c_out * math.prod(self.kernel) * math.prod(self.out)

    @property
    def params(self) -> int:
        """Weights (convs have no bias; a BN after it is counted by the caller)."""
        return self.c_in * self.c_out * math.prod(self.kernel)


def _out(size: tuple[int, int, int], kernel: tuple[int, int, int], stride: tuple[int, int, int],
         valid_t: bool = False) -> tuple[int, int, int]:
    """Output size of a conv with "same" padding (k // 2), or no temporal padding if valid_t."""
    t = (size[0] - kernel[0]) // stride[0] + 1 if valid_t else (size[0] - 1) // stride[0] + 1
    return t, (size[1] - 1) // stride[1] + 1, (size[2] - 1) // stride[2] + 1


def _mid_width(t_kernel: int, s_kernel: int, c_in: int, c_out: int) -> int:
    # Tran et al. 2018, eq. (1); the same formula as ops.mid_width, kept here torch-free.
    k2 = s_kernel * s_kernel
    return (t_kernel * k2 * c_in * c_out) // (k2 * c_in + t_kernel * c_out)


def _kind_convs(kind: str, layer: str, name: str, c_in: int, c_out: int, mid: int,
                t_kernel: int, t_stride: int, s_stride: int, s_kernel: int,
                size: tuple[int, int, int], valid_t: bool = False
                ) -> tuple[list[ConvShape], list[int], tuple[int, int, int]]:
    """Convs of one conv kind (mirrors ``ops.py``): (convs, widths of its inner BNs, out size)."""
    spatial_k = (1, s_kernel, s_kernel)
    temporal_k = (t_kernel, 1, 1)
    if kind == "2d":
        out = _out(size, spatial_k, (t_stride, s_stride, s_stride))
        return [ConvShape(layer, f"{name}.conv", c_in, c_out, spatial_k, out)], [], out
    if kind == "3d":
        kernel = (t_kernel, s_kernel, s_kernel)
        out = _out(size, kernel, (t_stride, s_stride, s_stride), valid_t)
        return [ConvShape(layer, f"{name}.conv", c_in, c_out, kernel, out)], [], out
    if kind == "2plus1d":
        mid_size = _out(size, spatial_k, (1, s_stride, s_stride))
        out = _out(mid_size, temporal_k, (t_stride, 1, 1))
        return [ConvShape(layer, f"{name}.spatial", c_in, mid, spatial_k, mid_size),
                ConvShape(layer, f"{name}.temporal", mid, c_out, temporal_k, out)], [mid], out
    if kind == "p3d_b":
        out = _out(size, spatial_k, (t_stride, s_stride, s_stride))
        return [ConvShape(layer, f"{name}.spatial", c_in, c_out, spatial_k, out),
                ConvShape(layer, f"{name}.temporal", c_in, c_out, temporal_k, out)], [], out
    if kind == "p3d_c":
        mid_size = _out(size, spatial_k, (1, s_stride, s_stride))
        out = _out(mid_size, temporal_k, (t_stride, 1, 1))
        return [ConvShape(layer, f"{name}.spatial", c_in, c_out, spatial_k, mid_size),
                ConvShape(layer, f"{name}.temporal", c_out, c_out, temporal_k, out)], [c_out], out
    raise SpecError(f"{layer}.kind: no cost model for conv kind {kind!r}")


def _block_mids(spec: ArchSpec, block: BlockSpec, inplanes: int, planes: int,
                conv_ins: tuple[int, ...]) -> tuple[int, ...]:
    # Mirrors builder._block_mids: torchvision once per block, the paper per conv.
    if spec.mid_rule == "torchvision":
        return tuple(_mid_width(block.t_kernel, 3, inplanes, planes) for _ in conv_ins)
    return tuple(_mid_width(block.t_kernel, 3, c, planes) for c in conv_ins)


def spec_at(spec: ArchSpec, clip: tuple[int, int, int] | None) -> ArchSpec:
    """``spec`` re-sized for ``clip`` (T, H, W); R2D's whole-clip stem follows T."""
    if clip is None:
        return spec
    t, h, w = clip
    if (t, h) == (spec.clip_len, spec.crop_size):
        return spec
    return spec.replace(clip_len=t, crop_size=min(h, w))


def conv_shapes(spec: ArchSpec, clip: tuple[int, int, int] | None = None
                ) -> tuple[list[ConvShape], list[tuple[str, int]]]:
    """Every conv of the network ``build_network(spec)`` makes, and every BN (layer, width).

    Args:
        spec: the architecture.
        clip: input (T, H, W); default ``(clip_len, crop_size, crop_size)`` of the spec.

    Returns:
        ``(convs, norms)``: the convs bottom to top with output sizes, and ``(layer, channels)``
        of each batch-norm (for parameter counts).
    """
    spec = spec_at(spec, clip)
    size = clip or (spec.clip_len, spec.crop_size, spec.crop_size)
    convs: list[ConvShape] = []
    norms: list[tuple[str, int]] = []
    stem = spec.stem
    kind = {"r2d": "3d"}.get(stem.kind, stem.kind)
    stem_convs, stem_bns, size = _kind_convs(
        kind, "stem", "stem.conv", spec.in_channels, stem.width, stem.mid_width, stem.t_kernel,
        stem.t_stride, stem.s_stride, stem.s_kernel, size, valid_t=stem.kind == "r2d")
    _require_size(size, "stem")
    convs += stem_convs
    norms += [("stem", c) for c in [*stem_bns, stem.width]]
    inplanes = stem.width
    bottleneck = spec.block_type == "bottleneck"
    for i, stage in enumerate(spec.stages):
        planes = stage.width
        for j, block in enumerate(stage.blocks):
            path = f"stage{i + 1}.block{j + 1}"
            block_in = size
            c_out = planes * (BOTTLENECK_EXPANSION if bottleneck else 1)
            if bottleneck:
                (mid,) = _block_mids(spec, block, inplanes, planes, (planes,))
                convs.append(ConvShape(path, f"{path}.conv1", inplanes, planes, (1, 1, 1), size))
                body, bns, size = _kind_convs(block.kind, path, f"{path}.conv2", planes, planes,
                                              mid, block.t_kernel, block.t_stride,
                                              block.s_stride, 3, size)
                convs += body
                convs.append(ConvShape(path, f"{path}.conv3", planes, c_out, (1, 1, 1), size))
                norms += [(path, c) for c in [planes, *bns, planes, c_out]]
            else:
                mid1, mid2 = _block_mids(spec, block, inplanes, planes, (inplanes, planes))
                body1, bns1, size = _kind_convs(block.kind, path, f"{path}.conv1", inplanes,
                                                planes, mid1, block.t_kernel, block.t_stride,
                                                block.s_stride, 3, size)
                body2, bns2, size = _kind_convs(block.kind, path, f"{path}.conv2", planes, planes,
                                                mid2, block.t_kernel, 1, 1, 3, size)
                convs += body1 + body2
                norms += [(path, c) for c in [*bns1, planes, *bns2, planes]]
            if block.t_stride != 1 or block.s_stride != 1 or inplanes != c_out:
                stride = (block.t_stride, block.s_stride, block.s_stride)
                convs.append(ConvShape(path, f"{path}.downsample.0", inplanes, c_out, (1, 1, 1),
                                       _out(block_in, (1, 1, 1), stride)))
                norms.append((path, c_out))
            _require_size(size, path)
            inplanes = c_out
    return convs, norms


def _require_size(size: tuple[int, int, int], path: str) -> None:
    if min(size) < 1:
        raise SpecError(f"{path}: the input clip is too small; the feature map vanishes")


def estimate_macs(spec: ArchSpec, clip: tuple[int, int, int] | None = None) -> int:
    """Conv + linear multiply-adds of one clip, from the spec alone (no torch, no network).

    Each conv costs ``k_t·k_h·k_w·C_in·C_out·T_out·H_out·W_out``; the classifier
    ``feature_dim·num_classes``. Equals ``measure_cost(spec, clip).macs`` exactly.

    Args:
        spec: the architecture.
        clip: input (T, H, W); default the spec's ``clip_len × crop_size²``.
    """
    convs, _ = conv_shapes(spec, clip)
    return sum(c.macs for c in convs) + spec.feature_dim * spec.num_classes


def estimate_params(spec: ArchSpec) -> int:
    """Learnable parameters from the spec alone: conv weights, BN affine pairs, fc weight + bias.

    Equals ``measure_cost(spec).params`` exactly; independent of the clip size.
    """
    convs, norms = conv_shapes(spec)
    fc = spec.feature_dim * spec.num_classes + spec.num_classes
    return sum(c.params for c in convs) + sum(2 * width for _, width in norms) + fc


def estimate_per_layer(spec: ArchSpec, clip: tuple[int, int, int] | None = None
                       ) -> list[dict[str, Any]]:
    """Analytic per-layer table ``layer, kind, macs, params`` (same rows as ``measure_cost``)."""
    spec = spec_at(spec, clip)
    convs, norms = conv_shapes(spec, clip)
    kinds = spec.kinds()
    rows: dict[str, dict[str, Any]] = {
        layer: {"layer": layer, "kind": kind, "macs": 0, "params": 0}
        for layer, kind in kinds.items()}
    for conv in convs:
        rows[conv.layer]["macs"] += conv.macs
        rows[conv.layer]["params"] += conv.params
    for layer, width in norms:
        rows[layer]["params"] += 2 * width
    fc_macs = spec.feature_dim * spec.num_classes
    rows["fc"] = {"layer": "fc", "kind": "linear", "macs": fc_macs,
                  "params": fc_macs + spec.num_classes}
    return list(rows.values())


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


def _latency_ms(model: nn.Module, inputs: Any, runs: int, device: str) -> float:
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
        latency_ms=_latency_ms(model, inputs, latency_runs, device) if latency_runs else None,
        device=str(device),
        macs_by_op=by_op,
        per_layer=per_layer,
    )
