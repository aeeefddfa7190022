"""Readable names and families of placements: which conv kind sits where, e.g.
``3d:s0-s1 | 2d:s2-s4``, and which placement family that is (``bottom-heavy``, ...).

A searched network has no preset name, and its arch_id (a hash) says nothing; its placement
does. The name lists runs of consecutive layers with the same conv kind (and temporal extent),
bottom to top: ``s0`` is the stem, ``s2`` the whole of stage 2, ``s2.1`` its first block when
the stage's blocks differ. An extent is shown where it is not 3 (``3d(t5)``). Torch-free.

This module is the one owner of the family rule (``family_of``): the driver stores a searched
network's family with it, ``analysis.placement`` describes stored specs with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from arch_space import kinds
from arch_space.spec import TEMPORAL_KINDS, ArchSpec

DEFAULT_T = 3  # extent left unsaid in names
HASH_LABEL = re.compile(r"arch-[0-9a-f]{8}")  # what searches stored before placement names

# Placement families, in the order figures and tables show them: no temporal layer, bottom- or
# top-heavy runs, the uniform families of the kinds table (``KindFacts.family``), then mixed.
# A live view: a registered kind's family appears here. TEMPORAL_STEM_KINDS leaves R2D's stem
# out: it collapses time at once (the paper counts R2D as a 2D network).
FAMILIES: Sequence[str] = kinds.TupleView(lambda: (
    kinds.TWO_D_FAMILY, "bottom-heavy", "top-heavy",
    *(f for f in kinds.KIND_FAMILIES if f != kinds.TWO_D_FAMILY), "mixed"))


def _kind_text(kind: str, t_kernel: int, temporal: bool) -> str:
    return f"{kind}(t{t_kernel})" if temporal and t_kernel != DEFAULT_T else kind


def runs_name(layers: Sequence[tuple[int, int, int, str, int, bool]]) -> str:
    """Name from layers ``(stage, block, n_blocks, kind, t_kernel, temporal)``, bottom to top;
    the stem is stage 0 with one block."""
    runs: list[list[tuple[int, int, int, str, int, bool]]] = []
    for layer in layers:
        key = _kind_text(layer[3], layer[4], layer[5])
        if runs and _kind_text(runs[-1][-1][3], runs[-1][-1][4], runs[-1][-1][5]) == key:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    parts = []
    for run in runs:
        first, last = run[0], run[-1]
        # a stage is named whole when the run covers all of its blocks
        whole_first = first[1] == 1 and (last[0] > first[0] or last[1] == first[2])
        whole_last = last[1] == last[2] and (first[0] < last[0] or first[1] == 1)
        start = f"s{first[0]}" if whole_first else f"s{first[0]}.{first[1]}"
        end = f"s{last[0]}" if whole_last else f"s{last[0]}.{last[1]}"
        where = start if start == end else f"{start}-{end}"
        parts.append(f"{_kind_text(first[3], first[4], first[5])}:{where}")
    return " | ".join(parts)


def placement_name(spec: ArchSpec) -> str:
    """The readable name of ``spec``'s placement (see the module docstring)."""
    layers = [(0, 1, 1, spec.stem.kind, spec.stem.t_kernel,
               spec.stem.kind in TEMPORAL_KINDS and spec.stem.t_kernel > 1)]
    for i, stage in enumerate(spec.stages, start=1):
        for j, block in enumerate(stage.blocks, start=1):
            layers.append((i, j, len(stage.blocks), block.kind, block.t_kernel,
                           block.is_temporal))
    return runs_name(layers)


def family_of(temporal: list[bool], block_kinds: list[str]) -> str:
    """Family label from which layers (stem first, then blocks) are temporal.

    - ``2D``: no layer mixes frames (R2D's stem collapses time at once and counts as 2D);
    - ``uniform 3D`` / ``uniform (2+1)D`` / any kind's ``KindFacts.family``: every layer, stem
      included, is temporal, and the blocks' kinds all have that family (all full 3D, or all
      factorized: (2+1)D, P3D-B/C); a 3D/factorized mix is ``mixed``;
    - ``bottom-heavy``: the temporal layers are a run starting at the stem (MCx: 3D up to some
      stage, 2D above);
    - ``top-heavy``: a run ending at the last block (rMCx: 2D up to some stage, 3D above; rMC2,
      with only a 2D stem, is top-heavy too);
    - ``mixed``: anything else.
    """
    n_t = sum(temporal)
    if n_t == 0:
        return kinds.TWO_D_FAMILY
    if all(temporal):
        families = {kinds.get_kind(kind).family for kind in block_kinds}
        if len(families) == 1 and kinds.TWO_D_FAMILY not in families:
            return families.pop()
        return "mixed"
    if all(temporal[:n_t]):
        return "bottom-heavy"
    if all(temporal[-n_t:]):
        return "top-heavy"
    return "mixed"


def placement_family(spec: ArchSpec) -> str:
    """The placement family of ``spec`` (``family_of`` over its stem and blocks)."""
    temporal = [spec.stem.kind in kinds.TEMPORAL_STEM_KINDS and spec.stem.t_kernel > 1]
    temporal += [block.is_temporal for _, block in spec.block_paths()]
    return family_of(temporal, [block.kind for _, block in spec.block_paths()])
