"""A study's design built from its config: the cells of a grid, or the space of a search.

Torch-free: specs come from ``arch_space.presets`` / ``arch_space.space``; costs are measured
later by the driver. Every error is a ``StudyError`` whose message starts with the config key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arch_space import presets
from arch_space.kinds import UNIFORM_FAMILY  # kind -> family: a live view of the kinds table
from arch_space.spec import BLOCK_KINDS, KIND_ALIASES, ArchSpec, SpecError
from search.design.config import (
    CLIP_SAMPLINGS,
    DATA_SOURCES,
    DECODE_DEVICES,
    DECODERS,
    MATCH_MODES,
    SAMPLERS,
    SCHEDULERS,
    STUDY_DESIGNS,
    RunConfig,
)
from search.design.matching import MatchError, MatchPlan, match_arms, plan
from search.design.protocol import protocol_problem
from search.results.contrasts import check_declarations

# Above this many points a space is checked for feasibility by sampling, not enumeration.
FEASIBILITY_ENUMERATE_LIMIT = 5_000
FEASIBILITY_SAMPLES = 2_000
# P3D's A -> B -> C cycle over the blocks (Qiu et al. 2017) and its rotations: which kind sits
# where changes, the mix does not (study.kinds of a conv_kinds study; family P3D_CYCLE_FAMILY).
P3D_CYCLES = {"p3d_mix": presets.P3D_CYCLE,
              "p3d_mix_bca": ("p3d_b", "p3d_c", "2plus1d"),
              "p3d_mix_cab": ("p3d_c", "2plus1d", "p3d_b")}
P3D_CYCLE_FAMILY = "P3D cycle"


class StudyError(ValueError):
    """The study config is invalid; the message starts with the offending key."""


@dataclass(frozen=True)
class Cell:
    """One network of a grid study (trained once per seed)."""

    label: str  # short name shown in tables ("mc3", "rmc4", "3d_t5_T16")
    family: str  # group compared in summaries ("bottom-heavy", "top-heavy", "2D", ...)
    spec: ArchSpec  # the network
    data: Mapping[str, Any] = field(default_factory=dict)  # per-cell data overrides (clip_len)
    pretrained: bool = False  # inflation study: start from a 2D net trained on frames
    # matched compute: {match, match_target, match_scale, match_deviation}; stored with trials
    matching: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a study: the label (labels are unique by construction)."""
        return self.label


@dataclass(frozen=True)
class Design:
    """What a study runs: grid cells x seeds, or a search space with a trial budget."""

    cells: tuple[Cell, ...] = ()  # grid designs
    seeds: tuple[int, ...] = (0,)  # every cell (or every sampled arch) once per seed
    space: Any = None  # arch_space.space.SearchSpace for search designs
    num_samples: int = 0  # search designs: trials to propose
    matching: MatchPlan | None = None  # grid designs with study.match: the common target

    @property
    def is_grid(self) -> bool:
        """True for enumerated designs."""
        return self.space is None

    @property
    def total(self) -> int:
        """Trials the whole design asks for."""
        return len(self.cells) * len(self.seeds) if self.is_grid else self.num_samples


