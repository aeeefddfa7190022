"""Typed (structured) configs of ``python -m search.run``: the schema Hydra checks overrides against.

The YAML files in ``search/conf`` fill these dataclasses; ``search.run`` turns the composed config
into a ``RunConfig`` object, and everything below it takes plain arguments. Union types are not
supported by OmegaConf, so a few fields are strings parsed at the edge (``"45M"`` MAC budgets,
``"auto"``/``"true"``/``"false"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from search.results.metrics import VAL_ACC1

STUDY_DESIGNS: tuple[str, ...] = ("placement", "conv_kinds", "temporal_extent", "inflation",
                                  "space")
SAMPLERS: tuple[str, ...] = ("grid", "tpe", "nsga2", "random")
SCHEDULERS: tuple[str, ...] = ("none", "asha")
# Matched compute of a grid study's arms: the cost every arm's widths are scaled to meet.
MATCH_MODES: tuple[str, ...] = ("none", "macs", "params")


@dataclass
class NetConfig:
    """The tiny backbone every network of a study shares (what varies is the conv placement)."""

    widths: list[int] = field(default_factory=lambda: [8, 16, 32, 64])  # planes per stage
    depths: list[int] = field(default_factory=lambda: [1, 1, 1, 1])  # blocks per stage
    block_type: str = "basic"  # "basic" or "bottleneck"
    t_kernel: int = 3  # temporal extent of temporal blocks
    mid_rule: str = "torchvision"  # (2+1)D intermediate width rule
    temporal_downsample: bool = True  # temporal stages halve time at their first block (paper)


@dataclass
class SchedulerConfig:
    """Early stopping: ASHA on val/acc1, run separately inside bands of equal MACs."""

    kind: str = "none"  # "none" (every trial runs all epochs) or "asha"
    grace_epochs: int = 2  # epochs every trial gets before it may be stopped
    reduction_factor: int = 3  # ASHA's eta: keep the top 1/eta at each rung
    band_ratio: float = 2.0  # a MAC band spans this factor (trials compete with similar cost)


@dataclass
class StudyConfig:
    """What a study compares: its design, the networks, the seeds, the sampler."""

    name: str = MISSING  # study name in the database; rerunning the same name resumes it
    design: str = "placement"  # one of STUDY_DESIGNS
    description: str = ""  # one line for the summary
    sampler: str = "grid"  # "grid" (every cell x every seed), "tpe", "nsga2" or "random"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # every cell runs once per seed
    net: NetConfig = field(default_factory=NetConfig)
    # placement: the MCx / rMCx family plus uniform networks
    temporal_kind: str = "3d"  # the temporal kind bottom/top-heavy placements use
    uniform: list[str] = field(default_factory=list)  # kinds used in every block ("2d", "3d", ...)
    bottom_heavy: list[int] = field(default_factory=list)  # n temporal bottom stages (MC{n+2})
    top_heavy: list[int] = field(default_factory=list)  # n temporal top stages (rMC{6-n})
    # conv_kinds / inflation: uniform networks of these kinds ("p3d_mix" cycles P3D-A, B, C)
    kinds: list[str] = field(default_factory=list)
    # temporal_extent: every t_kernel x clip_len (t=1 is the 2D control)
    t_kernels: list[int] = field(default_factory=list)
    clip_lens: list[int] = field(default_factory=list)
    # set: a cross instead of the grid -- clip_lens at net.t_kernel, t_kernels at this length
    kernel_clip_len: int | None = None
    # inflation: each kind inflated from a 2D net pretrained on frames, and from scratch
    pretrain_epochs: int = 3  # epochs of 2D pretraining on single frames
    # the compute control: the same 2D pretraining on shuffled image labels, then inflated
    pretrain_shuffle: bool = False
    # space (free search): a SearchSpace mapping (see arch_space.space) and a budget
    space: dict[str, Any] = field(default_factory=dict)
    max_macs: str | None = None  # e.g. "40M": MAC budget at the data clip (overrides the space)
    # matched compute (grid designs; search.design.matching): every arm's widths scaled to one cost
    match: str = "none"  # "macs", "params", or "none" (arms keep their widths: cost varies)
    match_target: str | None = None  # "15M", "1.2G", or an arm's label; null: the median arm's
    match_multiple: int | None = None  # matched widths are multiples of it; null: 1..8 by width
    num_samples: int = 0  # search trials per seed (grid designs ignore it)
    objectives: list[str] = field(default_factory=lambda: [VAL_ACC1, "macs"])
    # declared before the data (search.results.contrasts): "A - B" or "each vs C", over networks/families
    contrasts: list[str] = field(default_factory=list)
    # "metric:max" | "metric:min" for metrics whose name says no direction (search.results.metrics)
    directions: list[str] = field(default_factory=list)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    # one study per point of a knob (search.design.variants): partial data/train/study configs, each
    # run as the study "<name>.<label>"; empty: the study itself
    variants: list[dict[str, Any]] = field(default_factory=list)


DATA_SOURCES: tuple[str, ...] = ("synthetic", "folder", "csv", "json")
VIDEO_SOURCES: tuple[str, ...] = ("folder", "csv", "json")
CLIP_SAMPLINGS: tuple[str, ...] = ("random", "center", "uniform")
DECODERS: tuple[str, ...] = ("auto", "torchcodec", "pyav")  # search.data.decoders
DECODE_DEVICES: tuple[str, ...] = ("cpu", "cuda")  # cuda: torchcodec on the trial's GPU (NVDEC)
# Real video: what a null field takes (clip_len / crop_size also size the network).
VIDEO_DEFAULTS: dict[str, Any] = {"clip_len": 16}


@dataclass
class DataConfig:
    """The dataset: the built-in synthetic clips, or real video read with PyAV.

    Synthetic fields mirror ``search.data.synthetic.SyntheticConfig``; null (the default) takes
    the task's calibrated value (``default_cpu_config(task)``), filled in by ``fill_defaults``
    (a test keeps the field names equal). Real video (``source`` folder / csv / json) is listed
    by ``search.design.video_lists`` and read inside every trial (``search.data.video``): its
    paths must be readable from every node that runs trials. The network is sized to the data:
    ``num_classes`` (null: the classes found in the dataset), ``clip_len`` and the crop (``size``
    for synthetic, ``crop_size`` for real video), so the stored arch cost is measured at the clip
    actually trained.
    """

    source: str = "synthetic"  # "synthetic", "folder" (UCF101/HMDB51 trees), "csv" (Kinetics), "json" (SSv2)
    task: str = "motion"  # synthetic: one of search.design.tasks.TASKS
    clip_len: int | None = None  # frames per clip (T); real video default 16
    size: int | None = None  # synthetic: frame height = width
    num_classes: int | None = None  # classes; real video: null = the dataset's (or len(classes))
    n_train: int | None = None  # synthetic: training clips; real video: at most this many videos
    n_val: int | None = None  # synthetic: validation clips; real video: at most this many videos
    object_size: int | None = None  # side of the small moving digits
    target_size: int | None = None  # side of the named digit / flashing event
    speed: float | None = None  # pixels per frame
    n_objects: int | None = None  # coherently moving (motion) or turning (rotation) digits
    angular_speed: float | None = None  # rotation: radians per frame
    n_distractors: int | None = None  # clutter
    noise: float | None = None  # pixel noise std
    event_len: int | None = None  # long_order: frames an event is visible
    slot_jitter: int | None = None  # long_order: onset jitter in frames
    scale: float | None = None  # zoom of the small moving digits: object_size and speed x scale
    n_directions: int | None = None  # appearance_motion: directions (labels digit x direction)
    event_gap: int | None = None  # long_order: frames between onsets (0: spread over the clip)
    data_seed: int | None = None  # null: each seed draws its own clips; N: every seed the same (search.design.protocol)
    # --- real video (source folder / csv / json); paths: absolute, or relative to the cwd ---
    root: str | None = None  # folder of the videos (folder: root/<class>/<video>)
    split_dir: str | None = None  # folder: UCF101 (classInd.txt, trainlist0N) / HMDB51 split files
    split: int = 1  # folder: official split number (1, 2 or 3)
    annotations: str | None = None  # csv / json: training annotations (Kinetics CSV, SSv2 JSON)
    val_annotations: str | None = None  # csv / json: validation annotations
    labels: str | None = None  # json: SSv2 labels JSON (template -> index)
    suffix: str | None = None  # csv / json: video file suffix; null: .mp4 (csv), .webm (json)
    classes: list[str] | None = None  # a subset of the classes, in label order; null: all
    val_fraction: float = 0.2  # no val split given: hold out this fraction of each class
    frame_stride: int = 2  # take every n-th frame
    resize: int = 128  # short side before cropping (0 keeps the decoded size)
    crop_size: int = 112  # square crop the network sees (H = W)
    train_sampling: str = "random"  # which frames in training: "random", "center", "uniform"
    val_sampling: str = "center"  # which frames in validation
    hflip: bool | None = None  # random flips in training; null: on, except for json (SSv2)
    num_workers: int | None = None  # DataLoader decode workers per trial; null: cpus_per_trial - 1
    decoder: str = "auto"  # "auto" (torchcodec where it loads, else PyAV), "torchcodec", "pyav"
    decode_device: str = "cpu"  # "cuda": torchcodec decodes on the trial's GPU (no workers)
    cache: bool = False  # decode once into memory-mapped uint8 shards; later epochs read them
    cache_dir: str = "~/.cache/vidarch/clips"  # where the clip cache lives (per node)

    @property
    def is_video(self) -> bool:
        """True for real video (PyAV), False for the built-in synthetic clips."""
        return self.source in VIDEO_SOURCES

    @property
    def input_size(self) -> int | None:
        """Height = width of the clips the network takes."""
        return self.crop_size if self.is_video else self.size


@dataclass
class TrainSettings:
    """How every trial trains. Fields mirror ``search.train.TrainConfig`` (without device and
    threads, which come from the hardware config); null takes its calibrated default. The
    ``plateau_*`` fields (``PLATEAU_KEYS``) say when a trial has converged."""

    epochs: int | None = None  # passes over the training set
    batch_size: int | None = None  # clips per optimizer step
    optimizer: str | None = None  # "adamw" or "sgd"
    lr: float | None = None  # peak learning rate
    weight_decay: float | None = None  # decoupled (AdamW) / L2 (SGD)
    momentum: float | None = None  # SGD momentum / AdamW beta1
    warmup_epochs: float | None = None  # linear warm-up
    label_smoothing: float | None = None  # training loss only
    grad_clip: float | None = None  # max grad norm; null: the default (0 turns clipping off)
    channels_last: str | None = None  # "auto", "true" or "false"
    amp: str | None = None  # "auto", "bf16" or "off"
    num_workers: int | None = None  # DataLoader workers (datasets not in memory)
    eval_batch_size: int | None = None  # null: 2 x batch_size
    # Convergence (search.design.protocol.plateaued): epochs is then the maximum budget.
    plateau_stop: bool = True  # end a trial once its val curve plateaus (a Tune stopper)
    plateau_metric: str = VAL_ACC1  # the curve watched: "val/acc1" (higher) or "val/loss" (lower)
    plateau_patience: int = 2  # epochs without an improvement larger than plateau_min_delta
    plateau_min_delta: float = 0.01  # smaller changes are no improvement (accuracy: 1 point)
    # no plateau is called before this many epochs; null: half the epoch budget, rounded up
    # (early curves are noisy: a dip at epochs 2-3 is not convergence)
    plateau_min_epochs: int | None = None


# TrainSettings fields that are not TrainConfig fields: they steer the trial, not the loop.
PLATEAU_KEYS: tuple[str, ...] = ("plateau_stop", "plateau_metric", "plateau_patience",
                                 "plateau_min_delta", "plateau_min_epochs")


@dataclass
class HardwareConfig:
    """Where trials run: a local Ray started in-process, or an existing cluster."""

    address: str | None = None  # Ray address ("auto", "ray://host:10001"); null: local Ray
    num_cpus: int | None = None  # CPUs of the local Ray; null: all of this machine's
    num_gpus: int | None = None  # GPUs of the local Ray; null: what Ray detects
    cpus_per_trial: float = 1.0  # CPUs each trial reserves; torch threads follow it
    gpus_per_trial: float = 0.0  # GPUs each trial reserves (fractions share a GPU)
    max_concurrent_trials: int | None = None  # null: as many as the resources allow
    device: str = "auto"  # "auto" (CUDA when the trial got a GPU), "cpu", "cuda"
    checkpoint_dir: str = "~/ray_results/vidarch"  # Ray Tune storage (checkpoints); a URI on a cluster
    ship_code: bool = True  # cluster: send this checkout to the workers (Ray runtime_env working_dir)
    keep_checkpoints: bool = False  # keep checkpoints of finished trials (default: deleted once COMPLETE/PRUNED)
    latency_runs: int = 5  # timed forward passes of each trial's network on its device; 0: none


@dataclass
class TrackingConfig:
    """Export to an experiment tracker through Ray Tune's own logger callbacks
    (``search.tracking``); the results database stays the record either way."""

    kind: str = "none"  # "none", "mlflow" (MLflowLoggerCallback) or "tensorboard" (TBXLoggerCallback)
    experiment: str | None = None  # MLflow experiment name; null: the study's name


@dataclass
class RunConfig:
    """The whole command line: ``python -m search.run study=NAME storage=URL key=value ...``."""

    study: StudyConfig = MISSING
    data: DataConfig = MISSING
    train: TrainSettings = MISSING
    hardware: HardwareConfig = MISSING
    tracking: TrackingConfig = MISSING
    tracking_uri: str | None = None  # MLflow tracking URI (file:///..., http://...); null: MLflow's default
    storage: str = "sqlite:///studies.db"  # SQLAlchemy URL of the results database
    progress_interval_s: float = 5.0  # seconds between progress lines on stderr
    summary: bool = True  # print the end-of-run summary


def fill_defaults(cfg: RunConfig) -> RunConfig:
    """Replace null data/train fields by the calibrated defaults of what they feed: the task's
    ``default_cpu_config`` and ``TrainConfig()`` (so calibration lives in one place); real video
    takes ``VIDEO_DEFAULTS`` (its class count is found in the dataset by the study checks)."""
    from search.design.tasks import TASKS, default_cpu_config
    from search.design.train_config import TrainConfig

    data_defaults = default_cpu_config(cfg.data.task) if cfg.data.task in TASKS else None
    if cfg.data.is_video:  # the synthetic fields stay null; num_classes comes from the data
        data_defaults = None
        for name, value in VIDEO_DEFAULTS.items():
            if getattr(cfg.data, name) is None:
                setattr(cfg.data, name, value)
    for section, defaults in ((cfg.data, data_defaults), (cfg.train, TrainConfig())):
        if defaults is None:
            continue  # an unknown task is reported by the study checks, naming data.task
        for f in dataclasses.fields(defaults):
            if hasattr(section, f.name) and getattr(section, f.name) is None:
                value = getattr(defaults, f.name)
                if isinstance(value, bool) and f.name == "channels_last":
                    value = str(value).lower()
                setattr(section, f.name, value)
    return cfg


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="study", name="study_schema", node=StudyConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    cs.store(group="train", name="train_schema", node=TrainSettings)
    cs.store(group="hardware", name="hardware_schema", node=HardwareConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)
