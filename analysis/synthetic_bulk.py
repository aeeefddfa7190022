"""Million-trial synthetic studies, written in bulk (benchmarks of the dashboard and analysis).

``analysis.synthetic`` simulates trial by trial through ArchSpec objects (about 2 ms a network);
a million trials of 200k networks need another way. Every network here is the ResNet-18 shape
of ``synthetic.make_spec`` with one kind per layer, so per layer and kind the spec text, the
estimated MACs and parameters (``synthetic._cost``) and the layer row that
``analysis.placement.describe_rows`` reads are computed once and assembled per network; the
tests check the assembled specs, costs and placement facts against the slow path. Trials are
drawn with numpy (accuracy from ``synthetic``'s made-up placement model, a per-seed offset,
noise, 10% PRUNED) and inserted with SQLAlchemy Core ``insert()`` executemany batches in one
transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select

from analysis import synthetic
from analysis.budget import network_name
from analysis.placement import describe_rows, layer_costs
from analysis.placements import VERSION, write_placements
from search.results import summaries
from search.results.metrics import TRAIN_ACC1, TRAIN_LOSS, VAL_ACC1, VAL_ACC5, VAL_LOSS
from search.results.schema import ArchPlacementRow, ArchRow, ResultRow, TrialRow, utcnow
from search.results.store import get_or_create_study, session_scope

STEM_KINDS = ("2d", "3d", "2plus1d")
BLOCK_KINDS = ("2d", "3d", "2plus1d", "p3d_b", "p3d_c")
BATCH = 50_000  # rows per executemany
RESULT_NAMES = (TRAIN_LOSS, TRAIN_ACC1, VAL_LOSS, VAL_ACC1, VAL_ACC5)


def _nan(value: Any) -> Any:
    """NaN as None (NULL)."""
    return None if isinstance(value, float) and math.isnan(value) else value


class _Layers:
    """Per layer and kind: the spec entry, the MACs/params of ``synthetic._cost``, the row
    ``describe_rows`` reads; from one uniform spec per kind."""

    def __init__(self, t_kernel: int = 3) -> None:
        self.t_kernel = t_kernel
        # per stem kind, the canonical JSON cut at each block's kind and extent (blocks come
        # first, in order: keys are sorted); the tests check assembled specs against make_spec
        n_slots = 2 * (synthetic.N_LAYERS - 1)
        self.pieces: dict[str, list[str]] = {}
        for stem in STEM_KINDS:
            base = synthetic.make_spec([stem] + ["2d"] * (synthetic.N_LAYERS - 1),
                                       t_kernel=t_kernel).to_json()
            pieces = re.split(r'("kind":"2d"|"t_kernel":1)', base, maxsplit=n_slots)
            self.pieces[stem] = pieces[0::2]
        self.rows: dict[tuple[int, str], dict[str, Any]] = {}
        self.cost: dict[tuple[int, str], tuple[int, int]] = {}
        for kind in BLOCK_KINDS:
            stem = kind if kind in STEM_KINDS else "3d"
            spec = synthetic.make_spec([stem] + [kind] * (synthetic.N_LAYERS - 1),
                                       t_kernel=t_kernel)
            rows = layer_costs(spec)
            per = {p["layer"]: (p["macs"], p["params"]) for p in synthetic._cost(spec)["per_layer"]}
            for i, row in enumerate(rows):
                k = stem if i == 0 else kind
                self.rows[(i, k)] = row
                self.cost[(i, k)] = per[row["layer"]]
            self.fc = per["fc"]

    def spec(self, kinds: Sequence[str]) -> str:
        """The canonical spec JSON of ``make_spec(kinds)``."""
        pieces = self.pieces[kinds[0]]
        values = []
        for kind in kinds[1:]:
            values += [f'"kind":"{kind}"', f'"t_kernel":{1 if kind == "2d" else self.t_kernel}']
        out = [pieces[0]]
        for value, piece in zip(values, pieces[1:], strict=True):
            out += [value, piece]
        return "".join(out)

    def facts(self, arch_id: str, kinds: Sequence[str]) -> tuple[dict[str, Any], int, int]:
        """The ``arch_placements`` record, MACs and parameters of one network."""
        rows = [self.rows[(i, k)] for i, k in enumerate(kinds)]
        macs = sum(self.cost[(i, k)][0] for i, k in enumerate(kinds)) + self.fc[0]
        params = sum(self.cost[(i, k)][1] for i, k in enumerate(kinds)) + self.fc[1]
        place = describe_rows(rows, macs)
        fields: dict[str, Any] = {}
        for row in rows:
            fields[f"{row['layer']}.kind"] = row["kind"]
            fields[f"{row['layer']}.t_kernel"] = row["t_kernel"]
            fields[f"{row['layer']}.inflate"] = row["inflate"]
        record = {"arch_id": arch_id, "version": VERSION, "family": place.family,
                  "name": network_name(None, arch_id, fields)[:255],
                  "n_temporal": place.n_temporal, "t_com": _nan(place.t_com),
                  "t_share_bottom": _nan(place.t_share_bottom),
                  "t_share_top": _nan(place.t_share_top),
                  "temporal_mac_frac": place.temporal_mac_frac, "num_classes": 10,
                  "fields_json": json.dumps(fields)}
        return record, macs, params


def _draw_kinds(n_archs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_archs`` distinct placements (stem code, block codes), in draw order."""
    out = np.zeros((0, synthetic.N_LAYERS), dtype=np.int64)
    while len(out) < n_archs:
        draw = np.column_stack([rng.integers(0, len(STEM_KINDS), 2 * n_archs),
                                rng.integers(0, len(BLOCK_KINDS),
                                             (2 * n_archs, synthetic.N_LAYERS - 1))])
        out = np.vstack([out, draw])
        code = out @ (len(BLOCK_KINDS) ** np.arange(synthetic.N_LAYERS))
        _, first = np.unique(code, return_index=True)
        out = out[np.sort(first)]
    return out[:n_archs]