def build_design(cfg: RunConfig) -> Design:
    """Validate the study config and build its design (cells or space)."""
    study = cfg.study
    _check_choice("study.design", study.design, STUDY_DESIGNS)
    _check_choice("study.sampler", study.sampler, SAMPLERS)
    _check_choice("study.scheduler.kind", study.scheduler.kind, SCHEDULERS)
    _check_choice("study.match", study.match, MATCH_MODES)
    if study.match == "none" and study.match_target is not None:
        raise StudyError(f"study.match_target: {study.match_target!r} is set but study.match is "
                         f"none; set study.match=macs or params")
    if study.design == "space" and study.match != "none":
        raise StudyError("study.match: a search design matches cost with its space's iso_macs "
                         "block (arch_space.space); set study.match=none")
    if not study.seeds:
        raise StudyError("study.seeds: needs at least one seed")
    if len(set(study.seeds)) != len(study.seeds):
        raise StudyError(f"study.seeds: duplicate seeds in {list(study.seeds)}")
    if (cfg.train.epochs or 0) < 1:
        raise StudyError(f"train.epochs: must be >= 1, got {cfg.train.epochs}")
    if (cfg.train.batch_size or 0) < 1:
        raise StudyError(f"train.batch_size: must be >= 1, got {cfg.train.batch_size}")
    problem = protocol_problem(cfg)
    if problem:
        raise StudyError(problem)
    from search.design.tracking import TrackingError, check_tracking

    try:
        check_tracking(cfg)
    except TrackingError as exc:
        raise StudyError(str(exc)) from None
    if cfg.hardware.latency_runs < 0:
        raise StudyError(f"hardware.latency_runs: must be >= 0 (0: no timing), got "
                         f"{cfg.hardware.latency_runs}")
    if cfg.hardware.cpus_per_trial <= 0:
        raise StudyError(f"hardware.cpus_per_trial: must be > 0, got {cfg.hardware.cpus_per_trial}")
    if study.scheduler.kind == "asha":
        if study.scheduler.band_ratio <= 1:
            raise StudyError("study.scheduler.band_ratio: must be > 1")
        if study.scheduler.reduction_factor < 2:
            raise StudyError("study.scheduler.reduction_factor: must be >= 2")
    _check_data(cfg)
    seeds = tuple(int(s) for s in study.seeds)
    if study.design == "space":
        if study.sampler == "grid":  # every feasible point x every seed (search.design.space_grid)
            from search.design.space_grid import space_cells

            try:
                return Design(cells=tuple(space_cells(build_space(cfg))), seeds=seeds)
            except SpecError as exc:
                raise StudyError(f"study.space.{exc}") from None
        if study.num_samples < 1:
            raise StudyError(f"study.num_samples: must be >= 1, got {study.num_samples}")
        check_declarations(study, (), StudyError)
        return Design(seeds=seeds, space=build_space(cfg), num_samples=study.num_samples)
    if study.sampler != "grid":
        raise StudyError(f"study.sampler: design {study.design!r} is an enumerated grid; "
                         f"use sampler=grid (or design=space to search)")
    builders = {"placement": _placement_cells, "conv_kinds": _kind_cells,
                "temporal_extent": _extent_cells, "inflation": _inflation_cells}
    try:
        cells = builders[study.design](cfg)
    except SpecError as exc:
        raise StudyError(f"study.{exc}") from None
    if not cells:
        hint = {"placement": "study.uniform=[3d]", "conv_kinds": "study.kinds=[2d,3d]",
                "temporal_extent": "study.t_kernels=[1,3]",
                "inflation": "study.kinds=[3d]"}[study.design]
        raise StudyError(f"study: design {study.design!r} lists no networks (set e.g. {hint})")
    _check_cell_data(cfg, cells)
    labels = [c.label for c in cells]
    for label in labels:
        if labels.count(label) > 1:
            raise StudyError(f"study: network {label!r} is listed twice")
    check_declarations(study, cells, StudyError)
    if study.match == "none":
        return Design(cells=tuple(cells), seeds=seeds)
    arms = [(c.label, c.spec) for c in cells]
    try:
        match = plan(study.match, study.match_target, study.match_multiple, arms)
        matched = match_arms(match, arms)
    except MatchError as exc:
        raise StudyError(str(exc)) from None
    cells = [dataclasses.replace(c, spec=m.spec, matching=m.info)
             for c, m in zip(cells, matched, strict=True)]
    return Design(cells=tuple(cells), seeds=seeds, matching=match)


# --- grid designs -----------------------------------------------------------------------------


def _net_kwargs(cfg: RunConfig, **data_overrides: Any) -> dict[str, Any]:
    net = cfg.study.net
    if len(net.widths) != len(net.depths) or not net.widths:
        raise StudyError(f"study.net.widths: {len(net.widths)} widths for {len(net.depths)} "
                         f"stages (study.net.depths)")
    return {"widths": tuple(net.widths), "depths": tuple(net.depths),
            "block_type": net.block_type, "t_kernel": net.t_kernel, "mid_rule": net.mid_rule,
            "temporal_downsample": net.temporal_downsample,
            "num_classes": cfg.data.num_classes,
            "clip_len": data_overrides.get("clip_len", cfg.data.clip_len),
            "crop_size": cfg.data.input_size}


