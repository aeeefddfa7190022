"""Where a network models time: per-layer cost estimates and placement descriptors of an ArchSpec.

Everything here reads an ``ArchSpec`` (torch-free) and returns plain numbers, so analysis can
describe 100k trials without building a single network. Layers are the stem followed by every
block, bottom to top; layer ``i`` of ``n`` sits at depth ``i / (n - 1)`` (0 = bottom, 1 = top).

MACs are the analytic estimate of ``arch_space.estimate`` (a conv's MACs =
k_t·k_h·k_w·C_in·C_out·T_out·H_out·W_out, norms and activations ignored); when the database holds fvcore's ``per_layer_json`` for an arch, the
per-layer costs come from there instead (see ``layer_costs``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arch_space.estimate import estimate_per_layer
from arch_space.kinds import FACTORIZED_KINDS as FACTORIZED_KINDS  # re-exported (live views)
from arch_space.kinds import TEMPORAL_STEM_KINDS as TEMPORAL_STEM_KINDS
from arch_space.naming import FAMILIES as FAMILIES  # re-exported: naming owns the family rule
from arch_space.naming import family_of as family_of
from arch_space.spec import ArchSpec, BlockSpec, StageSpec, StemSpec


@dataclass(frozen=True)
class Placement:
    """Placement descriptors of one spec (one row of them per arch in ``load_trials``)."""

    family: str  # one of FAMILIES (arch_space.naming)
    n_temporal: int  # layers (stem + blocks) that mix frames
    t_com: float  # depth centre of mass of temporal layers, 0 = bottom, 1 = top; NaN if none
    t_share_bottom: float  # share of temporal-layer MACs in the bottom half; NaN if none
    t_share_top: float  # share of temporal-layer MACs in the top half; NaN if none
    temporal_mac_frac: float  # temporal-layer MACs / all conv MACs
    est_macs: int  # analytic MAC estimate of the whole network (convs + fc)


def estimate_layer_macs(spec: ArchSpec) -> dict[str, int]:
    """Analytic MACs of the stem, of every block (shortcut included) and of the classifier.

    ``arch_space.estimate`` — the torch-free twin of the fvcore count — computes them.
    """
    return {row["layer"]: row["macs"] for row in estimate_per_layer(spec)}


def layer_table(spec: ArchSpec,
                sizes: dict[str, tuple[int, int, int]] | None = None) -> list[dict[str, Any]]:
    """One dict per layer (stem, blocks): path, depth, kind, t_kernel, temporal, output size."""
    sizes = sizes or spec.feature_sizes()
    rows: list[dict[str, Any]] = [{
        "layer": "stem", "kind": spec.stem.kind, "t_kernel": spec.stem.t_kernel,
        "t_stride": spec.stem.t_stride, "s_stride": spec.stem.s_stride,
        "inflate": spec.stem.inflate, "width": spec.stem.width,
        "temporal": spec.stem.kind in TEMPORAL_STEM_KINDS and spec.stem.t_kernel > 1,
        "out_thw": "x".join(map(str, sizes["stem"])),
    }]
    for i, stage in enumerate(spec.stages):
        for j, block in enumerate(stage.blocks):
            path = f"stage{i + 1}.block{j + 1}"
            rows.append({
                "layer": path, "kind": block.kind, "t_kernel": block.t_kernel,
                "t_stride": block.t_stride, "s_stride": block.s_stride, "inflate": block.inflate,
                "width": spec.out_width(i), "temporal": block.is_temporal,
                "out_thw": "x".join(map(str, sizes[path])),
            })
    n = len(rows)
    for i, row in enumerate(rows):
        row["depth"] = i / (n - 1) if n > 1 else 0.0
    return rows


def _group_per_layer(per_layer: list[dict[str, Any]], names: list[str]) -> dict[str, int] | None:
    """Sum fvcore's per-module MACs into stem / block paths; None if the names do not match."""
    sums = dict.fromkeys(names, 0)
    matched = False
    for entry in per_layer:
        layer = str(entry.get("layer", ""))
        macs = entry.get("macs") or 0
        for name in names:
            if layer == name or layer.startswith(name + "."):
                sums[name] += int(macs)
                matched = True
                break
    return sums if matched else None


def layer_costs(spec: ArchSpec, per_layer_json: str | None = None) -> list[dict[str, Any]]:
    """``layer_table`` rows with ``macs`` added: measured when ``per_layer_json`` has it."""
    return _costs(spec, per_layer_json)[0]


