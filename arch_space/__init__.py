"""vidarch's architecture space: specs, conv kinds, the builder, presets, inflation and cost.

``arch_space.spec``, ``arch_space.kinds``, ``arch_space.presets`` and ``arch_space.space`` need
no torch; the names that do (``build_network``, ``measure_cost``, inflation) are loaded on first
use, so analysis and the dashboard can read specs without importing torch.
"""

from __future__ import annotations

from typing import Any

from arch_space.kinds import KindFacts, register_kind, unregister_kind
from arch_space.presets import (
    bottom_heavy,
    list_presets,
    only_stage,
    per_stage,
    preset,
    register_preset,
    top_heavy,
    uniform,
)
from arch_space.spec import ArchSpec, BlockSpec, SpecError, StageSpec, StemSpec

_LAZY = {
    "build_network": "arch_space.builder",
    "VideoResNet": "arch_space.builder",
    "CONV_KINDS": "arch_space.ops",
    "measure_cost": "arch_space.cost",
    "estimate_macs": "arch_space.estimate",
    "scale_to_macs": "arch_space.scaling",
    "inflate_state_dict": "arch_space.inflate",
    "build_inflated": "arch_space.inflate",
    "SearchSpace": "arch_space.space",
}

__all__ = [
    "ArchSpec", "BlockSpec", "KindFacts", "SpecError", "StageSpec", "StemSpec", "bottom_heavy",
    "list_presets", "only_stage", "per_stage", "preset", "register_kind", "register_preset",
    "top_heavy", "uniform", "unregister_kind", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'arch_space' has no attribute {name!r}")