def _kind(value: str, key: str) -> str:
    kind = KIND_ALIASES.get(value, value)
    if kind not in BLOCK_KINDS:
        raise StudyError(f"{key}: unknown conv kind {value!r}; choose one of "
                         f"{sorted(set(BLOCK_KINDS) | set(KIND_ALIASES))}")
    return kind


def _call(key: str, fn: Any, *args: Any, **kwargs: Any) -> ArchSpec:
    try:
        return fn(*args, **kwargs)
    except (SpecError, ValueError) as exc:
        raise StudyError(f"{key}: {exc}") from None


def _placement_cells(cfg: RunConfig) -> list[Cell]:
    study = cfg.study
    kw = _net_kwargs(cfg)
    n_stages = len(kw["widths"])
    temporal = _kind(study.temporal_kind, "study.temporal_kind")
    cells = []
    for value in study.uniform:
        kind = _kind(value, "study.uniform")
        label = {"2d": "f_r2d", "3d": "r3d", "2plus1d": "r2plus1d"}.get(kind, f"all_{kind}")
        cells.append(Cell(label, UNIFORM_FAMILY[kind],
                          _call("study.uniform", presets.uniform, kind, **kw)))
    for n in study.bottom_heavy:
        # 0 = a temporal stem only (MC2); n_stages would be the uniform network itself
        if not 0 <= n < n_stages:
            raise StudyError(f"study.bottom_heavy: {n} temporal stages; choose 0..{n_stages - 1} "
                             f"(the network has {n_stages})")
        label = f"mc{n + 2}" if n_stages == 4 and temporal == "3d" else f"bottom{n}_{temporal}"
        cells.append(Cell(label, "bottom-heavy",
                          _call("study.bottom_heavy", presets.bottom_heavy, n, temporal, **kw)))
    for n in study.top_heavy:
        # n_stages = every stage temporal above a 2D stem (rMC2)
        if not 1 <= n <= n_stages:
            raise StudyError(f"study.top_heavy: {n} temporal stages; choose 1..{n_stages} "
                             f"(the network has {n_stages})")
        label = f"rmc{6 - n}" if n_stages == 4 and temporal == "3d" else f"top{n}_{temporal}"
        cells.append(Cell(label, "top-heavy",
                          _call("study.top_heavy", presets.top_heavy, n, temporal, **kw)))
    return cells


def _kind_spec(value: str, key: str, kw: dict[str, Any]) -> tuple[str, ArchSpec]:
    """A uniform network of one kind; ``p3d_mix`` cycles P3D-A, B, C over the blocks (its
    rotations ``p3d_mix_bca`` and ``p3d_mix_cab`` start the cycle at B and at C)."""
    if value in P3D_CYCLES:
        return value, _call(key, presets.p3d_mix, P3D_CYCLES[value], **kw)
    kind = _kind(value, key)
    return value, _call(key, presets.uniform, kind, **kw)


def _kind_cells(cfg: RunConfig) -> list[Cell]:
    kw = _net_kwargs(cfg)
    cells = []
    for value in cfg.study.kinds:
        label, spec = _kind_spec(value, "study.kinds", kw)
        family = ("2d" if label == "2d" else P3D_CYCLE_FAMILY if label in P3D_CYCLES
                  else "p3d" if label.startswith("p3d") else label)
        cells.append(Cell(label, family, spec))
    return cells


def _extent_cells(cfg: RunConfig) -> list[Cell]:
    study = cfg.study
    kinds = list(study.kinds) or [study.temporal_kind]
    clip_lens = list(study.clip_lens) or [int(cfg.data.clip_len or 1)]
    if not study.t_kernels:
        raise StudyError("study.t_kernels: list the temporal extents to compare, e.g. [1,3,5,7]")
    if study.kernel_clip_len is None:  # the full grid: every extent at every clip length
        pairs = [(clip_len, t) for clip_len in clip_lens for t in study.t_kernels]
    else:  # a cross: clip lengths at net.t_kernel, extents at kernel_clip_len
        pairs = ([(clip_len, study.net.t_kernel) for clip_len in clip_lens]
                 + [(study.kernel_clip_len, t) for t in study.t_kernels])
    cells: list[Cell] = []
    for clip_len, t in pairs:
        if clip_len < 1:
            raise StudyError(f"study.clip_lens: must be >= 1, got {clip_len}")
        if t < 1 or t % 2 == 0:
            raise StudyError(f"study.t_kernels: temporal extents are odd and >= 1, got {t}")
        for value in kinds:
            kind = "2d" if t == 1 else _kind(value, "study.kinds")
            kw = _net_kwargs(cfg, clip_len=clip_len)
            kw["t_kernel"] = max(t, 1)
            spec = _call("study.t_kernels", presets.uniform, kind, **kw)
            label = f"{kind}_t{t}_T{clip_len}"
            if any(c.label == label for c in cells):
                continue  # t=1 is the same 2D network for every kind; the cross's centre
            cells.append(Cell(label, f"t{t}", spec, data={"clip_len": clip_len}))
    return cells


