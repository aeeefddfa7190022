"""Reference networks and placement helpers, all as ``ArchSpec`` data (no torch needed).

torchvision-exact: ``r3d_18``, ``mc3_18``, ``r2plus1d_18`` (``torchvision.models.video``).
Tran et al. 2018 ("A Closer Look at Spatiotemporal Convolutions for Action Recognition"),
ResNet-18 family: ``r2d``, ``f_r2d``, ``mc2``…``mc5``, ``rmc2``…``rmc5``, ``r3d``,
``r2plus1d`` (paper mid-width rule); plus ``p3d`` (P3D-A→B→C cycling over blocks, Qiu et al.
2017) and 34-layer variants.

The paper family's downsampling rule: stage 1 (conv2_x) keeps its size; the first block of every
later stage halves space, and halves time too when the stage is temporal (3D stages stride
(2,2,2), 2D stages (1,2,2)). MCx has 3D convs in the stem and conv2_x … conv(x-1)_x, 2D above
(bottom-heavy); rMCx has 2D in the stem and below conv_x, 3D from conv_x on (top-heavy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from arch_space.geometry import t_stride_by_kind
from arch_space.kinds import MIXES, TEMPORAL_STEM_KINDS, find_kind, get_kind
from arch_space.kinds import STEM_FOR_KIND as STEM_FOR_KIND  # re-exported (a live view)
from arch_space.spec import VMZ_STEM_MID, ArchSpec, BlockSpec, StageSpec, StemSpec

RESNET18_DEPTHS = (2, 2, 2, 2)
RESNET34_DEPTHS = (3, 4, 6, 3)
RESNET_WIDTHS = (64, 128, 256, 512)

_PRESETS: dict[str, Callable[..., ArchSpec]] = {}


def register_preset(name: str) -> Callable[[Callable[..., ArchSpec]], Callable[..., ArchSpec]]:
    """Decorator: register ``fn(num_classes=, clip_len=, crop_size=) -> ArchSpec`` as ``name``."""
    def decorate(fn: Callable[..., ArchSpec]) -> Callable[..., ArchSpec]:
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} is already registered")
        _PRESETS[name] = fn
        return fn
    return decorate


def list_presets() -> list[str]:
    """Names of every registered preset, sorted."""
    return sorted(_PRESETS)


def preset(name: str, *, num_classes: int = 400, clip_len: int = 16,
           crop_size: int = 112) -> ArchSpec:
    """The spec of a named reference network, e.g. ``preset("mc3_18")``."""
    try:
        fn = _PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; registered: {', '.join(list_presets())}") from None
    return fn(num_classes=num_classes, clip_len=clip_len, crop_size=crop_size)


def per_stage(stage_kinds: Sequence[str | Sequence[str]], stem_kind: str = "3d", *,
              widths: Sequence[int] = RESNET_WIDTHS, depths: Sequence[int] = RESNET18_DEPTHS,
              stem_width: int | None = None, stem_mid_width: int | None = None,
              block_type: str = "basic", t_kernel: int = 3,
              mid_rule: str = "torchvision", t_pad_mode: str = "zeros",
              temporal_downsample: bool = True, num_classes: int = 400, clip_len: int = 16,
              crop_size: int = 112) -> ArchSpec:
    """A video ResNet whose conv kind is chosen per stage (or per block, with a list per stage).

    Args:
        stage_kinds: one kind per stage, or a list of kinds (one per block) for a stage.
        stem_kind: one of ``"2d" "3d" "2plus1d" "r2d"``.
        widths, depths: planes and number of blocks of each stage.
        stem_width: stem output channels (default: ``widths[0]``).
        stem_mid_width: a (2+1)D stem's mid width; None follows eq. (1) of Tran et al. 2018 for
            the stem's width (``spec.stem_mid_width``); VMZ's presets pin 45.
        block_type: ``"basic"`` or ``"bottleneck"``.
        t_kernel: temporal extent of temporal kinds.
        mid_rule: (2+1)D intermediate width rule, ``"torchvision"`` or ``"paper"``.
        t_pad_mode: temporal padding (``"zeros"`` or ``"replicate"``).
        temporal_downsample: the paper rule — the first block of stages 2+ strides time by 2
            when its kind is temporal; False keeps time everywhere.
        num_classes, clip_len, crop_size: head and the clip the spec is sized for.
    """
    if not (len(stage_kinds) == len(widths) == len(depths)):
        raise ValueError(f"stage_kinds, widths and depths need one entry per stage; got "
                         f"{len(stage_kinds)}, {len(widths)}, {len(depths)}")
    stages = []
    for i, (kinds, width, depth) in enumerate(zip(stage_kinds, widths, depths, strict=True)):
        block_kinds = [kinds] * depth if isinstance(kinds, str) else list(kinds)
        if len(block_kinds) != depth:
            raise ValueError(f"stage{i + 1}: {len(block_kinds)} kinds for {depth} blocks")
        blocks = []
        for j, kind in enumerate(block_kinds):
            facts = get_kind(kind, f"stage{i + 1}.block{j + 1}.kind")
            s_stride = 2 if i > 0 and j == 0 else 1  # later stages halve space in block 1
            blocks.append(BlockSpec(
                kind=kind,
                t_kernel=t_kernel if facts.temporal else 1,
                t_stride=t_stride_by_kind(kind, s_stride) if j == 0 and temporal_downsample else 1,
                s_stride=s_stride,
            ))
        stages.append(StageSpec(width=width, blocks=tuple(blocks)))
    stem_facts = find_kind(stem_kind)
    stem = StemSpec(kind=stem_kind, width=stem_width or widths[0],
                    t_kernel=3 if stem_kind in TEMPORAL_STEM_KINDS else 1,
                    mid_width=stem_mid_width if stem_facts and stem_facts.uses_mid else None)
    return ArchSpec(stem=stem, stages=tuple(stages), block_type=block_type, mid_rule=mid_rule,
                    t_pad_mode=t_pad_mode, num_classes=num_classes, clip_len=clip_len,
                    crop_size=crop_size)


def uniform(kind: str = "3d", *, stem_kind: str | None = None, **kwargs) -> ArchSpec:
    """Every block of one kind (R3D, R(2+1)D, f-R2D style); the stem follows the kind."""
    n = len(kwargs.get("widths", RESNET_WIDTHS))
    return per_stage([kind] * n, stem_kind or get_kind(kind).stem, **kwargs)


def bottom_heavy(n_stages: int, kind: str = "3d", **kwargs) -> ArchSpec:
    """MC-style: temporal stem and the bottom ``n_stages`` stages of ``kind``, 2D above.

    ``mc{x}`` of the paper is ``bottom_heavy(x - 2)``.
    """
    n = len(kwargs.get("widths", RESNET_WIDTHS))
    _check_count(n_stages, n)
    kinds = [kind] * n_stages + ["2d"] * (n - n_stages)
    return per_stage(kinds, kwargs.pop("stem_kind", None) or get_kind(kind).stem, **kwargs)


def top_heavy(n_stages: int, kind: str = "3d", **kwargs) -> ArchSpec:
    """rMC-style: 2D stem and bottom stages, the top ``n_stages`` stages of ``kind``.

    ``rmc{x}`` of the paper is ``top_heavy(6 - x)`` (4 stages).
    """
    n = len(kwargs.get("widths", RESNET_WIDTHS))
    _check_count(n_stages, n)
    kinds = ["2d"] * (n - n_stages) + [kind] * n_stages
    return per_stage(kinds, kwargs.pop("stem_kind", "2d"), **kwargs)


def only_stage(stage: int, kind: str = "3d", **kwargs) -> ArchSpec:
    """Temporal modelling in stage ``stage`` (1-based) only; 2D stem and elsewhere."""
    n = len(kwargs.get("widths", RESNET_WIDTHS))
    if not 1 <= stage <= n:
        raise ValueError(f"stage: must be in 1..{n}, got {stage}")
    kinds = [kind if i + 1 == stage else "2d" for i in range(n)]
    return per_stage(kinds, kwargs.pop("stem_kind", "2d"), **kwargs)


def _check_count(n_stages: int, n: int) -> None:
    if not 0 <= n_stages <= n:
        raise ValueError(f"n_stages: must be in 0..{n}, got {n_stages}")


# --- torchvision-exact -------------------------------------------------------------------------

@register_preset("r3d_18")
def r3d_18(**head) -> ArchSpec:
    """torchvision ``r3d_18``: 3D stem, 3D everywhere, time halved at stages 2–4."""
    return uniform("3d", **head)


@register_preset("mc3_18")
def mc3_18(**head) -> ArchSpec:
    """torchvision ``mc3_18``: 3D stem and stage 1, 2D above (time kept)."""
    return bottom_heavy(1, **head)


@register_preset("r2plus1d_18")
def r2plus1d_18(**head) -> ArchSpec:
    """torchvision ``r2plus1d_18``: (2+1)D stem (45 mid), blocks with the per-block mid rule."""
    return uniform("2plus1d", mid_rule="torchvision", stem_mid_width=VMZ_STEM_MID, **head)


# --- Tran et al. 2018, ResNet-18 family ----------------------------------------------------------

@register_preset("r2d")
def r2d(**head) -> ArchSpec:
    """R2D: the stem's temporal kernel spans the clip (time collapses at once), 2D after."""
    return uniform("2d", stem_kind="r2d", **head)


