"""Search spaces: which conv each block may use, under which budget — the model.

A space is a base network (widths, depths, stem, block type, clip, classes) plus *decisions*.
Each decision governs one *slot* — the stem, one block, every block of a stage (tied), or a
named group of stages/blocks (a tie) — and offers choice lists for the slot's fields ``kind``,
``t_kernel`` and ``inflate``. Alternatively a space is a fixed list of named presets or
placements, for studies that compare known networks (R3D against MC3 against rMC3, say).

``SearchSpace.sample(trial)`` asks an Optuna trial (define-by-run) for one point; parameter
names mirror spec paths (``stem.kind``, ``stage2.kind`` for a stage tie, ``stage2.block1.kind``,
``stage2.block1.t_kernel``; a named tie ``top`` gives ``top.kind``). A ``t_kernel`` is suggested
only when the slot's kind is temporal. Sampling never builds a network and has no side effects.
``enumerate()`` lists every point of a small design, ``size()`` counts it without building
anything, and constraints (max MACs, max params at a stated clip) are checked analytically with
``estimate.estimate_macs`` / ``estimate.estimate_params`` — torch is never imported here.

Spaces are written in YAML; ``SearchSpace.from_yaml`` reads them through ``arch_space.space_yaml``,
which describes the form.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from arch_space.geometry import stem_size, strided, t_stride_by_kind
from arch_space.kinds import TEMPORAL_KINDS, WHOLE_CLIP_STEM
from arch_space.kinds import TEMPORAL_STEM_KINDS as TEMPORAL_STEM_KINDS  # re-exported
from arch_space.spec import ArchSpec, BlockSpec, SpecError, StageSpec, StemSpec, normalise_kind
from arch_space.units import format_count
from arch_space.units import parse_clip as parse_clip  # re-exported: the public API
from arch_space.units import parse_count as parse_count

# Block fields a decision may choose, in the order they are suggested.
BLOCK_FIELDS: tuple[str, ...] = ("kind", "t_kernel", "inflate")
# Stem fields a decision may choose.
STEM_FIELDS: tuple[str, ...] = ("kind", "t_kernel")
# Above this many points, enumerate() refuses (sample from the space instead).
MAX_ENUMERATE = 200_000


class TrialLike(Protocol):
    """The part of ``optuna.trial.BaseTrial`` that sampling uses."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


# --- the parts of a space ---------------------------------------------------------------------
@dataclass(frozen=True)
class Constraints:
    """Budget a point must meet, measured analytically at ``clip``."""

    max_macs: int | None = None  # conv+linear multiply-adds (the torchvision/paper convention)
    max_params: int | None = None  # learnable parameters, BN included
    clip: tuple[int, int, int] | None = None  # (T, H, W) the budget is stated at; None: the spec's

    def check(self, spec: ArchSpec) -> tuple[bool, str]:
        """``(True, "")`` when ``spec`` meets the budget, else ``(False, reason)``."""
        from arch_space.estimate import estimate_macs, estimate_params

        if self.max_macs is not None:
            try:
                macs = estimate_macs(spec, self.clip)
            except SpecError as err:  # the network does not fit the stated clip at all
                return False, f"clip: {self._clip_text(spec)} does not fit the network: {err}"
            if macs > self.max_macs:
                return False, (f"max_macs: {format_count(macs)} MACs at {self._clip_text(spec)} exceed "
                               f"{format_count(self.max_macs)}")
        if self.max_params is not None:
            params = estimate_params(spec)
            if params > self.max_params:
                return False, f"max_params: {params:,} parameters exceed {self.max_params:,}"
        return True, ""

    def _clip_text(self, spec: ArchSpec) -> str:
        t, h, w = self.clip or (spec.clip_len, spec.crop_size, spec.crop_size)
        return f"{t}x{h}x{w}"

    @property
    def active(self) -> bool:
        """True when at least one limit is set."""
        return self.max_macs is not None or self.max_params is not None