def _inflation_cells(cfg: RunConfig) -> list[Cell]:
    kw = _net_kwargs(cfg)
    cells = []
    for value in cfg.study.kinds or ["3d", "2plus1d"]:
        label, spec = _kind_spec(value, "study.kinds", kw)
        # The spec's inflate switches say which layers take 2D weights: all (inflated) or none
        # (scratch); so the two cells are two archs, each trained once per seed.
        inflated = spec.with_blocks(inflate=True).replace(
            stem=dataclasses.replace(spec.stem, inflate=True))
        scratch = spec.with_blocks(inflate=False).replace(
            stem=dataclasses.replace(spec.stem, inflate=False))
        if cfg.study.pretrain_shuffle:  # the compute control: 2D twin fit to shuffled labels
            cells.append(Cell(f"{label}_shuffled", "shuffled", inflated, pretrained=True))
        else:
            cells.append(Cell(f"{label}_inflated", "inflated", inflated, pretrained=True))
        cells.append(Cell(f"{label}_scratch", "scratch", scratch))
    return cells


# --- search designs ---------------------------------------------------------------------------


def build_space(cfg: RunConfig) -> Any:
    """The study's SearchSpace, sized to the data clip, its budget checked for feasibility."""
    from arch_space.space import SearchSpace, parse_count

    data = dict(cfg.study.space)
    if not data:
        raise StudyError("study.space: a free search needs a space (see arch_space.space)")
    base = dict(data.get("base") or {})
    base.update(num_classes=cfg.data.num_classes, clip_len=cfg.data.clip_len,
                crop_size=cfg.data.input_size)
    base.pop("clip", None)
    data["base"] = base
    if cfg.study.max_macs is not None:
        try:
            budget = parse_count(cfg.study.max_macs, "study.max_macs")
        except SpecError as exc:
            raise StudyError(str(exc)) from None
        data["constraints"] = {**dict(data.get("constraints") or {}), "max_macs": budget}
    try:
        space = SearchSpace.from_yaml(data)
    except SpecError as exc:
        raise StudyError(f"study.space.{exc}") from None
    _check_feasible(space)
    return space


def _check_feasible(space: Any) -> None:
    """Raise when no point of the space meets its budget (an impossible search space)."""
    if not space.constraints.active:
        return
    if space.size() <= FEASIBILITY_ENUMERATE_LIMIT:
        try:
            space.enumerate(feasible_only=True)
        except SpecError as exc:
            raise StudyError(f"study.space.{exc}") from None
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    reason = ""
    for _ in range(FEASIBILITY_SAMPLES):
        trial = study.ask()
        try:
            ok, reason = space.is_feasible(space.sample(trial))
        except SpecError as exc:
            raise StudyError(f"study.space.{exc}") from None
        if ok:
            return
    raise StudyError(f"study.space.constraints: none of {FEASIBILITY_SAMPLES} random points "
                     f"meets the budget; e.g. {reason}")


def mac_band(macs: int, ratio: float) -> int:
    """The MAC band of a network: networks within a factor ``ratio`` share a band."""
    return math.floor(math.log(max(macs, 1)) / math.log(ratio))


# --- helpers ----------------------------------------------------------------------------------


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise StudyError(f"{key}: unknown value {value!r} (choose from {', '.join(allowed)})")


