"""An exhaustive grid over a search space: every point with the parameters that sample it.

``design=space`` with ``sampler=grid`` trains every feasible point of ``study.space`` once per
seed (a tabular benchmark, ``study=bench_video``). Each point is a grid cell whose label spells
its per-position choices; ``space_points`` also gives the Optuna parameters
(``stem.kind``, ``stage2.kind``, ``stage2.t_kernel`` ...) under which ``SearchSpace.sample``
proposes that point, so a replayed searcher and a stored grid trial meet on the same arch_id.

Torch-free (design layer): specs come from ``arch_space.space``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arch_space.space import SearchSpace, Slot
from arch_space.spec import ArchSpec, SpecError


@dataclass(frozen=True)
class SpacePoint:
    """One feasible point of a space."""

    params: Mapping[str, Any]  # what SearchSpace.sample suggests for it (Optuna names)
    label: str  # its per-position choices, bottom to top ("3d-2d-2plus1d-2d-3d")
    spec: ArchSpec  # the network
    n_temporal: int  # decisions that chose a temporal kind (the cell's family)


def _slot_params(slot: Slot, point: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``Slot.suggest`` asks for to get ``point`` (conditional ``t_kernel``)."""
    out: dict[str, Any] = {}
    for name, choices in slot.options.items():
        if name == "t_kernel" and not slot.temporal(point["kind"]):
            continue
        if len(choices) > 1:
            out[f"{slot.name}.{name}"] = point[name]
    return out


def _slot_label(slot: Slot, point: Mapping[str, Any]) -> str:
    """A short name of one decision: the kind, ``t5`` when the extent is a choice, ``+i``
    when inflation is."""
    text = str(point["kind"] or "-")
    if len(slot.options["t_kernel"]) > 1 and slot.temporal(point["kind"]):
        text += f"t{point['t_kernel']}"
    if len(slot.options.get("inflate", ())) > 1 and point.get("inflate"):
        text += "+i"
    return text


def space_points(space: SearchSpace) -> list[SpacePoint]:
    """Every feasible, buildable point of ``space`` in a stable order, one per arch_id.

    Raises:
        SpecError: when the space is too large to enumerate or no point meets its budget
            (``SearchSpace.enumerate`` says which).
    """
    space.enumerate(feasible_only=True, skip_impossible=True)  # size and budget checks
    raw: list[tuple[dict[str, Any], str, ArchSpec, int]] = []
    if space.placements:
        for placement in space.placements:
            params = {"preset": placement.name} if len(space.placements) > 1 else {}
            raw.append((params, placement.name, space.spec_from_params(params), 0))
    else:
        for combo in itertools.product(*(list(s.points()) for s in space.slots)):
            params: dict[str, Any] = {}
            for slot, point in zip(space.slots, combo, strict=True):
                params.update(_slot_params(slot, point))
            try:
                spec = space.spec_from_params(params)
            except SpecError:
                continue  # not a valid network (e.g. a temporal stride on one frame)
            label = "-".join(_slot_label(s, p) for s, p in zip(space.slots, combo, strict=True))
            temporal = sum(s.temporal(p["kind"]) for s, p in zip(space.slots, combo,
                                                                 strict=True))
            raw.append((params, label, spec, temporal))
    points: dict[str, SpacePoint] = {}
    for params, label, spec, temporal in raw:
        if spec.arch_id in points or not space.is_feasible(spec)[0]:
            continue
        points[spec.arch_id] = SpacePoint(params=params, label=label, spec=spec,
                                          n_temporal=temporal)
    return list(points.values())


def space_cells(space: SearchSpace) -> list[Any]:
    """The grid cells (``search.design.studies.Cell``) of every point; family = temporal decisions."""
    from search.design.studies import Cell

    decisions = len(space.slots) if not space.placements else 0
    return [Cell(label=p.label, family=f"{p.n_temporal}/{decisions} temporal" if decisions
                 else "grid", spec=p.spec) for p in space_points(space)]
