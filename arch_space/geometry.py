"""One walk of a spec: the shape of every layer (stem, then blocks) at a clip, torch-free.

``walk(spec)`` is the single place that follows a clip through the network: channels in and
out, mid widths, strides and the (T, H, W) entering and leaving every layer. ``spec.feature_sizes``
reads its sizes, ``estimate`` expands its layers into convs, and ``builder`` takes each block's
channels, mid widths and shortcut from it. The temporal-stride rule of the paper family
(``t_stride_by_kind``) lives here too, with its one guard.

Every conv kind maps ``T`` to ``ceil(T / t_stride)`` (odd kernels, "same" padding; see
``ops.py``), so a block's output size depends on its strides only; the stem may be R2D's
whole-clip conv without temporal padding.
"""

from __future__ import annotations

from typing import NamedTuple

from arch_space.errors import SpecError
from arch_space.kinds import get_kind, stem_conv
from arch_space.spec import BOTTLENECK_EXPANSION, ArchSpec, StemSpec, block_mid_widths

Size = tuple[int, int, int]  # (T, H, W)


class LayerShape(NamedTuple):
    """The stem or one block as the builder makes it, at one clip."""

    path: str  # "stem" or "stage2.block1"
    kind: str  # the conv kind that builds its convs ("3d" for R2D's stem)
    c_in: int  # channels entering the layer
    planes: int  # output channels of its kind convs (the stage width; the stem's width)
    c_out: int  # channels leaving it (planes x 4 for bottleneck blocks)
    mids: tuple[int, ...]  # mid width of each of its kind convs, bottom to top
    t_kernel: int  # temporal extent of its kind convs
    t_stride: int  # temporal stride of the layer
    s_stride: int  # spatial stride of the layer
    s_kernel: int  # spatial kernel of its kind convs (7 in the stem, 3 in blocks)
    t_valid: bool  # no temporal padding (R2D's whole-clip stem)
    size_in: Size  # (T, H, W) entering
    size_out: Size  # (T, H, W) leaving

    @property
    def projection(self) -> bool:
        """Whether a block's shortcut needs a 1x1x1 conv: it strides or changes channels."""
        return self.t_stride != 1 or self.s_stride != 1 or self.c_in != self.c_out


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a conv along one axis."""
    return (size + 2 * pad - kernel) // stride + 1


def conv_size(size: Size, kernel: Size, stride: Size, t_valid: bool = False) -> Size:
    """Output (T, H, W) of a conv with "same" padding (k // 2), or none along time if t_valid."""
    t_pad = 0 if t_valid else kernel[0] // 2
    return (conv_out(size[0], kernel[0], stride[0], t_pad),
            conv_out(size[1], kernel[1], stride[1], kernel[1] // 2),
            conv_out(size[2], kernel[2], stride[2], kernel[2] // 2))


def stem_size(stem: StemSpec, size: Size) -> Size:
    """(T, H, W) after ``stem`` at input ``size``."""
    _, t_valid = stem_conv(stem.kind)
    return conv_size(size, (stem.t_kernel, stem.s_kernel, stem.s_kernel),
                     (stem.t_stride, stem.s_stride, stem.s_stride), t_valid)


def strided(size: int, stride: int) -> int:
    """Length after a block's stride: every kind maps ``n`` to ``ceil(n / stride)``."""
    return (size - 1) // stride + 1


def t_stride_by_kind(kind: str, s_stride: int, frames: int | None = None) -> int:
    """Temporal stride of a stage's first block by the paper rule (Tran et al. 2018).

    A temporal kind strides time as it strides space ((2, 2, 2)); a 2D block keeps time
    ((1, 2, 2)). Given the ``frames`` entering the block, a single frame is not strided again,
    so short clips give valid networks; without it a too-short clip is left to the spec's
    validation, which names the block.
    """
    if not get_kind(kind).temporal or (frames is not None and frames <= 1):
        return 1
    return s_stride


def walk(spec: ArchSpec, size: Size | None = None) -> tuple[LayerShape, ...]:
    """The stem and every block of ``spec``, bottom to top, at input ``size``.

    At the spec's own clip (the default) this is ``spec.layer_shapes``, walked once per spec
    (when it is validated); any other size is walked anew.

    Args:
        spec: the architecture.
        size: input (T, H, W); default ``(clip_len, crop_size, crop_size)``.

    Raises:
        SpecError: naming the layer when a stride hits a 1-frame or 1-pixel feature map.
    """
    if size is None or tuple(size) == (spec.clip_len, spec.crop_size, spec.crop_size):
        return spec.layer_shapes
    return walk_at(spec, tuple(size))


def walk_at(spec: ArchSpec, clip: Size) -> tuple[LayerShape, ...]:
    """``walk`` at input ``clip`` (T, H, W), computed (not cached)."""
    stem = spec.stem
    kind, t_valid = stem_conv(stem.kind)
    out = stem_size(stem, clip)
    if min(out) < 1:
        raise SpecError(f"stem: reduces the {clip[0]}x{clip[1]}x{clip[2]} clip to nothing")
    layers = [LayerShape("stem", kind, spec.in_channels, stem.width, stem.width,
                         (stem.mid_width,), stem.t_kernel, stem.t_stride, stem.s_stride,
                         stem.s_kernel, t_valid, clip, out)]
    expansion = BOTTLENECK_EXPANSION if spec.block_type == "bottleneck" else 1
    c_in = stem.width
    for i, stage in enumerate(spec.stages):
        planes = stage.width
        for j, block in enumerate(stage.blocks):
            path = f"stage{i + 1}.block{j + 1}"
            size_in = t, h, w = out
            # A stride on a size-1 axis means the clip is too small for this placement.
            if block.t_stride != 1 and t <= 1:
                raise SpecError(f"{path}.t_stride: strides a 1-frame feature map; clip_len "
                                f"{clip[0]} is too short")
            if block.s_stride != 1 and min(h, w) <= 1:
                raise SpecError(f"{path}.s_stride: strides a 1-pixel feature map; crop_size "
                                f"{min(clip[1:])} is too small")
            out = (strided(t, block.t_stride), strided(h, block.s_stride),
                   strided(w, block.s_stride))
            # the inputs of its kind convs: a bottleneck's one conv sees `planes`; a basic
            # block's two see c_in, then planes
            conv_ins = (planes,) if expansion > 1 else (c_in, planes)
            mids = block_mid_widths(spec, block, c_in, planes, conv_ins)
            layers.append(LayerShape(path, block.kind, c_in, planes, planes * expansion, mids,
                                     block.t_kernel, block.t_stride, block.s_stride, 3, False,
                                     size_in, out))
            c_in = planes * expansion
    return tuple(layers)
