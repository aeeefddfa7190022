"""Reading the results database into pandas: one row per trial, per-epoch curves, studies.

Reads are bulk SQL (``pd.read_sql`` on joined tables), the results table is pivoted to one
column per metric, and specs are parsed once per arch (``placement.arch_features`` is cached by
spec text), so a 100k-trial study loads in seconds. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, case, func, select, type_coerce
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from analysis.placement import arch_features, layer_costs
from arch_space.spec import ArchSpec
from search.results import urls
from search.results.schema import (
    HARDWARE_KEYS,
    ArchRow,
    EpochMetricRow,
    ResultRow,
    StudyRow,
    TrialRow,
)
from search.results.store import StoreError, open_engine

# The study protocol's trial columns (search.results.store.PROTOCOL_COLUMNS) and how they load.
PROTOCOL_DTYPES: dict[str, str] = {"data_seed": "Int64", "plateaued": "boolean",
                                   "train_val_gap": "float", "chance_acc": "float",
                                   "majority_acc": "float"}
# The command that fills a database; error messages and the dashboard show it.
RUN_HINT = "python -m search.run study=bottom_vs_top"


class NoDataError(RuntimeError):
    """The database cannot answer: missing, not vidarch, empty, or no such study.

    ``str(err)`` is one line for the user; ``err.hint`` is the command that would fix it.
    """

    def __init__(self, message: str, hint: str = RUN_HINT) -> None:
        super().__init__(message)
        self.hint = hint


Db = str | Path | Engine


def to_url(db: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a file path (``studies.db`` → ``sqlite:///studies.db``);
    the rules are ``search.results.urls.to_url``'s, the same as the writer's."""
    return urls.to_url(db)


def connect(db: Db) -> Engine:
    """An Engine for ``db`` (URL, path or Engine), read-only; ``NoDataError`` if unusable."""
    if isinstance(db, Engine):
        return db
    url = to_url(db)
    try:
        make_url(url)
    except ArgumentError:
        raise NoDataError(f"not a database URL or path: {db!r}") from None
    try:
        return open_engine(url, create=False)
    except StoreError as exc:
        raise NoDataError(str(exc)) from None


@contextmanager
def opened(db: Db) -> Iterator[Engine]:
    """``connect(db)`` that disposes the engine afterwards when it made it."""
    engine = connect(db)
    try:
        yield engine
    finally:
        if engine is not db:
            engine.dispose()


