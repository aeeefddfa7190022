"""What a network costs, from its spec alone: conv + linear MACs and parameters, no torch.

``conv_shapes`` lists every conv ``build_network(spec)`` makes, with its output size, mirroring
``builder.py`` and ``ops.py`` conv by conv; ``estimate_macs`` / ``estimate_params`` /
``estimate_per_layer`` sum it. They equal ``arch_space.cost.measure_cost`` (fvcore) exactly —
tests check it — so search-space constraints and analysis use them without building a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from arch_space.spec import BOTTLENECK_EXPANSION, ArchSpec, SpecError, block_mid_widths


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
                (mid,) = block_mid_widths(spec, block, inplanes, planes, (planes,))
                convs.append(ConvShape(path, f"{path}.conv1", inplanes, planes, (1, 1, 1), size))
                body, bns, size = _kind_convs(block.kind, path, f"{path}.conv2", planes, planes,
                                              mid, block.t_kernel, block.t_stride,
                                              block.s_stride, 3, size)
                convs += body
                convs.append(ConvShape(path, f"{path}.conv3", planes, c_out, (1, 1, 1), size))
                norms += [(path, c) for c in [planes, *bns, planes, c_out]]
            else:
                mid1, mid2 = block_mid_widths(spec, block, inplanes, planes, (inplanes, planes))
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