def _check_data(cfg: RunConfig) -> None:
    _check_choice("data.source", cfg.data.source, DATA_SOURCES)
    if cfg.data.is_video:
        _check_video(cfg)
        return
    from search.design.tasks import SyntheticConfig

    try:
        synthetic_config(cfg.data.__dict__, SyntheticConfig).validate()
    except ValueError as exc:
        raise StudyError(f"data.{exc}") from None


def _check_video(cfg: RunConfig) -> None:
    """Real video: check the settings and the paths, list the videos (nothing is decoded), and
    take ``num_classes`` from the dataset when it is not given (the networks are sized to it)."""
    data = cfg.data
    for key in ("clip_len", "frame_stride", "crop_size", "split"):
        if (getattr(data, key) or 0) < 1:
            raise StudyError(f"data.{key}: must be >= 1, got {getattr(data, key)}")
    if data.resize < 0:
        raise StudyError(f"data.resize: must be >= 0 (0 keeps the decoded size), got "
                         f"{data.resize}")
    if not 0 <= data.val_fraction < 1:
        raise StudyError(f"data.val_fraction: must be in [0, 1), got {data.val_fraction}")
    if data.num_workers is not None and data.num_workers < 0:
        raise StudyError(f"data.num_workers: must be >= 0, got {data.num_workers}")
    for key in ("train_sampling", "val_sampling"):
        _check_choice(f"data.{key}", getattr(data, key), CLIP_SAMPLINGS)
    _check_choice("data.decoder", data.decoder, DECODERS)
    _check_choice("data.decode_device", data.decode_device, DECODE_DEVICES)
    if data.cache and data.root and Path(data.cache_dir).expanduser().absolute().is_relative_to(
            Path(data.root).expanduser().absolute()):
        raise StudyError(f"data.cache_dir: {data.cache_dir} is inside data.root; its folders "
                         f"would be listed as videos or classes (put the cache elsewhere)")
    if data.decode_device == "cuda" and data.decoder == "pyav":
        raise StudyError("data.decode_device: 'cuda' decodes with torchcodec; data.decoder=pyav "
                         "cannot (set data.decoder=auto or torchcodec)")
    for key in ("n_train", "n_val"):
        if getattr(data, key) is not None and getattr(data, key) < 1:
            raise StudyError(f"data.{key}: must be >= 1 (null: every video), got "
                             f"{getattr(data, key)}")
    from search.design.video_lists import SOURCE_PATHS, DataError, video_lists

    # Absolute paths: trials read them in Ray workers, whose working directory is not ours
    # (on a cluster, the shipped checkout); the stored config names the files actually read.
    for key, _, _ in SOURCE_PATHS[data.source]:
        value = getattr(data, key)
        if value not in (None, "", "???"):
            setattr(data, key, str(Path(value).expanduser().absolute()))
    try:
        classes = video_lists(dataclasses.asdict(data)).classes
    except DataError as exc:
        raise StudyError(str(exc)) from None
    if data.num_classes is None:
        data.num_classes = len(classes)
    elif data.num_classes != len(classes):
        raise StudyError(f"data.num_classes: {data.num_classes} given, but the dataset has "
                         f"{len(classes)} classes (leave it null, or list data.classes)")


def _check_cell_data(cfg: RunConfig, cells: list[Cell]) -> None:
    """Cells that change the data (clip length) must still make valid clips."""
    if cfg.data.is_video:
        return  # clip lengths were checked (>= 1) with the cells; short videos repeat frames
    from search.design.tasks import SyntheticConfig

    for overrides in {tuple(sorted(c.data.items())) for c in cells if c.data}:
        try:
            synthetic_config(cfg.data.__dict__, SyntheticConfig, **dict(overrides)).validate()
        except ValueError as exc:
            keys = ", ".join(f"{k}={v}" for k, v in overrides)
            raise StudyError(f"study.clip_lens: data with {keys} is invalid: {exc}") from None


def synthetic_config(data: Mapping[str, Any], cls: Any = None, **overrides: Any) -> Any:
    """The ``SyntheticConfig`` for a data config mapping (unknown keys such as data_seed dropped)."""
    if cls is None:
        from search.design.tasks import SyntheticConfig as cls
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in {**dict(data), **overrides}.items() if k in names}
    return cls(**values)