def _costs(spec: ArchSpec, per_layer_json: str | None) -> tuple[list[dict[str, Any]],
                                                                 dict[str, int]]:
    sizes = spec.feature_sizes()
    rows = layer_table(spec, sizes)
    names = [r["layer"] for r in rows]
    measured = None
    if per_layer_json:
        try:
            measured = _group_per_layer(json.loads(per_layer_json), names)
        except (ValueError, TypeError, AttributeError):
            measured = None
    estimate = estimate_layer_macs(spec)
    for row in rows:
        row["macs"] = measured[row["layer"]] if measured else estimate[row["layer"]]
        row["macs_source"] = "stored" if measured else "estimate"
    return rows, estimate


def describe(spec: ArchSpec, per_layer_json: str | None = None) -> Placement:
    """Placement descriptors and family label of a spec."""
    rows, estimate = _costs(spec, per_layer_json)
    return describe_rows(rows, sum(estimate.values()))


def describe_rows(rows: Sequence[dict[str, Any]], est_macs: int) -> Placement:
    """``describe`` from its layer rows (``layer_costs``: ``kind``, ``temporal``, ``depth``,
    ``macs``; stem first) and the network's estimated MACs."""
    temporal = [r["temporal"] for r in rows]
    total = sum(r["macs"] for r in rows) or 1
    t_rows = [r for r in rows if r["temporal"]]
    t_macs = sum(r["macs"] for r in t_rows)
    if t_rows:
        t_com = sum(r["depth"] for r in t_rows) / len(t_rows)
        bottom = sum(r["macs"] * (1.0 if r["depth"] < 0.5 else 0.5 if r["depth"] == 0.5 else 0.0)
                     for r in t_rows)
        share_bottom = bottom / t_macs if t_macs else math.nan
        share_top = 1.0 - share_bottom if t_macs else math.nan
    else:
        t_com = share_bottom = share_top = math.nan
    blocks = rows[1:]
    return Placement(
        family=family_of(temporal, [r["kind"] for r in blocks]),
        n_temporal=len(t_rows),
        t_com=t_com,
        t_share_bottom=share_bottom,
        t_share_top=share_top,
        temporal_mac_frac=t_macs / total,
        est_macs=est_macs,
    )


def flatten_spec(spec: ArchSpec) -> dict[str, Any]:
    """``{"stem.kind": ..., "stage2.block1.kind": ..., "...t_kernel": ..., "...inflate": ...}``."""
    out: dict[str, Any] = {"stem.kind": spec.stem.kind, "stem.t_kernel": spec.stem.t_kernel,
                           "block_type": spec.block_type, "clip_len": spec.clip_len,
                           "crop_size": spec.crop_size, "num_classes": spec.num_classes}
    for path, block in spec.block_paths():
        out[f"{path}.kind"] = block.kind
        out[f"{path}.t_kernel"] = block.t_kernel
        out[f"{path}.t_stride"] = block.t_stride
        out[f"{path}.inflate"] = block.inflate
    return out


def parse_spec(spec_json: str) -> ArchSpec:
    """``ArchSpec.from_json`` for stored specs, through the dataclass constructors directly.

    The constructors validate as ``from_json`` does, minus its unknown-key scan, which costs a
    third of the parse; a spec with an unknown key fails with ``TypeError`` here, and is then
    parsed by ``from_json`` again for its error message naming the key.
    """
    data = json.loads(spec_json)
    try:
        stages = tuple(StageSpec(width=s["width"], blocks=tuple(BlockSpec(**b)
                                                                for b in s["blocks"]))
                       for s in data.pop("stages"))
        return ArchSpec(stem=StemSpec(**data.pop("stem")), stages=stages, **data)
    except (TypeError, KeyError):
        return ArchSpec.from_json(spec_json)


@functools.lru_cache(maxsize=65_536)
def arch_features(spec_json: str, per_layer_json: str | None = None) -> dict[str, Any]:
    """Flattened spec plus placement descriptors of one stored arch (cached per spec text)."""
    spec = parse_spec(spec_json)
    placement = describe(spec, per_layer_json)
    out = flatten_spec(spec)
    out.update({
        "family": placement.family, "n_temporal": placement.n_temporal, "t_com": placement.t_com,
        "t_share_bottom": placement.t_share_bottom, "t_share_top": placement.t_share_top,
        "temporal_mac_frac": placement.temporal_mac_frac,
    })
    return out
