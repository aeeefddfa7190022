"""Search spaces declared in YAML: which conv each block may use, under which budget.

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

A YAML file (every key but ``base`` is optional)::

    name: per_stage_kinds
    base:
      preset: r3d_18            # start from a registered preset; or spell out widths, depths,
      clip: 16x112x112          #   stem, block, block_type, mid_rule, t_pad_mode, num_classes
      t_strides: by_kind        # a stage's first block halves time only if its kind is temporal
    choices:
      stem: {kind: [3d, 2d]}
      stage1: {kind: [2d, 3d, 2plus1d]}          # one choice for every block of stage1
      stage2.*: {kind: [2d, 3d]}                  # an independent choice per block
      stage3.block1: {kind: [3d, 2plus1d], t_kernel: [3, 5]}
    ties:
      top: {members: [stage4], kind: [2d, 3d]}    # one decision shared by the members
    constraints:
      max_macs: 45G             # conv + linear MACs (see cost.py), at the clip below
      max_params: 40M
      clip: 16x112x112
    iso_macs: {target: 25G, tol: 0.03, multiple: 4}   # optional: scale every point's widths

Choice targets are ``stem``, ``stageN`` (tied), ``stageN.*`` (per block), ``stageN.blockM`` and
``*`` (every block, per block). A more specific target wins (a block or a tie over a stage, a
stage over ``*``); two targets of the same rank on one block are an error naming the block.
``iso_macs`` scales the widths of every point by one common factor to a MAC target
(``scaling.scale_to_macs``), so placements compare at equal compute as in S3D; constraints are
checked after scaling. Blocks and fields no decision covers keep the base's value (a preset base keeps its own
placement). Instead of choices, ``presets: [r3d_18, mc3_18, {name: top, kinds: {stem: 2d,
stage4: 3d}}]`` makes a space of fixed points (one ``preset`` parameter). Shipped examples live
in ``arch_space/spaces/`` and load by bare name: ``SearchSpace.from_yaml("per_stage_kinds")``.
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

from arch_space.spec import (
    BLOCK_KINDS,
    BLOCK_TYPES,
    MID_RULES,
    STEM_KINDS,
    T_PAD_MODES,
    TEMPORAL_KINDS,
    ArchSpec,
    BlockSpec,
    SpecError,
    StageSpec,
    StemSpec,
    normalise_kind,
)

# Block fields a decision may choose, in the order they are suggested.
BLOCK_FIELDS: tuple[str, ...] = ("kind", "t_kernel", "inflate")
# Stem fields a decision may choose.
STEM_FIELDS: tuple[str, ...] = ("kind", "t_kernel")
# Stem kinds whose t_kernel is a free temporal extent ("r2d" spans the clip, "2d" has none).
TEMPORAL_STEM_KINDS: frozenset[str] = frozenset({"3d", "2plus1d"})
# Above this many points, enumerate() refuses (sample from the space instead).
MAX_ENUMERATE = 200_000

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


class TrialLike(Protocol):
    """The part of ``optuna.trial.BaseTrial`` that sampling uses."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


# --- small parsers ----------------------------------------------------------------------------
def parse_clip(value: Any, where: str = "clip") -> tuple[int, int, int]:
    """Parse ``"16x112x112"``, ``[16, 112, 112]`` or ``(16, 112)`` into ``(T, H, W)``.

    Raises:
        SpecError: naming ``where`` when the value is not 2 or 3 positive integers.
    """
    if isinstance(value, str):
        parts: list[Any] = [p.strip() for p in value.lower().split("x")]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise SpecError(f"{where}: expected 'TxHxW' or a list [T, H, W], got {value!r}")
    try:
        numbers = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise SpecError(f"{where}: expected 'TxHxW' with integers, got {value!r}") from None
    if len(numbers) == 2:
        numbers.append(numbers[1])
    if len(numbers) != 3 or min(numbers) < 1:
        raise SpecError(f"{where}: expected three positive integers T x H x W, got {value!r}")
    return numbers[0], numbers[1], numbers[2]


