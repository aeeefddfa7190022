"""Architecture as data: the frozen, JSON-serialisable ``ArchSpec``.

A spec says, block by block, which convolution kind a video ResNet uses, with which temporal
extent and strides. Reading and validating a spec needs no torch: analysis and the dashboard read
specs from the results database without loading it.

Naming: the stem is ``stem``; stages are ``stage1`` … ``stageN`` (``stage1`` is the paper's
``conv2_x`` / torchvision's ``layer1``); blocks inside a stage are ``block1`` … ``blockM``. Error
messages and search-space parameter names use the same dotted paths (``stage2.block1.kind``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arch_space.errors import SpecError as SpecError  # re-exported: the layer's error
from arch_space.kinds import BLOCK_KINDS as BLOCK_KINDS  # re-exported: live views of kinds.py
from arch_space.kinds import KIND_ALIASES as KIND_ALIASES
from arch_space.kinds import STEM_KINDS, TEMPORAL_KINDS, WHOLE_CLIP_STEM, find_kind, get_kind
from arch_space.kinds import normalise_kind as normalise_kind

if TYPE_CHECKING:
    from arch_space.geometry import LayerShape

# The kind vocabulary (BLOCK_KINDS, TEMPORAL_KINDS, KIND_ALIASES, STEM_KINDS) is a live view of
# the one table of conv-kind facts in ``kinds.py``; the torch classes register there too.
# Stem kinds (STEM_KINDS): 3D (3x7x7), 2D (1x7x7), (2+1)D (1x7x7 to mid, then tx1x1), and R2D's,
# whose temporal kernel spans the whole clip and collapses time at once (Tran et al. 2018, 3.1).
BLOCK_TYPES: tuple[str, ...] = ("basic", "bottleneck")
# (2+1)D intermediate-width rules: "paper" = per conv, Tran et al. 2018 eq. (1);
# "torchvision" = once per block from (inplanes, planes), used by both convs of the block.
MID_RULES: tuple[str, ...] = ("paper", "torchvision")
# Temporal padding of t>1 kernels: "zeros" as torchvision/VMZ; "replicate" repeats edge frames,
# which makes I3D inflation exact at the clip's ends too.
T_PAD_MODES: tuple[str, ...] = ("zeros", "replicate")

BOTTLENECK_EXPANSION = 4
# VMZ's (and torchvision's r2plus1d_18) (2+1)D stem mid width at 64 channels: a constant of their
# code, not eq. (1) of the paper (which gives 83 there). The reference presets pin it.
VMZ_STEM_MID = 45
# ``StemSpec.mid_width`` of stems without a mid conv (2D, 3D, R2D): unused, kept at the field's
# old default so the JSON (and arch_id) of every such spec stays what it was.
UNUSED_STEM_MID = 45


def mid_width(t_kernel: int, s_kernel: int, c_in: int, c_out: int) -> int:
    """(2+1)D intermediate width M = floor(t·k²·C_in·C_out / (k²·C_in + t·C_out)).

    Tran et al. 2018, Sec. 3.5: the spatial (1×k×k) and temporal (t×1×1) pair then has about the
    parameters of the full t×k×k conv.
    """
    k2 = s_kernel * s_kernel
    return (t_kernel * k2 * c_in * c_out) // (k2 * c_in + t_kernel * c_out)


def stem_mid_width(stem: StemSpec, in_channels: int = 3) -> int:
    """The mid width a stem gets when none is pinned: eq. (1) for a (2+1)D stem of its width.

    E.g. 20 for an 8-channel stem (t=3, 7x7, RGB), where VMZ's constant 45 would cost more than
    the 3D stem it replaces. Stems without a mid conv get the inert ``UNUSED_STEM_MID``.
    """
    facts = find_kind(stem.kind)
    if facts is None or not facts.uses_mid or not all(isinstance(v, int) and v > 0 for v in
                                         (stem.t_kernel, stem.s_kernel, stem.width, in_channels)):
        return UNUSED_STEM_MID  # (invalid values are reported by validate, naming the field)
    return max(1, mid_width(stem.t_kernel, stem.s_kernel, in_channels, stem.width))


def block_mid_widths(spec: ArchSpec, block: BlockSpec, inplanes: int, planes: int,
                     conv_ins: tuple[int, ...]) -> tuple[int, ...]:
    """Mid widths of a block's k×k convs (whose inputs are ``conv_ins``) under ``spec.mid_rule``.

    "torchvision": once per block from ``(inplanes, planes)``, shared by the block's convs;
    "paper" (Tran et al. 2018, eq. 1): per conv, from its own ``(C_in, planes)``.
    """
    if spec.mid_rule == "torchvision":
        return tuple(mid_width(block.t_kernel, 3, inplanes, planes) for _ in conv_ins)
    return tuple(mid_width(block.t_kernel, 3, c_in, planes) for c_in in conv_ins)


def _require(cond: bool, path: str, reason: str) -> None:
    if not cond:
        raise SpecError(f"{path}: {reason}")


def _check_int(value: Any, path: str, minimum: int = 1) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool), path,
             f"must be an integer, got {value!r}")
    _require(value >= minimum, path, f"must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class StemSpec:
    """The stem: one conv (or a (2+1)D pair) that takes the RGB clip to ``width`` channels."""

    kind: str = "3d"  # one of STEM_KINDS
    width: int = 64  # output channels
    t_kernel: int = 3  # temporal extent; for "r2d" it is set to the clip length
    t_stride: int = 1  # temporal stride (torchvision and VMZ keep time here)
    s_kernel: int = 7  # spatial kernel
    s_stride: int = 2  # spatial stride
    # (2+1)D stem only: width between its spatial and temporal conv. None (the default): eq. (1)
    # of Tran et al. 2018 for the stem's own width (``stem_mid_width``), resolved by ``ArchSpec``
    # so the stored JSON always holds the number; VMZ's presets pin ``VMZ_STEM_MID``.
    mid_width: int | None = None
    inflate: bool = True  # take 2D-pretrained weights when inflating

    def validate(self, path: str = "stem") -> None:
        """Raise ``SpecError`` naming the field if the stem is invalid."""
        _require(self.kind in STEM_KINDS, f"{path}.kind",
                 f"unknown stem kind {self.kind!r}; choose one of {list(STEM_KINDS)}")
        for name in ("width", "t_kernel", "t_stride", "s_kernel", "s_stride"):
            _check_int(getattr(self, name), f"{path}.{name}")
        if self.mid_width is not None:  # None: resolved by the ArchSpec it belongs to
            _check_int(self.mid_width, f"{path}.mid_width")
        if self.kind != WHOLE_CLIP_STEM:
            _require(self.t_kernel % 2 == 1, f"{path}.t_kernel",
                     f"must be odd, got {self.t_kernel}")
        _require(self.s_kernel % 2 == 1, f"{path}.s_kernel", f"must be odd, got {self.s_kernel}")
        _require(isinstance(self.inflate, bool), f"{path}.inflate", "must be true or false")


@dataclass(frozen=True)
class BlockSpec:
    """One residual block: its conv kind, temporal extent, strides and inflation switch."""

    kind: str = "3d"  # one of BLOCK_KINDS (aliases such as p3d_a are normalised)
    t_kernel: int = 3  # temporal extent of the block's temporal convs (odd; 1 for "2d")
    t_stride: int = 1  # temporal stride of the block (shortcut follows it)
    s_stride: int = 1  # spatial stride of the block (shortcut follows it)
    inflate: bool = True  # initialise from 2D weights when a pretrained 2D net is given

    def __post_init__(self) -> None:
        kind = normalise_kind(self.kind) if isinstance(self.kind, str) else self.kind
        object.__setattr__(self, "kind", kind)
        # A 2D conv has no temporal extent: normalise so one network has one arch_id.
        facts = find_kind(kind)
        if facts is not None and not facts.temporal and isinstance(self.t_kernel, int) and not isinstance(self.t_kernel, bool):
            object.__setattr__(self, "t_kernel", 1)

    def validate(self, path: str) -> None:
        """Raise ``SpecError`` naming the field if the block is invalid."""
        get_kind(self.kind, f"{path}.kind")  # raises naming the path for an unknown kind
        _check_int(self.t_kernel, f"{path}.t_kernel")
        _require(self.t_kernel % 2 == 1, f"{path}.t_kernel",
                 f"temporal extent must be odd, got {self.t_kernel}")
        _check_int(self.t_stride, f"{path}.t_stride")
        _check_int(self.s_stride, f"{path}.s_stride")
        _require(isinstance(self.inflate, bool), f"{path}.inflate", "must be true or false")

    @property
    def is_temporal(self) -> bool:
        """True when the block mixes information across frames."""
        return self.kind in TEMPORAL_KINDS and self.t_kernel > 1


@dataclass(frozen=True)
class StageSpec:
    """A stage: blocks of one width (``planes``; bottleneck blocks output 4x that)."""

    width: int  # planes of every block in the stage
    blocks: tuple[BlockSpec, ...]  # block1 … blockM

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))

    def validate(self, path: str) -> None:
        """Raise ``SpecError`` naming the field if the stage is invalid."""
        _check_int(self.width, f"{path}.width")
        _require(len(self.blocks) >= 1, f"{path}.blocks", "a stage needs at least one block")
        for j, block in enumerate(self.blocks):
            _require(isinstance(block, BlockSpec), f"{path}.block{j + 1}",
                     f"must be a BlockSpec, got {type(block).__name__}")
            block.validate(f"{path}.block{j + 1}")


@dataclass(frozen=True)
class ArchSpec:
    """A whole video ResNet: stem, stages, block type, head, and the clip it is sized for.

    Frozen and hashable; ``to_json``/``from_json`` round-trip exactly; ``arch_id`` is a stable
    hash of the canonical JSON. Validation runs in ``__post_init__`` and names the bad field.
    """

    stem: StemSpec
    stages: tuple[StageSpec, ...]
    block_type: str = "basic"  # "basic" (ResNet-18/34) or "bottleneck" (ResNet-50+)
    mid_rule: str = "torchvision"  # (2+1)D intermediate width rule, see MID_RULES
    t_pad_mode: str = "zeros"  # temporal padding, see T_PAD_MODES
    num_classes: int = 400  # classifier outputs
    clip_len: int = 16  # frames per clip (T) the network is specified for
    crop_size: int = 112  # square spatial size (H = W) the network is specified for
    in_channels: int = 3  # input channels (RGB)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if isinstance(self.stem, StemSpec) and self.stem.kind == WHOLE_CLIP_STEM:
            # R2D's stem spans the whole clip (Tran et al. 2018): fix its extent to clip_len.
            object.__setattr__(self, "stem", dataclasses.replace(self.stem, t_kernel=self.clip_len))
        if isinstance(self.stem, StemSpec) and self.stem.mid_width is None:
            object.__setattr__(self, "stem", dataclasses.replace(
                self.stem, mid_width=stem_mid_width(self.stem, self.in_channels)))
        self.validate()

    # --- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``SpecError`` whose message starts with the dotted path of the bad field."""
        _require(isinstance(self.stem, StemSpec), "stem", "must be a StemSpec")
        self.stem.validate("stem")
        _require(len(self.stages) >= 1, "stages", "need at least one stage")
        for i, stage in enumerate(self.stages):
            _require(isinstance(stage, StageSpec), f"stage{i + 1}", "must be a StageSpec")
            stage.validate(f"stage{i + 1}")
        _require(self.block_type in BLOCK_TYPES, "block_type",
                 f"unknown block type {self.block_type!r}; choose one of {list(BLOCK_TYPES)}")
        _require(self.mid_rule in MID_RULES, "mid_rule",
                 f"unknown mid-width rule {self.mid_rule!r}; choose one of {list(MID_RULES)}")
        _require(self.t_pad_mode in T_PAD_MODES, "t_pad_mode",
                 f"unknown temporal padding {self.t_pad_mode!r}; choose one of {list(T_PAD_MODES)}")
        _check_int(self.num_classes, "num_classes")
        _check_int(self.clip_len, "clip_len")
        _check_int(self.crop_size, "crop_size")
        _check_int(self.in_channels, "in_channels")
        _ = self.layer_shapes  # walks the spec (once); raises when a stride empties a map

    # --- geometry -----------------------------------------------------------------------------
    def block_paths(self) -> Iterator[tuple[str, BlockSpec]]:
        """Yield ``("stage2.block1", block)`` for every block, bottom to top."""
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                yield f"stage{i + 1}.block{j + 1}", block

    def out_width(self, stage_index: int) -> int:
        """Output channels of stage ``stage_index`` (0-based)."""
        expansion = BOTTLENECK_EXPANSION if self.block_type == "bottleneck" else 1
        return self.stages[stage_index].width * expansion

    @property
    def feature_dim(self) -> int:
        """Channels entering the classifier."""
        return self.out_width(len(self.stages) - 1)

    @functools.cached_property
    def layer_shapes(self) -> tuple[LayerShape, ...]:
        """Channels, strides and (T, H, W) of the stem and every block at the spec's clip: the
        one walk of the spec (``geometry.walk``) that the builder and the cost estimates share,
        made once per spec (the spec is frozen; validation makes it)."""
        from arch_space.geometry import walk_at  # geometry reads specs: imported on use

        return walk_at(self, (self.clip_len, self.crop_size, self.crop_size))

    def feature_sizes(self) -> dict[str, tuple[int, int, int]]:
        """Output (T, H, W) of the stem and of every block at ``clip_len x crop_size^2``,
        from ``layer_shapes`` (no torch)."""
        return {layer.path: layer.size_out for layer in self.layer_shapes}

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples), the form stored in JSON."""
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON: sorted keys, so equal specs give equal strings."""
        if indent is None:
            return self._compact_json
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @functools.cached_property
    def _compact_json(self) -> str:
        """The compact canonical JSON, made once per spec (the spec is frozen)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        """Inverse of ``to_dict``; unknown keys are an error naming the key."""
        data = dict(data)
        _known(data, cls, "")
        stem_data = dict(data.pop("stem", {}) or {})
        _known(stem_data, StemSpec, "stem.")
        stages = []
        for i, stage_data in enumerate(data.pop("stages", []) or []):
            stage_data = dict(stage_data)
            _known(stage_data, StageSpec, f"stage{i + 1}.")
            blocks = []
            for j, block_data in enumerate(stage_data.pop("blocks", []) or []):
                _known(dict(block_data), BlockSpec, f"stage{i + 1}.block{j + 1}.")
                blocks.append(BlockSpec(**block_data))
            _require("width" in stage_data, f"stage{i + 1}.width", "missing")
            stages.append(StageSpec(blocks=tuple(blocks), **stage_data))
        return cls(stem=StemSpec(**stem_data), stages=tuple(stages), **data)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        """Parse a spec from JSON text."""
        return cls.from_dict(json.loads(text))

    @functools.cached_property
    def arch_id(self) -> str:
        """Stable 16-hex-digit id: SHA-256 of the canonical JSON (computed once per spec: the
        spec is frozen)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    # --- convenient views ---------------------------------------------------------------------
    def with_blocks(self, **updates: Any) -> ArchSpec:
        """A copy with every block's fields replaced (e.g. ``inflate=False``)."""
        stages = tuple(StageSpec(s.width, tuple(dataclasses.replace(b, **updates) for b in s.blocks))
                       for s in self.stages)
        return dataclasses.replace(self, stages=stages)

    def replace(self, **updates: Any) -> ArchSpec:
        """``dataclasses.replace`` with re-validation."""
        return dataclasses.replace(self, **updates)

    def kinds(self) -> dict[str, str]:
        """``{"stem": kind, "stage1.block1": kind, ...}`` — the placement at a glance."""
        out = {"stem": self.stem.kind}
        out.update({path: block.kind for path, block in self.block_paths()})
        return out


def _known(data: Mapping[str, Any], cls: type, prefix: str) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:  # build the message only when needed: specs are parsed in bulk
            raise SpecError(f"{prefix}{key}: unknown field; {cls.__name__} has {sorted(names)}")

