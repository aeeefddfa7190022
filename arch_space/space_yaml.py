"""Search spaces declared in YAML: parsing and checking a file into a ``SearchSpace``.

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
checked after scaling. Blocks and fields no decision covers keep the base's value (a preset
base keeps its own placement). Instead of choices, ``presets: [r3d_18, mc3_18, {name: top, kinds: {stem: 2d,
stage4: 3d}}]`` makes a space of fixed points (one ``preset`` parameter). Shipped examples live
in ``arch_space/spaces/`` and load by bare name: ``SearchSpace.from_yaml("per_stage_kinds")``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arch_space.kinds import BLOCK_KINDS, STEM_KINDS, TEMPORAL_KINDS, TEMPORAL_STEM_KINDS
from arch_space.space import (
    BLOCK_FIELDS,
    STEM_FIELDS,
    BaseNet,
    Constraints,
    IsoMacs,
    Placement,
    SearchSpace,
    Slot,
    target_paths,
)
from arch_space.spec import (
    BLOCK_TYPES,
    MID_RULES,
    T_PAD_MODES,
    BlockSpec,
    SpecError,
    StemSpec,
    normalise_kind,
)
from arch_space.units import parse_clip, parse_count

# Where the shipped spaces live; a bare name loads ``<name>.yaml`` from here.
SPACES_DIR = Path(__file__).parent / "spaces"


def load_space(source: str | Path | Mapping[str, Any]) -> SearchSpace:
    """A space from a YAML file, a bare shipped name, a mapping or an OmegaConf ``DictConfig``.

    Raises:
        SpecError: whose message starts with the offending key or block path.
    """
    if isinstance(source, str | Path) and not isinstance(source, Mapping):
        path = Path(source)
        if not path.exists() and path.suffix == "" and "/" not in str(source):
            path = SPACES_DIR / f"{source}.yaml"
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
    return parse_space(dict(data), default_name)


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


# --- parsing ----------------------------------------------------------------------------------
_TOP_KEYS = {"name", "description", "base", "choices", "ties", "presets", "constraints",
             "iso_macs"}
_BASE_KEYS = {"preset", "widths", "depths", "stem", "block", "block_type", "mid_rule",
              "t_pad_mode", "num_classes", "clip", "clip_len", "crop_size", "t_strides",
              "s_strides"}


def parse_space(data: dict[str, Any], default_name: str) -> SearchSpace:
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
        target_paths(target, base, where)  # checks the target exists
        _check_fields(fields, where, stem=target == "stem", fixed=True)
        parsed[str(target)] = fields
    placement = Placement(name=name, kinds=parsed)
    return placement


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
        paths = target_paths(target, base, where)
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
            members.extend(target_paths(str(member), base, f"ties.{tie_name}.members.{member}"))
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