def _read_sql(stmt: Any, engine: Engine) -> pd.DataFrame:
    """Run a SELECT into a DataFrame.

    On SQLite the statement is compiled with literal values and run on the driver's own
    cursor: SQLAlchemy's per-row result processing would cost more than the query itself on
    100k-trial studies. Values then come back as SQLite stores them (datetimes as ISO text,
    enums as their names), which the callers convert vectorised. Other backends use
    ``pd.read_sql``.
    """
    try:
        with engine.connect() as conn:
            if engine.dialect.name != "sqlite":
                return pd.read_sql(stmt, conn)
            sql = stmt if isinstance(stmt, str) else str(stmt.compile(
                dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            raw = conn.connection.driver_connection
            assert raw is not None  # an open pooled connection always has one
            cursor = raw.execute(sql)
            columns = [d[0] for d in cursor.description]
            return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)
    except (SQLAlchemyError, sqlite3.Error) as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise NoDataError(f"cannot read the results database: {first}") from None


def list_studies(db: Db) -> pd.DataFrame:
    """Studies with their trial counts by state: name, kind, created_at, n_trials, COMPLETE, ..."""
    with opened(db) as engine:
        studies = _read_sql(select(StudyRow.id, StudyRow.name, StudyRow.kind, StudyRow.created_at,
                                   StudyRow.config_json), engine)
        counts = _read_sql(
            "SELECT study_id, state, COUNT(*) AS n FROM trials GROUP BY study_id, state", engine)
        if not counts.empty:
            wide = counts.pivot_table(index="study_id", columns="state", values="n", fill_value=0)
            studies = studies.merge(wide, left_on="id", right_index=True, how="left")
        for state in ("COMPLETE", "PRUNED", "FAILED", "RUNNING"):
            if state not in studies:
                studies[state] = 0
            studies[state] = studies[state].fillna(0).astype(int)
        studies["n_trials"] = studies[["COMPLETE", "PRUNED", "FAILED", "RUNNING"]].sum(axis=1)
        return studies.sort_values("created_at", ascending=False).reset_index(drop=True)


def _study_ids(engine: Engine, study: str | None) -> dict[int, str]:
    stmt = select(StudyRow.id, StudyRow.name)
    if study is not None:
        stmt = stmt.where(StudyRow.name == study)
    ids = dict(_read_sql(stmt, engine).itertuples(index=False, name=None))
    if not ids:
        if study is None:
            raise NoDataError("the database holds no study yet")
        raise NoDataError(f"no study called {study!r} in this database",
                          hint=f"python -m search.run study={study}")
    return ids


def _decode(values: pd.Series, types: pd.Series) -> np.ndarray:
    """Vectorised ``schema.decode_value``: NaN/±inf from their tags."""
    out = np.array(values.to_numpy(dtype=float, na_value=np.nan), copy=True)
    tags = types.to_numpy(dtype=object)
    out[tags == "NAN"] = np.nan
    out[tags == "INF_POS"] = np.inf
    out[tags == "INF_NEG"] = -np.inf
    return out


def _raw(column: Any) -> Any:
    """An Enum column read as its stored string (no per-row Enum conversion)."""
    return type_coerce(column, String).label(column.key)


class _Subset(dict):
    """Study ids (``{id: name}``) that also restrict the trials to some archs or trial ids."""

    def __init__(self, ids: dict[int, str], arch_ids: list[str] | None,
                 trial_ids: list[int] | None) -> None:
        super().__init__(ids)
        self.arch_ids = None if arch_ids is None else [str(a) for a in arch_ids]
        self.trial_ids = None if trial_ids is None else [int(t) for t in trial_ids]


def _in_clause(column: Any, ids: dict[int, str]) -> Any:
    clause = column.in_(list(ids))
    if isinstance(ids, _Subset) and column is TrialRow.study_id:
        if ids.arch_ids is not None:
            clause = and_(clause, TrialRow.arch_id.in_(ids.arch_ids))
        if ids.trial_ids is not None:
            clause = and_(clause, TrialRow.id.in_(ids.trial_ids))
    return clause


def load_trials(db: Db, study: str | None = None, *, arch_ids: list[str] | None = None,
                trial_ids: list[int] | None = None) -> pd.DataFrame:
    """One row per trial of ``study`` (all studies when None); only those of ``arch_ids`` or
    ``trial_ids`` when given (a page that shows a few networks or a sample of trials).

    Columns: ``study, trial_id, number, state, seed, label, design_family, arch_id, attempt,
    started_at, finished_at, duration_s, error, macs, gmacs, params, latency_ms, activations``;
    the study protocol's ``data_seed`` (effective seed of the clips drawn; nullable Int64),
    ``plateaued`` (nullable boolean), ``train_val_gap``, ``chance_acc``, ``majority_acc``
    (floats), missing (NA / NaN) on rows written before they were recorded;
    the hardware the trial ran on (``node``, ``search.results.schema.HARDWARE_KEYS``: ``node_ip``,
    ``hostname``, ``node_id``, ``device``, ``device_name``, ``gpu_model``, ``gpu_count``, ...);
    the flattened spec (``stem.kind``, ``stage2.block1.kind``, ``...t_kernel``, ``...inflate``);
    placement descriptors (``family``, ``n_temporal``, ``t_com``, ``t_share_bottom``,
    ``t_share_top``, ``temporal_mac_frac``); one column per final metric (``val/acc1``, ...);
    and the protocol columns ``data_seed, plateaued, train_val_gap, chance_acc, majority_acc``
    (null on trials written before schema 0003).

    Raises:
        NoDataError: the database is missing, not vidarch, or has no such study.
    """
    with opened(db) as engine:
        ids = _study_ids(engine, study)
        if arch_ids is not None or trial_ids is not None:
            ids = _Subset(ids, arch_ids, trial_ids)
        trials = _read_sql(
            select(TrialRow.id.label("trial_id"), TrialRow.study_id, TrialRow.number,
                   _raw(TrialRow.state), TrialRow.seed, TrialRow.label,
                   TrialRow.family.label("design_family"), TrialRow.arch_id, TrialRow.attempt,
                   TrialRow.started_at, TrialRow.finished_at, TrialRow.error,
                   *(getattr(TrialRow, c) for c in PROTOCOL_DTYPES), TrialRow.resources_json)
            .where(_in_clause(TrialRow.study_id, ids)), engine)
        trials.insert(0, "study", trials.pop("study_id").map(ids))
        for col, dtype in PROTOCOL_DTYPES.items():  # null (rows before migration 0003): NA/NaN
            trials[col] = pd.array(trials[col].tolist(), dtype=dtype) if dtype != "float" \
                else pd.to_numeric(trials[col], errors="coerce").astype(float)
        trials = _with_hardware(trials)
        # the parameters a search sampled (JSON), for analysis.importance
        params = _read_sql(select(TrialRow.id.label("trial_id"), TrialRow.params_json)
                           .where(_in_clause(TrialRow.study_id, ids)), engine)
        trials = trials.merge(params, on="trial_id", how="left")
        for col in ("started_at", "finished_at"):
            trials[col] = pd.to_datetime(trials[col], format="ISO8601")
        trials["duration_s"] = (trials["finished_at"] - trials["started_at"]).dt.total_seconds()

        archs = _read_sql(
            select(ArchRow.arch_id, ArchRow.spec_json, ArchRow.macs, ArchRow.params,
                   ArchRow.latency_ms, ArchRow.activations, ArchRow.per_layer_json)
            .where(ArchRow.arch_id.in_(select(TrialRow.arch_id).where(
                _in_clause(TrialRow.study_id, ids)).distinct())), engine)
        feats = pd.DataFrame.from_records(
            [_safe_features(s, p) for s, p in zip(archs["spec_json"], archs["per_layer_json"],
                                                   strict=True)],
            index=archs.index)
        for col in ("latency_ms", "activations"):  # nullable: all-NULL comes back as None
            archs[col] = pd.to_numeric(archs[col], errors="coerce").astype(float)
        archs = pd.concat([archs.drop(columns=["spec_json", "per_layer_json"]), feats], axis=1)
        archs["gmacs"] = archs["macs"] / 1e9
        df = trials.merge(archs, on="arch_id", how="left")

        wide = _final_metrics(engine, ids)
        # the driver also reports totals such as macs/params; the arch row is authoritative
        wide = wide.drop(columns=[c for c in wide.columns if c in df.columns])
        if not wide.empty:
            df = df.merge(wide, left_on="trial_id", right_index=True, how="left")
        return df.sort_values(["study", "number"]).reset_index(drop=True)


def _with_hardware(trials: pd.DataFrame) -> pd.DataFrame:
    """``resources_json`` -> one column per ``HARDWARE_KEYS`` entry, and ``node`` (the hostname,
    else the IP). Each distinct JSON text is parsed once (trials of a node share it)."""
    texts = trials.pop("resources_json")
    table = {}
    for text in texts.dropna().unique():
        try:
            record = json.loads(text)
        except ValueError:
            record = {}
        record = record if isinstance(record, dict) else {}
        table[text] = {key: record.get(key) for key in HARDWARE_KEYS}
    hardware = pd.DataFrame.from_dict(table, orient="index", columns=list(HARDWARE_KEYS))
    trials = trials.assign(_resources=texts).join(hardware, on="_resources") \
        .drop(columns="_resources")
    trials["node"] = trials["hostname"].where(trials["hostname"].notna(), trials["node_ip"])
    return trials


def _final_metrics(engine: Engine, ids: dict[int, str]) -> pd.DataFrame:
    """The results table pivoted in SQL: one row per trial_id, one column per metric name."""
    of_study = (select(ResultRow.trial_id).join(TrialRow, TrialRow.id == ResultRow.trial_id)
                .where(_in_clause(TrialRow.study_id, ids)))
    names = _read_sql(select(ResultRow.name).distinct().where(
        ResultRow.trial_id.in_(of_study)), engine)["name"].tolist()
    if not names:
        return pd.DataFrame()
    columns = [func.max(case((ResultRow.name == name, ResultRow.value))).label(f"m{i}")
               for i, name in enumerate(names)]
    wide = _read_sql(select(ResultRow.trial_id, *columns)
                     .where(ResultRow.trial_id.in_(of_study))
                     .group_by(ResultRow.trial_id), engine)
    wide = wide.set_index("trial_id").astype(float)
    wide.columns = names
    # Non-finite values are stored as NULL with a tag (schema.ValueType): put them back.
    odd = _read_sql(select(ResultRow.trial_id, ResultRow.name, ResultRow.value,
                           _raw(ResultRow.value_type))
                    .where(ResultRow.trial_id.in_(of_study), ResultRow.value_type != "FINITE"),
                    engine)
    if not odd.empty:
        odd["value"] = _decode(odd["value"], odd["value_type"])
        for trial_id, name, value in odd[["trial_id", "name", "value"]].itertuples(index=False):
            wide.loc[trial_id, name] = value
    return wide


def _safe_features(spec_json: str, per_layer_json: str | None) -> dict[str, Any]:
    try:
        return arch_features(spec_json, per_layer_json or None)
    except (ValueError, TypeError, KeyError) as exc:  # a spec this version cannot read
        return {"family": "unknown", "spec_error": str(exc).splitlines()[0]}


def metric_names(df: pd.DataFrame) -> list[str]:
    """The final-metric columns of a ``load_trials`` frame (names with a slash)."""
    return [c for c in df.columns if "/" in c]


def spec_columns(df: pd.DataFrame, field: str = "kind") -> list[str]:
    """Spec columns of one field, bottom to top: ``stem.kind, stage1.block1.kind, ...``."""
    return [c for c in df.columns if c.endswith(f".{field}") and
            (c.startswith("stem.") or c.startswith("stage"))]


def load_curves(db: Db, study: str, trial_ids: list[int] | None = None,
                names: list[str] | None = None) -> pd.DataFrame:
    """Per-epoch metrics, long: ``trial_id, number, seed, state, epoch, name, value``.

    Args:
        trial_ids: only these trials (the trial-detail page); all of the study when None.
        names: only these metrics (e.g. ``["val/acc1"]``); all when None.
    """
    with opened(db) as engine:
        ids = _study_ids(engine, study)
        stmt = (select(EpochMetricRow.trial_id, TrialRow.number, TrialRow.seed,
                       _raw(TrialRow.state), EpochMetricRow.epoch, EpochMetricRow.name, EpochMetricRow.value,
                       _raw(EpochMetricRow.value_type))
                .join(TrialRow, TrialRow.id == EpochMetricRow.trial_id)
                .where(_in_clause(TrialRow.study_id, ids)))
        if trial_ids is not None:
            stmt = stmt.where(EpochMetricRow.trial_id.in_([int(t) for t in trial_ids]))
        if names is not None:
            stmt = stmt.where(EpochMetricRow.name.in_(list(names)))
        curves = _read_sql(stmt, engine)
        curves["value"] = _decode(curves["value"], curves["value_type"])
        return (curves.drop(columns=["value_type"])
                .sort_values(["trial_id", "name", "epoch"]).reset_index(drop=True))


def curve_names(db: Db, study: str) -> list[str]:
    """The per-epoch metric names a study recorded."""
    with opened(db) as engine:
        ids = _study_ids(engine, study)
        stmt = (select(EpochMetricRow.name).distinct()
                .join(TrialRow, TrialRow.id == EpochMetricRow.trial_id)
                .where(_in_clause(TrialRow.study_id, ids)))
        return sorted(_read_sql(stmt, engine)["name"])


def curves_wide(curves: pd.DataFrame) -> pd.DataFrame:
    """Long curves → one row per (trial, epoch), one column per metric."""
    wide = curves.pivot_table(index=["trial_id", "epoch"], columns="name", values="value")
    wide.columns.name = None
    return wide.reset_index()


def load_arch(db: Db, arch_id: str) -> tuple[ArchSpec, list[dict[str, Any]], dict[str, Any]]:
    """One arch: its spec, per-layer costs (fvcore when stored, else estimated), and its row."""
    with opened(db) as engine:
        row = _read_sql(select(ArchRow).where(ArchRow.arch_id == arch_id), engine)
        if row.empty:
            raise NoDataError(f"no arch {arch_id!r} in this database")
        record = row.iloc[0].to_dict()
        spec = ArchSpec.from_json(record["spec_json"])
        return spec, layer_costs(spec, record.get("per_layer_json")), record


def study_config(db: Db, study: str) -> dict[str, Any]:
    """The study's stored config snapshot (empty dict when it is not JSON)."""
    with opened(db) as engine:
        rows = _read_sql(select(StudyRow.config_json).where(StudyRow.name == study), engine)
        if rows.empty:
            return {}
        try:
            value = json.loads(rows.iloc[0, 0])
        except (TypeError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}