def _truth(codes: np.ndarray) -> np.ndarray:
    """``synthetic._true_accuracy`` of each placement, vectorised."""
    n = codes.shape[1]
    depth = np.arange(n) / (n - 1)
    stem_3d = np.array([STEM_KINDS.index("3d")])
    temporal = np.column_stack([codes[:, 0] != STEM_KINDS.index("2d"),
                                codes[:, 1:] != BLOCK_KINDS.index("2d")])
    full = np.column_stack([np.isin(codes[:, 0], stem_3d),
                            codes[:, 1:] == BLOCK_KINDS.index("3d")])
    weight = (0.035 * (1 - depth) + 0.012) * np.where(full, 1.0, 1.08)
    gain = (temporal * weight).sum(axis=1)
    return 0.52 + 0.22 * np.tanh(gain / 0.15)


def _batched(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        conn.execute(insert(table), rows[i:i + BATCH])


def bulk_write_random(engine: Engine, study: str, n_trials: int, *, seeds: int = 5,
                      rng_seed: int = 0, pruned_frac: float = 0.1) -> None:
    """A random-placement study of ``n_trials`` (``n_trials // seeds`` networks x ``seeds``),
    final metrics for every trial, placement facts stored (``arch_placements``)."""
    rng = np.random.default_rng(rng_seed)
    n_archs = max(1, -(-n_trials // seeds))
    codes = _draw_kinds(n_archs, rng)
    layers = _Layers()
    now = utcnow()
    archs, places = [], []
    ids = []
    for row in codes:
        kinds = [STEM_KINDS[row[0]], *(BLOCK_KINDS[c] for c in row[1:])]
        spec = layers.spec(kinds)
        arch_id = hashlib.sha256(spec.encode()).hexdigest()[:16]
        record, macs, params = layers.facts(arch_id, kinds)
        ids.append(arch_id)
        archs.append({"arch_id": arch_id, "spec_json": spec, "macs": macs, "params": params,
                      "latency_ms": round(2.0 * macs / 1e9 + 3.0, 3), "per_layer_json": "[]",
                      "created_at": now})
        places.append(record)
    # trial k: network k // seeds at seed k % seeds
    arch_of = np.arange(n_trials) // seeds
    seed_of = np.arange(n_trials) % seeds
    offsets = rng.normal(0, 0.012, seeds)
    val = _truth(codes)[arch_of] + offsets[seed_of] + rng.normal(0, 0.006, n_trials)
    val = np.clip(val + rng.normal(0, 0.004, n_trials), 0, 1)
    train = np.minimum(1.0, val + 0.05)
    pruned = rng.random(n_trials) < pruned_frac
    metrics_of = {TRAIN_LOSS: 2.3 * 0.2 + rng.normal(0, 0.02, n_trials),
                  TRAIN_ACC1: train, VAL_ACC1: val,
                  VAL_LOSS: 2.3 * 0.3 - 2.0 * (val - 0.5) + rng.normal(0, 0.02, n_trials),
                  VAL_ACC5: np.minimum(1.0, val + 0.2 + rng.normal(0, 0.01, n_trials))}
    with session_scope(engine) as s:
        study_id = get_or_create_study(s, study, kind="random",
                                       config={"synthetic": True, "n_trials": n_trials}).id
        known = set(s.scalars(select(ArchRow.arch_id).where(ArchRow.arch_id.in_(ids))))
        _batched(s, ArchRow, [a for a in archs if a["arch_id"] not in known])
        have = set(s.scalars(select(ArchPlacementRow.arch_id)
                             .where(ArchPlacementRow.arch_id.in_(ids))))
        for i in range(0, len(places), BATCH):
            write_placements(s, [p for p in places[i:i + BATCH] if p["arch_id"] not in have])
        first = (s.scalar(select(TrialRow.id).order_by(TrialRow.id.desc()).limit(1)) or 0) + 1
        chance = 0.1
        for lo in range(0, n_trials, BATCH):
            hi = min(n_trials, lo + BATCH)
            trials, results = [], []
            for k in range(lo, hi):
                done = not pruned[k]
                trials.append({
                    "id": first + k, "study_id": study_id, "number": k,
                    "arch_id": ids[arch_of[k]], "seed": int(seed_of[k]), "label": None,
                    "family": None, "params_json": "{}",
                    "state": "COMPLETE" if done else "PRUNED", "attempt": 1,
                    "started_at": now, "finished_at": now, "resources_json": "{}",
                    "data_seed": int(seed_of[k]), "chance_acc": chance,
                    "majority_acc": round(chance + 0.025, 4),
                    "plateaued": True if done else None,
                    "train_val_gap": float(train[k] - val[k]) if done else None})
                results.extend({"trial_id": first + k, "name": name,
                                "value": float(values[k]), "value_type": "FINITE"}
                               for name, values in metrics_of.items())
            s.execute(insert(TrialRow.__table__), trials)
            s.execute(insert(ResultRow.__table__), results)
    summaries.refresh(engine, study_id)  # as the driver does when a study run ends
