"""Readable names of placements: which conv kind sits where, e.g. ``3d:s0-s1 | 2d:s2-s4``.

A searched network has no preset name, and its arch_id (a hash) says nothing; its placement
does. The name lists runs of consecutive layers with the same conv kind (and temporal extent),
bottom to top: ``s0`` is the stem, ``s2`` the whole of stage 2, ``s2.1`` its first block when
the stage's blocks differ. An extent is shown where it is not 3 (``3d(t5)``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence

from arch_space.spec import TEMPORAL_KINDS, ArchSpec

DEFAULT_T = 3  # extent left unsaid in names


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
