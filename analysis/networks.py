"""Looking at networks side by side: every choice at once, two networks, one network everywhere.

- ``choice_table``: one row per network with its per-position choices, cost and metric — the
  data of a parallel-coordinates plot;
- ``network_diff``: two networks' block tables side by side with the differing blocks marked,
  and the metric difference paired over the seeds both ran;
- ``cross_study``: one network (arch_id) in every study that ran it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from analysis.budget import network_table, paired_difference
from analysis.loading import Db, _read_sql, opened, spec_columns, study_config
from search.results.metrics import VAL_ACC1
from search.results.schema import StudyRow, TrialRow

BLOCK_FIELDS = ("kind", "t_kernel", "t_stride", "s_stride", "inflate", "width")  # diffed


def choice_table(df: pd.DataFrame, metric: str = VAL_ACC1, *,
                 fields: tuple[str, ...] = ("kind",)) -> pd.DataFrame:
    """One row per network: ``name, family``, the per-position ``fields`` that vary between
    networks (``stem.kind``, ``stage2.block1.t_kernel``, ...), ``mmacs``, ``params`` and the
    mean ``metric`` over seeds (column named ``metric``).

    A stage whose blocks hold the same value in every network is one column (``stage2.kind``),
    so a grid of per-stage placements reads as stages, a per-block search as blocks.
    """
    nets = network_table(df, metric)
    if nets.empty:
        return pd.DataFrame(columns=["arch_id", "name", "family", "mmacs", "params", metric])
    cols = [c for f in fields for c in spec_columns(df, f)]
    specs = df.groupby("arch_id", sort=False)[cols].first().astype(str)
    varying: dict[str, pd.Series] = {}
    for field in fields:
        by_place: dict[str, list[str]] = {}
        for col in spec_columns(df, field):
            by_place.setdefault(col.split(".")[0], []).append(col)
        for place, group in by_place.items():
            same = all(specs[c].equals(specs[group[0]]) for c in group)
            parts = {f"{place}.{field}": specs[group[0]]} if same and len(group) > 1 else \
                {c: specs[c] for c in group}
            varying.update({k: v for k, v in parts.items() if v.nunique() > 1})
    out = nets.set_index("arch_id")[["name", "family", "macs", "params", "mean"]].join(
        pd.DataFrame(varying))
    out["mmacs"] = out.pop("macs") / 1e6
    out = out.rename(columns={"mean": metric})
    return out.reset_index()[["arch_id", "name", "family", *varying, "mmacs", "params",
                              metric]]


@dataclass
class NetworkDiff:
    """Two networks compared: blocks side by side and the metric difference a − b."""

    a: str  # arch_id of the first network
    b: str
    blocks: pd.DataFrame  # layer, a.<field>, b.<field> ..., differs, changed (field names)
    delta: dict[str, Any]  # paired_difference(a, b): delta, ci_low, ci_high, p, n_pairs, seeds
    n_differing: int  # layers that differ


def network_diff(layers_a: pd.DataFrame, layers_b: pd.DataFrame, df: pd.DataFrame,
                 arch_a: str, arch_b: str, metric: str = VAL_ACC1) -> NetworkDiff:
    """Diff two networks' layer tables (``load_arch``'s per-layer rows) and their ``metric``.

    Layers are matched by path (``stem``, ``stage2.block1``, ...); a layer only one network has
    counts as differing. The difference is a − b over the seeds both ran (Student t).
    """
    fields = [f for f in BLOCK_FIELDS if f in layers_a or f in layers_b]
    left = layers_a.set_index("layer")[[f for f in fields if f in layers_a]].add_prefix("a.")
    right = layers_b.set_index("layer")[[f for f in fields if f in layers_b]].add_prefix("b.")
    order = list(dict.fromkeys([*layers_a["layer"], *layers_b["layer"]]))
    blocks = left.join(right, how="outer").reindex(order)
    changed = []
    for _, row in blocks.iterrows():
        names = [f for f in fields if str(row.get(f"a.{f}")) != str(row.get(f"b.{f}"))]
        changed.append(", ".join(names))
    blocks["changed"] = changed
    blocks["differs"] = blocks["changed"] != ""
    blocks = blocks.reset_index().rename(columns={"index": "layer"})
    return NetworkDiff(a=arch_a, b=arch_b, blocks=blocks,
                       delta=paired_difference(df, arch_a, arch_b, metric),
                       n_differing=int(blocks["differs"].sum()))


def studies_of_arch(db: Db, arch_id: str) -> list[str]:
    """Names of the studies with at least one trial of ``arch_id``."""
    with opened(db) as engine:
        stmt = (select(StudyRow.name).distinct().join(TrialRow, TrialRow.study_id == StudyRow.id)
                .where(TrialRow.arch_id == arch_id))
        return sorted(_read_sql(stmt, engine)["name"].tolist())


def _data_summary(config: Mapping[str, Any]) -> str:
    """A few words on a study's data and training (task, clip length, epochs) from its config."""
    data, train = config.get("data"), config.get("train")
    data = data if isinstance(data, Mapping) else {}
    train = train if isinstance(train, Mapping) else {}
    parts = [f"{k} {data[k]}" for k in ("task", "source", "clip_len", "num_classes") if k in data]
    if "epochs" in train:
        parts.append(f"{train['epochs']} epochs")
    return ", ".join(map(str, parts))


