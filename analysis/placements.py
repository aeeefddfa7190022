"""Placement facts per arch, stored (``arch_placements``, migration 0004) or computed.

``analysis.placement.arch_features`` parses a spec and walks its layers (about 0.3 ms an arch):
fine for a thousand networks, a minute for the 200k of a million-trial search. Its results are
derived data, so they may be stored once beside the arch (``placement_records`` +
``write_placements``: the synthetic-study writer does, ``python -m analysis.placements DB``
fills an existing database) and read back in one query (``read_placements``). Rows that are
missing or of another ``VERSION`` are computed from the spec, so a database without them gives
the same answers, only slower.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, or_, select

from analysis.budget import network_name
from analysis.loading import _read_sql, _safe_features, opened
from search.results.schema import ArchPlacementRow, ArchRow

VERSION = 1  # bump when analysis.placement's rules change: stored rows are then recomputed
DESCRIPTORS: tuple[str, ...] = ("family", "n_temporal", "t_com", "t_share_bottom", "t_share_top",
                                "temporal_mac_frac")
SPEC_FIELDS = ("kind", "t_kernel", "inflate")  # the flattened spec fields pages show per layer


def placement_record(arch_id: str, spec_json: str, per_layer_json: str | None) -> dict[str, Any]:
    """The ``arch_placements`` row of one arch (its descriptors, name and spec fields)."""
    feats = _safe_features(spec_json, per_layer_json)
    fields = {k: v for k, v in feats.items() if (k.startswith("stem.") or k.startswith("stage"))
              and k.rsplit(".", 1)[-1] in SPEC_FIELDS}

    def number(key: str) -> float | None:
        value = feats.get(key)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) \
            else value

    return {"arch_id": arch_id, "version": VERSION, "family": str(feats.get("family", "unknown")),
            "name": network_name(None, arch_id, fields)[:255],
            **{k: number(k) for k in DESCRIPTORS[1:]},
            "num_classes": feats.get("num_classes"), "fields_json": json.dumps(fields)}


def placement_records(archs: Iterable[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
    """``placement_record`` of each ``(arch_id, spec_json, per_layer_json)``."""
    return [placement_record(a, s, p) for a, s, p in archs]


def write_placements(conn: Any, records: Sequence[dict[str, Any]]) -> None:
    """Insert placement rows in one statement (executemany) on an open connection/session."""
    if records:
        conn.execute(insert(ArchPlacementRow), list(records))


def read_placements(engine: Engine, arch_ids: Any) -> pd.DataFrame:
    """Placement facts of the archs selected by ``arch_ids`` (a SELECT of arch_id), indexed by
    arch_id: stored rows of this ``VERSION``, the rest computed from their specs."""
    stored = _read_sql(select(ArchPlacementRow.arch_id, *(getattr(ArchPlacementRow, c) for c in (
        "version", *DESCRIPTORS, "name", "num_classes")))
        .where(ArchPlacementRow.arch_id.in_(arch_ids)), engine)
    stored = stored[stored["version"] == VERSION].drop(columns="version")
    missing = _read_sql(
        select(ArchRow.arch_id, ArchRow.spec_json, ArchRow.per_layer_json)
        .outerjoin(ArchPlacementRow, ArchPlacementRow.arch_id == ArchRow.arch_id)
        .where(ArchRow.arch_id.in_(arch_ids),
               or_(ArchPlacementRow.arch_id.is_(None), ArchPlacementRow.version != VERSION)),
        engine)
    if len(missing):
        computed = pd.DataFrame(placement_records(missing.itertuples(index=False, name=None)))
        stored = pd.concat([stored, computed.drop(columns=["version", "fields_json"])],
                           ignore_index=True) if len(stored) else \
            computed.drop(columns=["version", "fields_json"])
    for col in DESCRIPTORS[2:]:
        stored[col] = pd.to_numeric(stored[col], errors="coerce").astype(float)
    return stored.set_index("arch_id")


def spec_fields(db: Any, arch_ids: Sequence[str], field: str | None = None) -> pd.DataFrame:
    """Flattened spec fields (``stem.kind``, ``stage1.block1.t_kernel``, ...) of some archs,
    indexed by arch_id; only the ``field`` ones (e.g. ``"kind"``) when given."""
    ids = list(dict.fromkeys(arch_ids))
    if not ids:
        return pd.DataFrame()
    with opened(db) as engine:
        return _spec_fields(engine, ids, field)


MANY_IDS = 2_000  # above this many archs, read a range of ids instead of an IN (...) list


def _spec_fields(engine: Engine, ids: list[str], field: str | None) -> pd.DataFrame:
    query = select(ArchPlacementRow.arch_id, ArchPlacementRow.fields_json) \
        .where(ArchPlacementRow.version == VERSION)
    if len(ids) <= MANY_IDS:
        query = query.where(ArchPlacementRow.arch_id.in_(ids))
    else:  # the rows between the lowest and the highest id (an index range), filtered below
        query = query.where(ArchPlacementRow.arch_id.between(min(ids), max(ids)))
    stored = _read_sql(query, engine)
    wanted = set(ids)
    texts = {a: f for a, f in zip(stored["arch_id"].tolist(), stored["fields_json"].tolist(),
                                  strict=True) if a in wanted}
    rest = [a for a in ids if a not in texts]
    if rest:  # not stored (or by other rules): computed from the specs
        archs = _read_sql(select(ArchRow.arch_id, ArchRow.spec_json, ArchRow.per_layer_json)
                          .where(ArchRow.arch_id.in_(rest)), engine)
        for rec in placement_records(archs.itertuples(index=False, name=None)):
            texts[rec["arch_id"]] = rec["fields_json"]
    rows = {a: _fields(texts[a], field) for a in ids if a in texts}
    keys = list(dict.fromkeys(itertools.chain.from_iterable(rows.values())))
    if field is not None:
        keys = [k for k in keys if k.endswith(f".{field}")]
    frame = pd.DataFrame.from_records([rows.get(a, {}) for a in ids], columns=keys)
    frame.index = pd.Index(ids, name="arch_id")
    return frame


_ENTRY: dict[str, re.Pattern[str]] = {}  # field -> one '"<position>.<field>": value' entry
_SCALARS: dict[str, Any] = {}  # a JSON scalar's text -> its value (a few distinct tokens)


def _fields(text: str, field: str | None) -> dict[str, Any]:
    """One arch's stored ``fields_json``, or only its ``*.field`` entries: matched in the text
    this module wrote (``json.dumps`` of a flat dict of scalars) instead of parsing all of it
    (200k networks: 17 s parsed, ~5 s matched)."""
    if field is None:
        return json.loads(text)
    if field not in _ENTRY:
        _ENTRY[field] = re.compile(r'"([^"]*\.' + re.escape(field) + r')": ("[^"]*"|[^,}]+)')
    out = {}
    for key, token in _ENTRY[field].findall(text):
        if token not in _SCALARS:
            _SCALARS[token] = json.loads(token)
        out[key] = _SCALARS[token]
    return out


def fill(url: str) -> int:
    """Store the placement facts of every arch of a database that lacks them; the count."""
    from search.results.store import open_engine, session_scope

    engine = open_engine(url, create=True)
    try:
        have = select(ArchPlacementRow.arch_id).where(ArchPlacementRow.version == VERSION)
        todo = _read_sql(select(ArchRow.arch_id, ArchRow.spec_json, ArchRow.per_layer_json)
                         .where(ArchRow.arch_id.not_in(have)), engine)
        records = placement_records(todo.itertuples(index=False, name=None))
        with session_scope(engine) as s:
            s.query(ArchPlacementRow).filter(
                ArchPlacementRow.arch_id.in_(todo["arch_id"].tolist())).delete()
            write_placements(s, records)
        return len(records)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.placements DB``: store placement facts of every arch of DB."""
    import argparse

    from analysis.loading import to_url

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="database path or URL")
    args = parser.parse_args(argv)
    print(f"stored the placement facts of {fill(to_url(args.db))} archs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