def parse_count(value: Any, where: str) -> int:
    """Parse ``45e9``, ``"45G"``, ``"33.4M"`` or ``12000`` into an integer count."""
    if isinstance(value, bool):
        raise SpecError(f"{where}: expected a number such as 45e9 or '45G', got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgGtT]?)\s*", str(value))
        if not match:
            raise SpecError(f"{where}: expected a number such as 45e9 or '45G', got {value!r}")
        try:
            number = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
        except ValueError:
            raise SpecError(f"{where}: not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SpecError(f"{where}: must be a positive number, got {value!r}")
    return round(number)


def _si(n: float) -> str:
    """``40696553472`` -> ``"40.70G"``."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _to_plain(data: Any) -> Any:
    """OmegaConf containers → plain Python (resolving interpolations)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return data
    if isinstance(data, DictConfig | ListConfig):
        return OmegaConf.to_container(data, resolve=True)
    return data


def _options(value: Any, where: str) -> tuple[Any, ...]:
    """A choice list: a scalar is a one-element list; duplicates are removed, order kept."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise SpecError(f"{where}: empty choice list")
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return tuple(out)


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
                return False, (f"max_macs: {_si(macs)} MACs at {self._clip_text(spec)} exceed "
                               f"{_si(self.max_macs)}")
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
        if stem_kind not in TEMPORAL_STEM_KINDS:
            stem_t = 1  # "2d" has no extent; "r2d" spans the clip (ArchSpec sets it)
        elif stem.get("t_kernel"):
            stem_t = stem["t_kernel"]
        elif stem_kind == self.stem.kind:
            stem_t = self.stem.t_kernel
        else:
            stem_t = self.stem_t_kernel
        stem_spec = dataclasses.replace(self.stem, kind=stem_kind, t_kernel=stem_t)
        # frames after the stem: R2D's collapses time; the others keep it (or stride it)
        frames = 1 if stem_kind == "r2d" else (self.clip_len - 1) // stem_spec.t_stride + 1
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
                else:  # by kind; a single frame left cannot be halved (short clips)
                    t_stride = s_stride if kind in TEMPORAL_KINDS and frames > 1 else 1
                frames = (frames - 1) // t_stride + 1
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

        A bare name (``"per_stage_kinds"``) loads a space shipped in ``arch_space/spaces``.

        Raises:
            SpecError: whose message starts with the offending key or block path.
        """
        if isinstance(source, str | Path) and not isinstance(source, Mapping):
            path = Path(source)
            if not path.exists() and path.suffix == "" and "/" not in str(source):
                path = Path(__file__).parent / "spaces" / f"{source}.yaml"
            if not path.exists():
                raise SpecError(f"space: no such file {str(source)!r}")
            from omegaconf import OmegaConf

            data = _to_plain(OmegaConf.load(path))
            default_name = path.stem
        else:
            data = _to_plain(source)
            default_name = "space"
        if not isinstance(data, Mapping):
            raise SpecError(f"space: expected a mapping at the top level, got {type(data).__name__}")
        return _parse_space(dict(data), default_name)

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
                for path in _target_paths(target, self.base, f"presets.{placement.name}.{target}"):
                    if path == "stem":
                        stem.update(fields)
                    else:
                        blocks.setdefault(path, {}).update(fields)
            return self._finish(self.base.make_spec(stem, blocks))
        except SpecError as err:
            raise SpecError(f"{err} (preset {placement.name!r})") from None


# --- parsing ----------------------------------------------------------------------------------
_TOP_KEYS = {"name", "description", "base", "choices", "ties", "presets", "constraints",
             "iso_macs"}
_BASE_KEYS = {"preset", "widths", "depths", "stem", "block", "block_type", "mid_rule",
              "t_pad_mode", "num_classes", "clip", "clip_len", "crop_size", "t_strides",
              "s_strides"}


def _parse_space(data: dict[str, Any], default_name: str) -> SearchSpace:
    for key in data:
        if key not in _TOP_KEYS:
            raise SpecError(f"{key}: unknown key; a space has {sorted(_TOP_KEYS)}")
    base = _parse_base(dict(data.get("base") or {}))
    constraints = _parse_constraints(data.get("constraints") or {})
    placements = tuple(_parse_placement(item, i, base)
                       for i, item in enumerate(data.get("presets") or []))
    if placements and (data.get("choices") or data.get("ties")):
        raise SpecError("presets: a space is either a list of presets or a set of choices, "
                        "not both")
    names = [p.name for p in placements]
    for name in names:
        if names.count(name) > 1:
            raise SpecError(f"presets.{name}: listed twice")
    slots = () if placements else _parse_slots(dict(data.get("choices") or {}),
                                               dict(data.get("ties") or {}), base)
    iso_macs = _parse_iso_macs(data["iso_macs"]) if data.get("iso_macs") is not None else None
    space = SearchSpace(name=str(data.get("name") or default_name), base=base, slots=slots,
                        placements=placements, constraints=constraints, iso_macs=iso_macs)
    return space


def _parse_base(data: dict[str, Any]) -> BaseNet:
    for key in data:
        if key not in _BASE_KEYS:
            raise SpecError(f"base.{key}: unknown key; base has {sorted(_BASE_KEYS)}")
    clip_len, crop_size = 16, 112
    if "clip" in data:
        t, h, w = parse_clip(data["clip"], "base.clip")
        if h != w:
            raise SpecError(f"base.clip: crops are square, got {h}x{w}")
        clip_len, crop_size = t, h
    clip_len = int(data.get("clip_len", clip_len))
    crop_size = int(data.get("crop_size", crop_size))
    num_classes = int(data.get("num_classes", 400))

    # Start from a registered preset or from torchvision's ResNet-18 geometry.
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    stem = StemSpec()
    ref_blocks: dict[str, BlockSpec] = {}
    block_type, mid_rule, t_pad_mode = "basic", "torchvision", "zeros"
    s_strides: tuple[int, ...] | None = None
    if "preset" in data:
        from arch_space.presets import list_presets, preset

        name = data["preset"]
        if name not in list_presets():
            raise SpecError(f"base.preset: unknown preset {name!r}; choose one of "
                            f"{sorted(list_presets())}")
        ref = preset(name, num_classes=num_classes, clip_len=clip_len, crop_size=crop_size)
        widths = tuple(s.width for s in ref.stages)
        depths = tuple(len(s.blocks) for s in ref.stages)
        stem = ref.stem
        ref_blocks = dict(ref.block_paths())
        block_type, mid_rule, t_pad_mode = ref.block_type, ref.mid_rule, ref.t_pad_mode
        s_strides = tuple(s.blocks[0].s_stride for s in ref.stages)
    widths = tuple(data.get("widths", widths))
    depths = tuple(data.get("depths", depths))
    if len(widths) != len(depths):
        raise SpecError(f"base.widths: {len(widths)} widths for {len(depths)} stages (depths)")
    n = len(depths)
    if s_strides is None or len(s_strides) != n:
        s_strides = (1,) + (2,) * (n - 1)
    s_strides = tuple(data.get("s_strides", s_strides))
    t_strides = data.get("t_strides", "by_kind")
    t_strides = None if t_strides in (None, "by_kind") else tuple(t_strides)
    for key, values in (("s_strides", s_strides), ("t_strides", t_strides)):
        if values is not None and len(values) != n:
            raise SpecError(f"base.{key}: {len(values)} values for {n} stages")

    stem_data = dict(data.get("stem") or {})
    stem_names = [f.name for f in dataclasses.fields(StemSpec)]
    for key in stem_data:
        if key not in stem_names:
            raise SpecError(f"base.stem.{key}: unknown field; a stem has {stem_names}")
    if "kind" in stem_data and "t_kernel" not in stem_data:
        stem_data["t_kernel"] = 3 if stem_data["kind"] in TEMPORAL_STEM_KINDS else 1
    stem = dataclasses.replace(stem, **stem_data)
    stem_t_kernel = stem.t_kernel if stem.kind in TEMPORAL_STEM_KINDS else 3

    # Per-path defaults: the preset's blocks (when its depths are kept), else 3D blocks; the
    # base's `block` fields then apply to every block.
    block_data = dict(data.get("block") or {})
    for key in block_data:
        if key not in BLOCK_FIELDS:
            raise SpecError(f"base.block.{key}: unknown field; a block default has "
                            f"{list(BLOCK_FIELDS)}")
    _check_fields(block_data, "base.block", stem=False, fixed=True)
    temporal_ts = [b.t_kernel for b in ref_blocks.values() if b.kind in TEMPORAL_KINDS]
    t_kernel = int(block_data.get("t_kernel", temporal_ts[0] if temporal_ts else 3))
    paths = [f"stage{i + 1}.block{j + 1}" for i, d in enumerate(depths) for j in range(d)]
    blocks = {}
    for path in paths:
        default = ref_blocks.get(path, BlockSpec(kind="3d", t_kernel=t_kernel))
        fields: dict[str, Any] = {"kind": default.kind, "t_kernel": default.t_kernel,
                                  "inflate": default.inflate}
        fields.update(block_data)
        if normalise_kind(fields["kind"]) in TEMPORAL_KINDS and fields["t_kernel"] == 1:
            fields["t_kernel"] = t_kernel  # a 2D default made temporal gets a real extent
        blocks[path] = BlockSpec(**fields)

    block_type = data.get("block_type", block_type)
    mid_rule = data.get("mid_rule", mid_rule)
    t_pad_mode = data.get("t_pad_mode", t_pad_mode)
    for key, value, allowed in (("block_type", block_type, BLOCK_TYPES),
                                ("mid_rule", mid_rule, MID_RULES),
                                ("t_pad_mode", t_pad_mode, T_PAD_MODES)):
        if value not in allowed:
            raise SpecError(f"base.{key}: {value!r} is not one of {list(allowed)}")
    base = BaseNet(widths=widths, depths=depths, stem=stem, blocks=blocks, t_kernel=t_kernel,
                   stem_t_kernel=stem_t_kernel, t_strides=t_strides, s_strides=s_strides,
                   block_type=block_type, mid_rule=mid_rule, t_pad_mode=t_pad_mode,
                   num_classes=num_classes, clip_len=clip_len, crop_size=crop_size)
    # Validate the base (SpecError names the field) with 2D blocks, which never stride time:
    # whether a temporal default fits the clip is a question for each point.
    flat = {p: dataclasses.replace(b, kind="2d") for p, b in blocks.items()}
    dataclasses.replace(base, blocks=flat).make_spec({}, {})
    return base


def _parse_iso_macs(data: Any) -> IsoMacs:
    if not isinstance(data, Mapping):
        data = {"target": data}  # `iso_macs: 20G` is short for `iso_macs: {target: 20G}`
    allowed = {"target", "clip", "tol", "multiple"}
    for key in data:
        if key not in allowed:
            raise SpecError(f"iso_macs.{key}: unknown key; iso_macs has {sorted(allowed)}")
    if data.get("target") is None:
        raise SpecError("iso_macs.target: missing (the MACs every point is scaled to)")
    clip = parse_clip(data["clip"], "iso_macs.clip") if data.get("clip") is not None else None
    tol, multiple = data.get("tol", 0.02), data.get("multiple", 8)
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < 1:
        raise SpecError(f"iso_macs.tol: must be a fraction in (0, 1), got {tol!r}")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise SpecError(f"iso_macs.multiple: must be a positive integer, got {multiple!r}")
    return IsoMacs(target=parse_count(data["target"], "iso_macs.target"), clip=clip,
                   tol=float(tol), multiple=multiple)


def _parse_constraints(data: Any) -> Constraints:
    if not isinstance(data, Mapping):
        raise SpecError(f"constraints: expected a mapping, got {data!r}")
    allowed = {"max_macs", "max_params", "clip"}
    for key in data:
        if key not in allowed:
            raise SpecError(f"constraints.{key}: unknown key; constraints have {sorted(allowed)}")
    clip = parse_clip(data["clip"], "constraints.clip") if data.get("clip") is not None else None
    if clip is not None and clip[1] != clip[2]:
        raise SpecError(f"constraints.clip: crops are square, got {clip[1]}x{clip[2]}")
    max_macs = (parse_count(data["max_macs"], "constraints.max_macs")
                if data.get("max_macs") is not None else None)
    max_params = (parse_count(data["max_params"], "constraints.max_params")
                  if data.get("max_params") is not None else None)
    return Constraints(max_macs=max_macs, max_params=max_params, clip=clip)


def _parse_placement(item: Any, index: int, base: BaseNet) -> Placement:
    if isinstance(item, str):
        from arch_space.presets import list_presets

        if item not in list_presets():
            raise SpecError(f"presets[{index}]: unknown preset {item!r}; choose one of "
                            f"{sorted(list_presets())}")
        return Placement(name=item, preset=item)
    if not isinstance(item, Mapping) or "name" not in item:
        raise SpecError(f"presets[{index}]: expected a preset name or a mapping with 'name' and "
                        f"'kinds', got {item!r}")
    name = str(item["name"])
    kinds = dict(item.get("kinds") or {})
    parsed: dict[str, dict[str, Any]] = {}
    for target, value in kinds.items():
        where = f"presets.{name}.{target}"
        fields = dict(value) if isinstance(value, Mapping) else {"kind": value}
        _target_paths(target, base, where)  # checks the target exists
        _check_fields(fields, where, stem=target == "stem", fixed=True)
        parsed[str(target)] = fields
    placement = Placement(name=name, kinds=parsed)
    return placement


def _target_paths(target: str, base: BaseNet, where: str) -> list[str]:
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


def _check_fields(fields: Mapping[str, Any], where: str, *, stem: bool, fixed: bool) -> None:
    """Check every option of every field; messages name ``where`` (a block path or target)."""
    allowed = STEM_FIELDS if stem else BLOCK_FIELDS
    for name, value in fields.items():
        if name not in allowed:
            raise SpecError(f"{where}.{name}: unknown field; choose among {list(allowed)}")
        options = [value] if fixed else list(value)
        for option in options:
            if name == "kind":
                kinds = STEM_KINDS if stem else BLOCK_KINDS
                if normalise_kind(str(option)) not in kinds:
                    raise SpecError(f"{where}.kind: unknown {'stem ' if stem else ''}kind "
                                    f"{option!r}; choose one of {list(kinds)}")
            elif name == "t_kernel":
                if isinstance(option, bool) or not isinstance(option, int) or option < 1 \
                        or option % 2 == 0:
                    raise SpecError(f"{where}.t_kernel: temporal extent must be an odd integer "
                                    f">= 1, got {option!r}")
            elif name == "inflate" and not isinstance(option, bool):
                raise SpecError(f"{where}.inflate: must be true or false, got {option!r}")


def _parse_slots(choices: dict[str, Any], ties: dict[str, Any], base: BaseNet) -> tuple[Slot, ...]:
    # Precedence: an explicit block, a tie or the stem > a stage (tied) or stage.* > "*";
    # two targets of equal rank deciding one block conflict.
    rank = {"block": 3, "tie": 3, "stem": 3, "stage": 2, "stage*": 2, "all": 1}
    owner: dict[str, tuple[str, int]] = {}  # path -> (the target deciding it, its rank)

    def options_of(fields: Mapping[str, Any], where: str, stem: bool) -> dict[str, tuple]:
        if not isinstance(fields, Mapping):
            raise SpecError(f"{where}: expected a mapping of field -> choice list, got {fields!r}")
        opts = {name: _options(value, f"{where}.{name}") for name, value in fields.items()}
        _check_fields(opts, where, stem=stem, fixed=False)
        if "kind" in opts:
            opts["kind"] = _options([normalise_kind(k) for k in opts["kind"]], f"{where}.kind")
        return opts

    parsed: list[tuple[str, list[str], dict[str, tuple], str]] = []
    for target, fields in choices.items():
        target = str(target)
        where = f"choices.{target}" if target != "stem" else "stem"
        paths = _target_paths(target, base, where)
        opts = options_of(fields, target, stem=target == "stem")
        if target == "stem":
            parsed.append(("stem", paths, opts, "stem"))
        elif target == "*":
            parsed.extend((p, [p], opts, "all") for p in paths)
        elif target.endswith(".*"):
            parsed.extend((p, [p], opts, "stage*") for p in paths)
        elif "." in target:
            parsed.append((target, paths, opts, "block"))
        else:
            parsed.append((target, paths, opts, "stage"))
    for tie_name, tie in ties.items():
        tie_name = str(tie_name)
        if not isinstance(tie, Mapping) or not tie.get("members"):
            raise SpecError(f"ties.{tie_name}: needs 'members' (stages or blocks) and choices")
        if re.fullmatch(r"stem|stage\d+(\.block\d+)?", tie_name):
            raise SpecError(f"ties.{tie_name}: a tie's name must not look like a spec path")
        fields = {k: v for k, v in tie.items() if k != "members"}
        members: list[str] = []
        for member in tie["members"]:
            if member == "stem":
                raise SpecError(f"ties.{tie_name}: the stem cannot be tied to blocks")
            members.extend(_target_paths(str(member), base, f"ties.{tie_name}.members.{member}"))
        parsed.append((tie_name, members, options_of(fields, tie_name, stem=False), "tie"))

    slots = []
    for name, paths, opts, level in sorted(parsed, key=lambda item: -rank[item[3]]):
        kept = []
        for path in paths:
            if path in owner:
                other, other_rank = owner[path]
                if other_rank == rank[level] and other != name:
                    raise SpecError(f"{path}: decided by both {other!r} and {name!r}")
                continue
            owner[path] = (name, rank[level])
            kept.append(path)
        if kept:
            slots.append(_make_slot(name, tuple(kept), opts, base))
    order = {p: i for i, p in enumerate(["stem", *base.block_paths()])}
    return tuple(sorted(slots, key=lambda s: order[s.paths[0]]))


def _make_slot(name: str, paths: tuple[str, ...], opts: dict[str, tuple], base: BaseNet) -> Slot:
    is_stem = paths == ("stem",)
    fields = STEM_FIELDS if is_stem else BLOCK_FIELDS
    options = {f: opts.get(f, (None,)) for f in fields}  # None: keep the base's value
    defaults = (base.stem.kind,) if is_stem else tuple(base.blocks[p].kind for p in paths)
    slot = Slot(name=name, paths=paths, options=options, default_kinds=tuple(dict.fromkeys(defaults)))
    if "t_kernel" in opts and len(opts["t_kernel"]) > 1 \
            and not any(slot.temporal(k) for k in options["kind"]):
        kinds = sorted({k or d for k in options["kind"] for d in defaults})
        raise SpecError(f"{name}.t_kernel: choices given, but the kind is always {kinds}, which "
                        "has no temporal extent")
    return slot
