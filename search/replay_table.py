"""Benchmark tables: a finished study's per-epoch results as one compact file, with provenance.

A table has one row per (network, seed, epoch) of the study's COMPLETE trials::

    arch_id  label  <searched params: stem.kind, stage1.kind, ...>  macs  params  seed  epoch
    val/acc1  val/loss  train/acc1  train/loss  epoch_time_s

stored as Parquet (``.parquet``) or gzipped CSV (``.csv.gz``), and beside it a JSON file of the
same name (``bench.parquet`` -> ``bench.json``) saying where it comes from: the study's config
snapshot (which rebuilds its search space), the command, the git SHA, the date, the hardware,
and whether it is synthetic. ``python -m search.replay export`` writes one from a results
database; ``python -m search.replay TABLE`` replays searchers against it.

Torch-free: reads the database through ``search.results``; it sits with the replay tools in the
runner layer because it rebuilds a study's space from its config (``search.design``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from search.results.metrics import TRAIN_ACC1, TRAIN_LOSS, VAL_ACC1, VAL_LOSS
from search.results.schema import (
    ArchRow,
    EpochMetricRow,
    StudyRow,
    TrialRow,
    TrialState,
    decode_value,
)
from search.results.store import StoreError, open_engine, session_scope
from search.results.urls import to_url

FORMAT = "vidarch-bench/1"
ACC = VAL_ACC1
TIME = "epoch_time_s"
REQUIRED_METRICS: tuple[str, ...] = (ACC, TIME)  # what a replay cannot do without
METRICS: tuple[str, ...] = (ACC, VAL_LOSS, TRAIN_ACC1, TRAIN_LOSS, TIME)
KEY_COLUMNS: tuple[str, ...] = ("arch_id", "label")
COST_COLUMNS: tuple[str, ...] = ("macs", "params")
ROW_COLUMNS: tuple[str, ...] = ("seed", "epoch")
SUFFIXES: tuple[str, ...] = (".parquet", ".csv.gz")


class ReplayError(ValueError):
    """Bad replay input (table, database, study, searcher); the message is one line."""


@dataclass
class BenchTable:
    """A loaded table: the rows and their provenance."""

    frame: pd.DataFrame  # one row per (arch_id, seed, epoch)
    provenance: dict[str, Any]  # the JSON beside the file (config, command, git SHA, ...)
    source: str  # the file (or database and study) it was read from
    param_columns: tuple[str, ...] = field(default=())  # the searched parameters, in order

    @property
    def networks(self) -> int:
        """Distinct networks."""
        return int(self.frame["arch_id"].nunique())

    @property
    def seeds(self) -> list[int]:
        """Seeds of the table, sorted."""
        return sorted(int(s) for s in self.frame["seed"].unique())

    @property
    def epochs(self) -> int:
        """Planned epochs per trial (the longest stored curve)."""
        return int(self.frame["epoch"].max())

    @property
    def synthetic(self) -> bool:
        """True for tables made by ``analysis.synthetic`` (made-up accuracies)."""
        return bool(self.provenance.get("synthetic"))


def provenance_path(path: str | Path) -> Path:
    """The provenance JSON beside a table: ``x.parquet`` / ``x.csv.gz`` -> ``x.json``."""
    path = Path(path)
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_name(name + ".json")


def _check_suffix(path: Path) -> None:
    if not path.name.endswith(SUFFIXES):
        raise ReplayError(f"{path}: a table is a .parquet or .csv.gz file")


def read_table(path: str | Path) -> BenchTable:
    """Load a table and its provenance; ``ReplayError`` (one line) when either is unusable."""
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise ReplayError(f"{path}: no such table (write one with `python -m search.replay "
                          f"export --db DB --study NAME --out {path.name}`)")
    meta = provenance_path(path)
    if not meta.is_file():
        raise ReplayError(f"{meta}: the table's provenance file is missing")
    try:
        provenance = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{meta}: not readable JSON ({exc})") from None
    try:
        frame = (pd.read_parquet(path) if path.name.endswith(".parquet")
                 else pd.read_csv(path, compression="gzip"))
    except Exception as exc:  # pyarrow / pandas raise many kinds; the table is unreadable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReplayError(f"{path}: not a readable table ({first})") from None
    params = tuple(provenance.get("params") or ())
    return _checked(BenchTable(frame=frame, provenance=provenance, source=str(path),
                               param_columns=params))


def _checked(table: BenchTable) -> BenchTable:
    needed = [*KEY_COLUMNS, *COST_COLUMNS, *ROW_COLUMNS, *REQUIRED_METRICS,
              *table.param_columns]
    missing = [c for c in needed if c not in table.frame.columns]
    if missing:
        raise ReplayError(f"{table.source}: column {missing[0]!r} is missing (a table has "
                          f"{', '.join(needed)})")
    if table.frame.empty:
        raise ReplayError(f"{table.source}: the table has no rows")
    if not isinstance(table.provenance.get("config"), dict):
        raise ReplayError(f"{table.source}: its provenance has no study config (the "
                          f"'config' key rebuilds the search space)")
    return table


def write_table(table: BenchTable, path: str | Path) -> Path:
    """Write the rows (Parquet or CSV.gz by suffix) and the provenance JSON beside them."""
    path = Path(path)
    _check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = table.frame
    if path.name.endswith(".parquet"):
        frame.to_parquet(path, index=False, compression="zstd")
    else:
        frame.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0},
                     float_format="%.6g")
    provenance = {**table.provenance, "format": FORMAT, "params": list(table.param_columns),
                  "networks": table.networks, "seeds": table.seeds, "epochs": table.epochs,
                  "rows": len(frame), "metrics": [m for m in METRICS if m in frame.columns]}
    provenance_path(path).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return path


# --- from a results database ------------------------------------------------------------------


def study_table(url: str, study: str) -> BenchTable:
    """The table of a stored study: every COMPLETE trial with its per-epoch metrics.

    Raises:
        ReplayError: the database cannot be opened, has no such study, or the study has no
            COMPLETE trial with per-epoch ``val/acc1`` and ``epoch_time_s``.
    """
    if "://" not in url:  # a file path: it must exist (a typo never becomes a new database)
        if not Path(url).expanduser().is_file():
            raise ReplayError(f"--db: no such database {str(Path(url).expanduser())!r}")
        url = to_url(url)
    try:
        engine = open_engine(url, create=False)
    except StoreError as exc:
        raise ReplayError(f"--db: {exc}") from None
    try:
        return _read_study(engine, study, url)
    finally:
        engine.dispose()


def _read_study(engine: Engine, study: str, url: str) -> BenchTable:
    with session_scope(engine) as s:
        row = s.scalar(select(StudyRow).where(StudyRow.name == study))
        if row is None:
            names = sorted(s.scalars(select(StudyRow.name)))
            raise ReplayError(f"--study: no study {study!r} in {_shown(url)} (it has "
                              f"{', '.join(names) or 'no study'})")
        config = json.loads(row.config_json or "{}")
        git_sha, created = row.git_sha, row.created_at
        trials = s.execute(
            select(TrialRow.id, TrialRow.arch_id, TrialRow.seed, TrialRow.label,
                   TrialRow.params_json, TrialRow.resources_json, ArchRow.macs, ArchRow.params)
            .join(ArchRow, ArchRow.arch_id == TrialRow.arch_id)
            .where(TrialRow.study_id == row.id, TrialRow.state == TrialState.COMPLETE)
            .order_by(TrialRow.number)).all()
        if not trials:
            raise ReplayError(f"--study: study {study!r} has no COMPLETE trial to replay")
        ids = [t.id for t in trials]
        epochs = s.execute(select(EpochMetricRow.trial_id, EpochMetricRow.epoch,
                                  EpochMetricRow.name, EpochMetricRow.value,
                                  EpochMetricRow.value_type)
                           .where(EpochMetricRow.trial_id.in_(ids),
                                  EpochMetricRow.name.in_(METRICS))).all()
    curves: dict[int, dict[int, dict[str, float]]] = {}  # trial id -> epoch -> metrics
    for trial_id, epoch, name, value, value_type in epochs:
        curves.setdefault(trial_id, {}).setdefault(int(epoch), {})[name] = decode_value(
            value, value_type)
    have = {name for curve in curves.values() for metrics in curve.values() for name in metrics}
    lacking = [m for m in REQUIRED_METRICS if m not in have]
    if lacking:
        raise ReplayError(f"--study: study {study!r} has no per-epoch metrics to replay (no "
                          f"{lacking[0]!r} in epoch_metrics; it was run before they were "
                          f"stored, or by another tool)")
    labels, params, columns = _positions(config, trials)
    records = []
    for t in trials:
        for epoch, metrics in sorted(curves.get(t.id, {}).items()):
            records.append({"arch_id": t.arch_id, "label": labels.get(t.arch_id) or t.label,
                            **params.get(t.arch_id, {}), "macs": int(t.macs),
                            "params": int(t.params), "seed": int(t.seed), "epoch": epoch,
                            **{m: metrics.get(m, float("nan")) for m in METRICS}})
    frame = pd.DataFrame.from_records(records)
    frame = _complete_curves(frame)
    resources = json.loads(trials[0].resources_json or "{}")
    provenance = {"synthetic": bool(config.get("synthetic")), "study": study,
                  "source": _shown(url), "git_sha": git_sha,
                  "study_created": created.isoformat() + "Z" if created else None,
                  "config": config, "hardware": {"trial_resources": resources}}
    return BenchTable(frame=frame, provenance=provenance, source=f"{_shown(url)}:{study}",
                      param_columns=tuple(columns))


def _complete_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Only trials that stored every epoch from 1 to their last (a replay needs whole curves)."""
    groups = frame.groupby(["arch_id", "seed"])["epoch"]
    whole = groups.transform(lambda e: e.nunique() == e.max() and e.min() == 1)
    return frame[whole.astype(bool)].sort_values(["arch_id", "seed", "epoch"]).reset_index(
        drop=True)


