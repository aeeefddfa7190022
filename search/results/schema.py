"""The results database schema (SQLAlchemy 2 ORM). Imports neither torch nor ray.

Analysis and the dashboard import this module to read; only the Ray driver writes (see
``search/results/store.py``). Schema changes go through Alembic migrations in ``search/results/migrations``.

Datetimes are naive UTC: SQLite has no time-zone type, and naive-UTC everywhere avoids mixing
aware and naive values between SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC now (see module docstring for why naive)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every vidarch table."""


class TrialState(enum.Enum):
    """Life cycle of a trial row. Only COMPLETE trials are Pareto candidates."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"  # stopped early by the scheduler: partial results, never a Pareto point
    FAILED = "FAILED"


class ValueType(enum.Enum):
    """How a float is stored: SQL has no portable inf/NaN, so non-finite values get a tag."""

    FINITE = "FINITE"
    INF_POS = "INF_POS"
    INF_NEG = "INF_NEG"
    NAN = "NAN"


def encode_value(value: float) -> tuple[float | None, ValueType]:
    """Split a float into (stored value, tag)."""
    if math.isnan(value):
        return None, ValueType.NAN
    if math.isinf(value):
        return None, ValueType.INF_POS if value > 0 else ValueType.INF_NEG
    return float(value), ValueType.FINITE


def decode_value(value: float | None, value_type: ValueType) -> float:
    """Inverse of ``encode_value``."""
    if value_type is ValueType.FINITE:
        return float(value) if value is not None else math.nan
    return {ValueType.NAN: math.nan, ValueType.INF_POS: math.inf,
            ValueType.INF_NEG: -math.inf}[value_type]


class StudyRow(Base):
    """One study: a named design run with one config."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # "grid" | "tpe" | "nsga2" | ...
    config_json: Mapped[str] = mapped_column(Text)  # resolved config snapshot
    package_version: Mapped[str] = mapped_column(String(64))
    git_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # naive UTC

    trials: Mapped[list[TrialRow]] = relationship(back_populates="study")