@dataclass(frozen=True)
class IsoMacs:
    """Scale every point's widths to one MAC count (S3D-style iso-FLOP arms; see scaling.py)."""

    target: int  # conv + linear MACs every point is scaled to, at `clip`
    clip: tuple[int, int, int] | None = None  # (T, H, W) the target is stated at; None: the spec's
    tol: float = 0.02  # largest accepted relative MAC error
    multiple: int = 8  # widths are rounded to multiples of this

    def apply(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` with widths scaled to ``target`` MACs.

        Raises:
            SpecError: ``iso_macs: ...`` when no common width factor comes within ``tol``.
        """
        from arch_space.scaling import scale_to_macs

        try:
            return scale_to_macs(spec, self.target, tol=self.tol, multiple=self.multiple,
                                 clip=self.clip)
        except ValueError as err:
            raise SpecError(f"iso_macs: {err}") from None


@dataclass(frozen=True)
class Slot:
    """One decision: the blocks (or the stem) it governs and the options for each field."""

    name: str  # parameter prefix: "stem", "stage2", "stage2.block1" or a tie's name
    paths: tuple[str, ...]  # spec paths it sets ("stem" or block paths), bottom to top
    options: Mapping[str, tuple[Any, ...]]  # field -> choices; (None,) keeps each path's default
    default_kinds: tuple[str, ...] = ()  # the base kinds of its paths (used when kind is None)

    @property
    def is_stem(self) -> bool:
        """True for the stem's decision."""
        return self.paths == ("stem",)

    def temporal(self, kind: str | None) -> bool:
        """Whether ``t_kernel`` is meaningful for ``kind`` (None: the paths' base kinds)."""
        temporal = TEMPORAL_STEM_KINDS if self.is_stem else TEMPORAL_KINDS
        kinds = self.default_kinds if kind is None else (kind,)
        return any(k in temporal for k in kinds)

    def points(self) -> Iterator[dict[str, Any]]:
        """Every assignment of this slot's fields, honouring conditionality."""
        fields = STEM_FIELDS if self.is_stem else BLOCK_FIELDS
        for kind in self.options["kind"]:
            t_options = self.options["t_kernel"] if self.temporal(kind) else (None,)
            rest = [self.options[f] for f in fields if f not in ("kind", "t_kernel")]
            for t_kernel in t_options:
                for combo in itertools.product(*rest):
                    point = {"kind": kind, "t_kernel": t_kernel}
                    point.update(zip([f for f in fields if f not in ("kind", "t_kernel")],
                                     combo, strict=True))
                    yield point

    def count(self) -> int:
        """Number of assignments (what ``points`` yields) without listing them."""
        rest = math.prod(len(v) for f, v in self.options.items() if f not in ("kind", "t_kernel"))
        per_kind = [len(self.options["t_kernel"]) if self.temporal(k) else 1
                    for k in self.options["kind"]]
        return sum(per_kind) * rest

    def suggest(self, trial: TrialLike) -> dict[str, Any]:
        """Ask ``trial`` for this slot's free fields (define-by-run, conditional)."""
        point: dict[str, Any] = {}
        point["kind"] = self._pick(trial, "kind")
        point["t_kernel"] = self._pick(trial, "t_kernel") if self.temporal(point["kind"]) else None
        for name in self.options:
            if name not in point:
                point[name] = self._pick(trial, name)
        return point

    def _pick(self, trial: TrialLike, name: str) -> Any:
        choices = self.options[name]
        if len(choices) == 1:
            return choices[0]  # fixed: not a search dimension
        return trial.suggest_categorical(f"{self.name}.{name}", list(choices))

    def param_names(self) -> list[str]:
        """Names this slot may suggest (``t_kernel`` only matters for temporal kinds)."""
        names = []
        for name, choices in self.options.items():
            if len(choices) <= 1:
                continue
            if name == "t_kernel" and not any(self.temporal(k) for k in self.options["kind"]):
                continue
            names.append(f"{self.name}.{name}")
        return names


@dataclass(frozen=True)
class BaseNet:
    """The fixed part of every point: geometry, stem, head and the default block fields."""

    widths: tuple[int, ...]  # planes per stage
    depths: tuple[int, ...]  # blocks per stage
    stem: StemSpec  # the stem a point gets unless its kind/t_kernel is a decision
    blocks: Mapping[str, BlockSpec]  # path -> the block a point gets unless decided (kind, ...)
    t_kernel: int  # extent a temporal block gets when its kind is chosen but its extent is not
    stem_t_kernel: int  # the same for a temporal stem
    t_strides: tuple[int, ...] | None  # temporal stride of each stage's first block; None: by kind
    s_strides: tuple[int, ...]  # spatial stride of each stage's first block
    block_type: str = "basic"  # "basic" or "bottleneck"
    mid_rule: str = "torchvision"  # (2+1)D intermediate width rule
    t_pad_mode: str = "zeros"  # temporal padding
    num_classes: int = 400  # classifier outputs
    clip_len: int = 16  # frames per clip
    crop_size: int = 112  # square crop

    def block_paths(self) -> list[str]:
        """Every block path of the base, bottom to top."""
        return [f"stage{i + 1}.block{j + 1}" for i, d in enumerate(self.depths) for j in range(d)]

    def make_spec(self, stem: Mapping[str, Any], blocks: Mapping[str, Mapping[str, Any]]) -> ArchSpec:
        """The ``ArchSpec`` for a stem assignment and per-block assignments (paths → fields).

        Unassigned fields take the base defaults. ``t_stride`` of a stage's first block follows
        ``t_strides``, or, when that is None, the kind (torchvision / Tran et al. 2018: a 2D block
        downsamples (1, 2, 2), a temporal block (2, 2, 2)) — except that a single frame left is
        not halved again, so short clips give valid networks for every placement.
        """
        stem_kind = normalise_kind(stem.get("kind") or self.stem.kind)
        if stem_kind == WHOLE_CLIP_STEM:
            stem_t = self.clip_len  # R2D's stem spans the clip (ArchSpec sets it so too)
        elif stem_kind not in TEMPORAL_STEM_KINDS:
            stem_t = 1  # a 2D stem has no temporal extent
        elif stem.get("t_kernel"):
            stem_t = stem["t_kernel"]
        elif stem_kind == self.stem.kind:
            stem_t = self.stem.t_kernel
        else:
            stem_t = self.stem_t_kernel
        stem_spec = dataclasses.replace(self.stem, kind=stem_kind, t_kernel=stem_t)
        frames = stem_size(stem_spec, (self.clip_len, self.crop_size, self.crop_size))[0]
        stages = []
        for i, (width, depth) in enumerate(zip(self.widths, self.depths, strict=True)):
            block_specs = []
            for j in range(depth):
                path = f"stage{i + 1}.block{j + 1}"
                fields = {k: v for k, v in blocks.get(path, {}).items() if v is not None}
                default = self.blocks[path]
                kind = normalise_kind(fields.get("kind", default.kind))
                if "t_kernel" in fields:
                    t_kernel = fields["t_kernel"]
                elif default.kind in TEMPORAL_KINDS:
                    t_kernel = default.t_kernel
                else:  # a 2D default turned temporal: the space's default extent
                    t_kernel = self.t_kernel
                inflate = fields.get("inflate", default.inflate)
                s_stride = self.s_strides[i] if j == 0 else 1
                if j > 0:
                    t_stride = 1
                elif self.t_strides is not None:
                    t_stride = self.t_strides[i]
                else:  # by kind; a single frame left is not halved (short clips)
                    t_stride = t_stride_by_kind(kind, s_stride, frames)
                frames = strided(frames, t_stride)
                block_specs.append(BlockSpec(kind=kind, t_kernel=t_kernel, t_stride=t_stride,
                                             s_stride=s_stride, inflate=inflate))
            stages.append(StageSpec(width=width, blocks=tuple(block_specs)))
        return ArchSpec(stem=stem_spec, stages=tuple(stages), block_type=self.block_type,
                        mid_rule=self.mid_rule, t_pad_mode=self.t_pad_mode,
                        num_classes=self.num_classes, clip_len=self.clip_len,
                        crop_size=self.crop_size)


@dataclass(frozen=True)
class Placement:
    """A named fixed point: a registered preset, or kinds placed on the base network."""

    name: str  # the value of the "preset" parameter
    preset: str | None = None  # registered preset name, when it is one
    kinds: Mapping[str, Any] = field(default_factory=dict)  # "stem"/"stageN"/"stageN.blockM" -> fields


# --- the space --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchSpace:
    """A declarative set of ``ArchSpec`` points with a budget.

    Build one with ``SearchSpace.from_yaml``; see the module docstring for the YAML form.
    """

    name: str  # the space's name (reports, study configs)
    base: BaseNet  # fixed part of every point
    slots: tuple[Slot, ...]  # decisions, stem first, then bottom to top
    placements: tuple[Placement, ...] = ()  # fixed points; when set, the only decision
    constraints: Constraints = Constraints()  # budget checked by is_feasible
    iso_macs: IsoMacs | None = None  # when set, every point's widths are scaled to its target

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, source: str | Path | Mapping[str, Any]) -> SearchSpace:
        """Load a space from a YAML file, a mapping or an OmegaConf ``DictConfig``.

        A bare name (``"per_stage_kinds"``) loads a space shipped in ``arch_space/spaces``; the
        YAML form is described in ``arch_space.space_yaml``, which parses it.

        Raises:
            SpecError: whose message starts with the offending key or block path.
        """
        from arch_space.space_yaml import load_space  # it builds the classes of this module

        return load_space(source)

    # --- questions before anything runs -------------------------------------------------------
    def param_names(self) -> list[str]:
        """Every Optuna parameter name the space may suggest."""
        if self.placements:
            return ["preset"] if len(self.placements) > 1 else []
        return [name for slot in self.slots for name in slot.param_names()]

    def size(self) -> int:
        """Number of points in the design, counted without building specs or networks.

        Points that the constraints reject are included; ``enumerate()`` drops them.
        """
        if self.placements:
            return len(self.placements)
        return math.prod(slot.count() for slot in self.slots)

    def is_feasible(self, spec: ArchSpec) -> tuple[bool, str]:
        """``(True, "")`` when ``spec`` meets the constraints, else ``(False, reason)``.

        The reason starts with the constraint's name (``max_macs: ...``). Sampling does not
        check: the caller decides whether to prune, penalise or resample.
        """
        return self.constraints.check(spec)

    # --- points -------------------------------------------------------------------------------
    def sample(self, trial: TrialLike) -> ArchSpec:
        """One point chosen by an Optuna trial (define-by-run).

        Only ``trial.suggest_categorical`` is called, with dotted names mirroring spec paths;
        ``t_kernel`` is suggested only when the slot's kind is temporal. No network is built and
        constraints are not checked (see ``is_feasible``).
        """
        if self.placements:
            if len(self.placements) == 1:
                return self._placement_spec(self.placements[0])
            name = trial.suggest_categorical("preset", [p.name for p in self.placements])
            return self._placement_spec(next(p for p in self.placements if p.name == name))
        return self._spec_from_slots([slot.suggest(trial) for slot in self.slots])

    def _finish(self, spec: ArchSpec) -> ArchSpec:
        return spec if self.iso_macs is None else self.iso_macs.apply(spec)

    def spec_from_params(self, params: Mapping[str, Any]) -> ArchSpec:
        """The point for a finished trial's ``trial.params`` (inverse of ``sample``)."""
        from optuna.trial import FixedTrial

        return self.sample(FixedTrial(dict(params)))

    def enumerate(self, *, feasible_only: bool = True, skip_impossible: bool = False
                  ) -> list[ArchSpec]:
        """Every point of the design, deduplicated by ``arch_id``, in a stable order.

        Args:
            feasible_only: drop points that violate the constraints.
            skip_impossible: drop points that are not valid networks (e.g. a temporal stride
                on a 1-frame feature map) instead of raising.

        Raises:
            SpecError: when the design has more than ``MAX_ENUMERATE`` points, when a point is
                impossible (the message starts with the block path, e.g.
                ``stage4.block1.t_stride: ...``, and lists the choices that led there), or when
                the constraints reject every point (the message names the constraint).
        """
        size = self.size()
        if size > MAX_ENUMERATE:
            raise SpecError(f"space {self.name!r}: {size} points are too many to enumerate "
                            f"(limit {MAX_ENUMERATE}); sample from it instead")
        if self.placements:
            makers = [lambda p=p: self._placement_spec(p) for p in self.placements]
        else:
            makers = [lambda combo=combo: self._spec_from_slots(list(combo))
                      for combo in itertools.product(*(list(s.points()) for s in self.slots))]
        specs = []
        for make in makers:
            try:
                specs.append(make())
            except SpecError:
                if not skip_impossible:
                    raise
        seen: dict[str, ArchSpec] = {}
        for spec in specs:
            seen.setdefault(spec.arch_id, spec)
        points = list(seen.values())
        if not feasible_only or not self.constraints.active:
            return points
        feasible, reasons = [], []
        for spec in points:
            ok, reason = self.is_feasible(spec)
            if ok:
                feasible.append(spec)
            else:
                reasons.append(reason)
        if not feasible:
            names = sorted({r.split(":")[0] for r in reasons})
            raise SpecError(f"constraints.{names[0]}: every one of the {len(points)} points of "
                            f"space {self.name!r} violates the budget; e.g. {reasons[0]}")
        return feasible

    # --- internals ----------------------------------------------------------------------------
    def _spec_from_slots(self, assignments: Sequence[Mapping[str, Any]]) -> ArchSpec:
        stem: dict[str, Any] = {}
        blocks: dict[str, dict[str, Any]] = {}
        for slot, point in zip(self.slots, assignments, strict=True):
            for path in slot.paths:
                if path == "stem":
                    stem = dict(point)
                else:
                    blocks[path] = dict(point)
        try:
            return self._finish(self.base.make_spec(stem, blocks))
        except SpecError as err:
            # The message still starts with the block path; the point says which choices led there.
            chosen = ", ".join(f"{slot.name}.{name}={value}"
                               for slot, values in zip(self.slots, assignments, strict=True)
                               for name, value in values.items()
                               if value is not None and len(slot.options.get(name, ())) > 1)
            raise SpecError(f"{err} (impossible point: {chosen or 'the base network'})") from None

    def _placement_spec(self, placement: Placement) -> ArchSpec:
        try:
            if placement.preset is not None:
                from arch_space.presets import preset

                return self._finish(preset(placement.preset, num_classes=self.base.num_classes,
                                           clip_len=self.base.clip_len,
                                           crop_size=self.base.crop_size))
            stem: dict[str, Any] = {}
            blocks: dict[str, dict[str, Any]] = {}
            for target, fields in placement.kinds.items():
                for path in target_paths(target, self.base, f"presets.{placement.name}.{target}"):
                    if path == "stem":
                        stem.update(fields)
                    else:
                        blocks.setdefault(path, {}).update(fields)
            return self._finish(self.base.make_spec(stem, blocks))
        except SpecError as err:
            raise SpecError(f"{err} (preset {placement.name!r})") from None


# --- targets ----------------------------------------------------------------------------------
def target_paths(target: str, base: BaseNet, where: str) -> list[str]:
    """Block paths a choice target covers: ``stem``, ``stageN``, ``stageN.*``,
    ``stageN.blockM`` or ``*`` (every block)."""
    if target == "stem":
        return ["stem"]
    if target == "*":
        return base.block_paths()
    match = re.fullmatch(r"stage(\d+)(?:\.(\*|block(\d+)))?", str(target))
    if not match:
        raise SpecError(f"{where}: not a target; use stem, stageN, stageN.*, stageN.blockM or *")
    stage = int(match.group(1))
    if not 1 <= stage <= len(base.depths):
        raise SpecError(f"{where}: no such stage (the base has {len(base.depths)} stages)")
    depth = base.depths[stage - 1]
    if match.group(3) is not None:
        block = int(match.group(3))
        if not 1 <= block <= depth:
            raise SpecError(f"{where}: no such block (stage{stage} has {depth} blocks)")
        return [f"stage{stage}.block{block}"]
    return [f"stage{stage}.block{j + 1}" for j in range(depth)]