@register_preset("f_r2d")
def f_r2d(**head) -> ArchSpec:
    """f-R2D: 2D convs frame by frame, time pooled only at the top."""
    return uniform("2d", **head)


def _register_mixed(x: int) -> None:
    register_preset(f"mc{x}")(lambda **head: bottom_heavy(x - 2, **head))
    register_preset(f"rmc{x}")(lambda **head: top_heavy(6 - x, **head))


for _x in (2, 3, 4, 5):
    _register_mixed(_x)


@register_preset("r3d")
def r3d(**head) -> ArchSpec:
    """R3D-18 of the paper (the same network as torchvision's r3d_18)."""
    return uniform("3d", **head)


@register_preset("r2plus1d")
def r2plus1d(**head) -> ArchSpec:
    """R(2+1)D-18 of the paper: per-conv mid rule (eq. 1), (2+1)D stem with 45 mid channels
    (VMZ's code, the paper's own implementation)."""
    return uniform("2plus1d", mid_rule="paper", stem_mid_width=VMZ_STEM_MID, **head)


P3D_CYCLE: tuple[str, ...] = MIXES["p3d_mix"]  # P3D-A, B, C (arch_space.kinds owns it)


def p3d_mix(cycle: Sequence[str] = P3D_CYCLE, **kwargs) -> ArchSpec:
    """P3D-A → B → C cycling over the blocks, bottom to top (Qiu et al. 2017), (2+1)D stem.

    Takes ``per_stage``'s keyword arguments (widths, depths, ...); ``cycle`` gives another
    order (a rotation such as B → C → A moves each kind to other blocks).
    """
    kinds, k = [], 0
    for depth in kwargs.get("depths", RESNET18_DEPTHS):
        kinds.append([cycle[(k + j) % len(cycle)] for j in range(depth)])
        k += depth
    return per_stage(kinds, kwargs.pop("stem_kind", "2plus1d"), **kwargs)


@register_preset("p3d")
def p3d(**head) -> ArchSpec:
    """ResNet-18 with P3D-A → B → C cycling over blocks (Qiu et al. 2017), (2+1)D stem of VMZ's
    45 mid channels."""
    return p3d_mix(stem_mid_width=VMZ_STEM_MID, **head)


@register_preset("r3d_34")
def r3d_34(**head) -> ArchSpec:
    """R3D-34 (depths 3, 4, 6, 3)."""
    return uniform("3d", depths=RESNET34_DEPTHS, **head)


@register_preset("r2plus1d_34")
def r2plus1d_34(**head) -> ArchSpec:
    """R(2+1)D-34 of the paper (depths 3, 4, 6, 3; per-conv mid rule; VMZ's 45-mid stem)."""
    return uniform("2plus1d", depths=RESNET34_DEPTHS, mid_rule="paper",
                   stem_mid_width=VMZ_STEM_MID, **head)