class ArchRow(Base):
    """One network, shared across trials and studies; keyed by ``ArchSpec.arch_id``."""

    __tablename__ = "archs"
    # a network's costs without reading its spec: what the per-network summaries join (0005)
    __table_args__ = (Index("ix_archs_costs", "arch_id", "macs", "params", "latency_ms"),)

    arch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text)  # canonical ArchSpec JSON
    macs: Mapped[int] = mapped_column(BigInteger)  # fvcore count at the spec's clip (1 MAC = 1 "flop")
    params: Mapped[int] = mapped_column(BigInteger)
    activations: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # output elements
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)  # median forward, 1 clip
    per_layer_json: Mapped[str] = mapped_column(Text)  # [{"layer","kind","macs","params"}, ...]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArchPlacementRow(Base):
    """Placement facts derived from an arch's spec (``analysis.placement``), stored so that
    summaries group by family in SQL (migration 0004). Derived data: a row may be missing or
    of an older ``version``; readers then compute it from the spec."""

    __tablename__ = "arch_placements"
    __table_args__ = (
        # what a per-network summary joins, without reading the spec fields (0004)
        Index("ix_arch_placements_facts", "arch_id", "version", "family", "name", "n_temporal",
              "t_com", "t_share_bottom", "t_share_top", "temporal_mac_frac", "num_classes"),
    )

    arch_id: Mapped[str] = mapped_column(ForeignKey("archs.arch_id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)  # rules that wrote it (analysis.placements)
    family: Mapped[str] = mapped_column(String(64), index=True)  # analysis.placement.FAMILIES
    name: Mapped[str] = mapped_column(String(255))  # display name (placement runs)
    n_temporal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    t_com: Mapped[float | None] = mapped_column(Float, nullable=True)
    t_share_bottom: Mapped[float | None] = mapped_column(Float, nullable=True)
    t_share_top: Mapped[float | None] = mapped_column(Float, nullable=True)
    temporal_mac_frac: Mapped[float | None] = mapped_column(Float, nullable=True)
    num_classes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fields_json: Mapped[str] = mapped_column(Text)  # flattened spec fields ("stem.kind": ...)


# trials.resources_json: what the trial reserved (cpus, gpus, ray_address, resumed_from) and,
# once its first result arrives, the hardware it ran on under these keys (search.hardware).
HARDWARE_KEYS: tuple[str, ...] = ("node_ip", "hostname", "node_id", "device", "device_name",
                                  "gpu_model", "gpu_count", "cpu_model", "torch_version",
                                  "cuda_version", "cudnn_version")


class TrialRow(Base):
    """One (arch, seed) cell of a study; re-runs of the same cell update this row."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        UniqueConstraint("study_id", "arch_id", "seed"),  # a cell is trained once per study
        Index("ix_trials_study_state", "study_id", "state"),
        Index("ix_trials_study_state_arch", "study_id", "state", "arch_id", "seed"),  # 0004
        Index("ix_trials_study_finished", "study_id", "finished_at"),  # summaries' stamp (0005)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    number: Mapped[int] = mapped_column(Integer)  # 0, 1, ... within the study
    arch_id: Mapped[str] = mapped_column(ForeignKey("archs.arch_id"))
    seed: Mapped[int] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(255), nullable=True)  # e.g. preset "mc3"
    family: Mapped[str | None] = mapped_column(String(64), nullable=True)  # e.g. "bottom-heavy"
    params_json: Mapped[str] = mapped_column(Text, default="{}")  # sampled search parameters
    state: Mapped[TrialState] = mapped_column(Enum(TrialState, native_enum=False, length=16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # bumped when a cell is re-run
    started_at: Mapped[datetime] = mapped_column(default=utcnow)  # naive UTC
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)  # naive UTC
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # reason of FAILED/PRUNED
    resources_json: Mapped[str] = mapped_column(Text, default="{}")  # cpus, gpus, node, device
    ray_trial_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checkpoint_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # latest Tune checkpoint (resume)
    # --- the study protocol (migration 0003); null on rows written before it ---
    data_seed: Mapped[int | None] = mapped_column(Integer, nullable=True)  # effective seed of the clips drawn
    plateaued: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # val curve flattened before the end
    train_val_gap: Mapped[float | None] = mapped_column(Float, nullable=True)  # final train/acc1 - val/acc1
    chance_acc: Mapped[float | None] = mapped_column(Float, nullable=True)  # 1 / classes
    majority_acc: Mapped[float | None] = mapped_column(Float, nullable=True)  # majority class share of the drawn val set

    study: Mapped[StudyRow] = relationship(back_populates="trials")
    arch: Mapped[ArchRow] = relationship()
    epochs: Mapped[list[EpochMetricRow]] = relationship(cascade="all, delete-orphan")
    results: Mapped[list[ResultRow]] = relationship(cascade="all, delete-orphan")


class LeaseRow(Base):
    """One driver per study: the holder renews ``expires_at`` by heartbeat; a stale lease is taken over."""

    __tablename__ = "study_leases"

    study_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))  # "host:pid:token" of the driver
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)  # naive UTC
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)  # naive UTC
    expires_at: Mapped[datetime] = mapped_column()  # naive UTC; past it the lease may be taken


class EpochMetricRow(Base):
    """One metric of one trial at one epoch (long format: ``val/acc1``, ``train/loss``, ...)."""

    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "epoch", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)  # 1-based
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_type: Mapped[ValueType] = mapped_column(Enum(ValueType, native_enum=False, length=8))


class ResultRow(Base):
    """One final metric of a trial (the values of its last reported epoch, plus totals)."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("trial_id", "name"),
                      # covering: one metric of every trial without reading the table (0004)
                      Index("ix_results_name_trial_value", "name", "trial_id", "value",
                            "value_type"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_type: Mapped[ValueType] = mapped_column(Enum(ValueType, native_enum=False, length=8))


class StudySummaryRow(Base):
    """What a study's finished trials spent, stored with the study's stamp then (0005)."""

    __tablename__ = "study_summaries"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    stamp: Mapped[str] = mapped_column(Text)
    spent_s: Mapped[float] = mapped_column(Float)  # summed wall-clock seconds
    spent_gmacs: Mapped[float] = mapped_column(Float)  # summed GMACs per clip of the networks
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)  # naive UTC


class SummaryStampRow(Base):
    """When a study's per-network summaries of one metric were stored: the study's stamp then
    (``search.results.summaries.stamp``) and the seeds the rows' values align with (0005)."""

    __tablename__ = "summary_stamps"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    stamp: Mapped[str] = mapped_column(Text)
    seeds_json: Mapped[str] = mapped_column(Text)  # [0, 1, 2, ...] ascending
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)  # naive UTC


class ArchSummaryRow(Base):
    """One network's summary of one metric over a study's COMPLETE trials (derived data,
    current only while its ``SummaryStampRow`` matches the study: 0005)."""

    __tablename__ = "arch_summaries"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    arch_id: Mapped[str] = mapped_column(ForeignKey("archs.arch_id"), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(255), nullable=True)
    design_family: Mapped[str | None] = mapped_column(String(64), nullable=True)
    n: Mapped[int] = mapped_column(Integer)  # COMPLETE trials with a finite value
    chance_sum: Mapped[float | None] = mapped_column(Float, nullable=True)
    chance_n: Mapped[int] = mapped_column(Integer)
    majority_sum: Mapped[float | None] = mapped_column(Float, nullable=True)
    majority_n: Mapped[int] = mapped_column(Integer)
    gap_sum: Mapped[float | None] = mapped_column(Float, nullable=True)
    gap_n: Mapped[int] = mapped_column(Integer)
    n_undertrained: Mapped[int] = mapped_column(Integer)
    values_json: Mapped[str] = mapped_column(Text)  # per seed of the stamp, null where missing