def _positions(config: dict[str, Any], trials: list[Any]
               ) -> tuple[dict[str, str], dict[str, dict[str, Any]], list[str]]:
    """Labels and searched parameters per arch: from the study's space when it has one (grid
    trials store no parameters), else from each trial's stored parameters."""
    labels: dict[str, str] = {}
    params: dict[str, dict[str, Any]] = {}
    columns: list[str] = []
    study = config.get("study") or {}
    if study.get("design") == "space":
        from arch_space.spec import SpecError
        from search.design.space_grid import space_points
        from search.design.studies import StudyError, build_space

        try:
            for point in space_points(build_space(run_config(config))):
                labels[point.spec.arch_id] = point.label
                params[point.spec.arch_id] = dict(point.params)
                columns += [k for k in point.params if k not in columns]
        except (SpecError, StudyError):  # too large to enumerate: the stored parameters tell
            labels, params, columns = {}, {}, []
    for t in trials:
        stored = json.loads(t.params_json or "{}")
        if stored and t.arch_id not in params:
            params[t.arch_id] = stored
            columns += [k for k in stored if k not in columns]
    return labels, params, columns


def _shown(url: str) -> str:
    """A database as shown in messages and provenance: a file name, or a URL without password."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).name
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- config snapshots -------------------------------------------------------------------------


def run_config(snapshot: dict[str, Any]) -> Any:
    """The typed ``RunConfig`` of a stored config snapshot (keys this version lacks dropped)."""
    from omegaconf import DictConfig, OmegaConf

    from search.design.config import (
        DataConfig,
        HardwareConfig,
        RunConfig,
        StudyConfig,
        TrackingConfig,
        TrainSettings,
    )

    def known(node: Any, data: dict[str, Any]) -> dict[str, Any]:
        out = {}
        names = set(node.keys())  # `in` is False for a MISSING field such as study.name
        for key, value in data.items():
            if key not in names:
                continue
            child = node._get_node(key)
            if isinstance(value, dict) and isinstance(child, DictConfig) \
                    and dataclasses.is_dataclass(OmegaConf.get_type(child)):
                value = known(child, value)
            out[key] = value
        return out

    sections = {}
    for name, cls in (("study", StudyConfig), ("data", DataConfig), ("train", TrainSettings),
                      ("hardware", HardwareConfig),
                      ("tracking", TrackingConfig)):  # a stored "testing" section: dropped
        node = OmegaConf.structured(cls)
        node = OmegaConf.merge(node, known(node, dict(snapshot.get(name) or {})))
        sections[name] = OmegaConf.to_object(node)
    return RunConfig(**sections, storage=str(snapshot.get("storage", "")))


# --- provenance of this machine ---------------------------------------------------------------


def git_sha() -> str | None:
    """The checkout's commit (12 hex digits), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine() -> dict[str, Any]:
    """What this machine is: CPU model and count, OS, Python."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()
