"""What a network costs, from its spec alone: conv + linear MACs and parameters, no torch.

``conv_shapes`` lists every conv ``build_network(spec)`` makes, with its output size: it takes
each layer from ``geometry.walk`` (the one walk of the spec) and expands its kind convs by the
kind's cost rule (``KindFacts.layout`` in ``kinds.py``, mirroring ``ops.py``);
``estimate_macs`` / ``estimate_params`` / ``estimate_per_layer`` sum it. They equal
``arch_space.cost.measure_cost`` (fvcore) exactly — tests check it — so search-space constraints
and analysis use them without building a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from arch_space.errors import SpecError
from arch_space.geometry import LayerShape, Size, conv_size, strided, walk
from arch_space.kinds import ConvArgs, get_kind
from arch_space.spec import ArchSpec


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


def kind_convs(layer: LayerShape, name: str, args: ConvArgs, size: Size
               ) -> tuple[list[ConvShape], list[int], Size]:
    """The convs of one use of ``layer.kind`` at input ``size``, by the kind's cost rule.

    Returns:
        ``(convs, widths of the kind's inner batch-norms, output size)``.

    Raises:
        SpecError: naming the layer when the kind's convs do not map ``T, H, W`` to
            ``ceil(T / t_stride), ceil(H / s_stride), ...`` (its shortcut would disagree).
    """
    layout = get_kind(layer.kind, f"{layer.path}.kind").layout(args)
    outs: dict[str | None, Size] = {None: size}
    convs = []
    for step in layout.steps:
        out = conv_size(outs[step.after], step.kernel, step.stride, layer.t_valid)
        outs[step.name] = out
        convs.append(ConvShape(layer.path, f"{name}.{step.name}", step.c_in, step.c_out,
                               step.kernel, out))
    expected = (strided(size[0], args.t_stride), strided(size[1], args.s_stride),
                strided(size[2], args.s_stride))
    if not layer.t_valid and out != expected:
        raise SpecError(f"{layer.path}.kind: conv kind {layer.kind!r} maps {size} to {out}, not "
                        f"{expected}: its shortcut would disagree")
    return convs, list(layout.norms), out


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
    stem, *blocks = walk(spec, clip)
    args = ConvArgs(stem.c_in, stem.c_out, stem.mids[0], stem.t_kernel, stem.t_stride,
                    stem.s_stride, stem.s_kernel)
    convs, bns, _ = kind_convs(stem, "stem.conv", args, stem.size_in)
    norms = [("stem", c) for c in [*bns, stem.c_out]]
    bottleneck = spec.block_type == "bottleneck"
    for layer in blocks:
        path, planes, size = layer.path, layer.planes, layer.size_in
        if bottleneck:  # 1x1x1 -> kind conv (strided) -> 1x1x1, as builder.Bottleneck
            convs.append(ConvShape(path, f"{path}.conv1", layer.c_in, planes, (1, 1, 1), size))
            body, bns, size = _block_kind(layer, "conv2", planes, layer.mids[0], True, size)
            convs += body
            convs.append(ConvShape(path, f"{path}.conv3", planes, layer.c_out, (1, 1, 1), size))
            norms += [(path, c) for c in [planes, *bns, planes, layer.c_out]]
        else:  # kind conv (strided) -> kind conv, as builder.BasicBlock
            body1, bns1, size = _block_kind(layer, "conv1", layer.c_in, layer.mids[0], True, size)
            body2, bns2, size = _block_kind(layer, "conv2", planes, layer.mids[1], False, size)
            convs += body1 + body2
            norms += [(path, c) for c in [*bns1, planes, *bns2, planes]]
        if layer.projection:
            stride = (layer.t_stride, layer.s_stride, layer.s_stride)
            convs.append(ConvShape(path, f"{path}.downsample.0", layer.c_in, layer.c_out,
                                   (1, 1, 1), conv_size(layer.size_in, (1, 1, 1), stride)))
            norms.append((path, layer.c_out))
    return convs, norms


def _block_kind(layer: LayerShape, name: str, c_in: int, mid: int, strided: bool, size: Size
                ) -> tuple[list[ConvShape], list[int], Size]:
    """One kind conv of a block (to ``layer.planes``), strided as the block or not at all."""
    t_stride, s_stride = (layer.t_stride, layer.s_stride) if strided else (1, 1)
    return kind_convs(layer, f"{layer.path}.{name}",
                      ConvArgs(c_in, layer.planes, mid, layer.t_kernel, t_stride, s_stride), size)


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