def cross_study(frames: Mapping[str, pd.DataFrame], arch_id: str, metric: str = VAL_ACC1,
                configs: Mapping[str, Mapping[str, Any]] | None = None,
                nets_of: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One network in every study of ``frames`` (study name → ``load_trials`` frame) that ran it.

    ``nets_of`` (study name → ``network_table``, e.g. from SQL aggregates) ranks the network
    when the frames hold only its own trials.

    Columns: ``study, name, n_trials, n_complete, n_seeds, mean, ci_low, ci_high`` (t over
    per-seed means), ``rank`` (its place among that study's networks, 1 = best) of
    ``n_networks``, and ``setting`` (data and training of the study, from ``configs``).
    """
    rows = []
    for study, df in frames.items():
        mine = df[df["arch_id"] == arch_id]
        if mine.empty:
            continue
        nets = network_table(df, metric) if nets_of is None else nets_of[study]
        hit = nets[nets["arch_id"] == arch_id]
        row: dict[str, Any] = {"study": study, "name": mine["label"].dropna().iloc[0]
                               if mine["label"].notna().any() else arch_id[:12],
                               "n_trials": len(mine),
                               "n_complete": int((mine["state"] == "COMPLETE").sum()),
                               "n_seeds": 0, "mean": math.nan, "ci_low": math.nan,
                               "ci_high": math.nan, "rank": math.nan, "n_networks": len(nets),
                               "setting": _data_summary((configs or {}).get(study, {}))}
        if len(hit):
            h = hit.iloc[0]
            row.update(n_seeds=int(h["n_seeds"]), mean=h["mean"], ci_low=h["ci_low"],
                       ci_high=h["ci_high"], rank=int(hit.index[0]) + 1)
        rows.append(row)
    return pd.DataFrame(rows, columns=["study", "name", "n_trials", "n_complete", "n_seeds",
                                       "mean", "ci_low", "ci_high", "rank", "n_networks",
                                       "setting"])


def load_cross_study(db: Db, arch_id: str, metric: str = VAL_ACC1) -> pd.DataFrame:
    """``cross_study`` over every study of the database that ran ``arch_id``."""
    from analysis.loading import load_trials

    with opened(db) as engine:
        names = studies_of_arch(engine, arch_id)
        frames = {name: load_trials(engine, name) for name in names}
        configs = {name: study_config(engine, name) for name in names}
    return cross_study(frames, arch_id, metric, configs)
