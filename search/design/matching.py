"""Matched compute: every arm of a grid study scaled to one common MAC or parameter count.

The study protocol compares arms at equal cost (MACs or parameters within ``MATCH_TOL``) unless
the study declares that cost is the variable (``study.match: none``). Each arm's widths — stem
and stages — are scaled by one common factor (``arch_space.scaling``), so placements and kinds
keep their shape; the scaled widths live in the arm's spec (and so in its arch_id).

The target (``study.match_target``): a count ("15M", "1.2G"), an arm's label (that arm keeps its
widths), or by default the median arm's cost (``statistics.median_low``: the cost of an actual
arm, which then trains unchanged). Costs are the torch-free estimates at each arm's own clip,
equal to the fvcore counts the driver stores.

Torch-free; errors are ``MatchError`` whose message starts with the config key.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from arch_space.estimate import estimate_macs, estimate_params
from arch_space.scaling import format_count, scale_to_macs, scale_to_params, width_scale
from arch_space.spec import ArchSpec, SpecError

MATCH_TOL = 0.05  # every matched arm is within +-5% of the target (the protocol's promise)
MATCH_AIM = 0.01  # what the scaling aims for first; up to MATCH_TOL is accepted
COST_NAMES = {"macs": "MACs", "params": "params"}


class MatchError(ValueError):
    """The arms cannot be matched as configured; the message starts with the config key."""


@dataclass(frozen=True)
class MatchPlan:
    """How a study's arms were matched: the cost, its target and how the target was chosen."""

    mode: str  # "macs" or "params"
    target: int  # the common cost every arm meets within MATCH_TOL
    rule: str  # how the target was chosen, for people ("median arm 'mc2'", "study.match_target")
    multiple: int  # matched widths are multiples of this
    tol: float = MATCH_TOL


@dataclass(frozen=True)
class MatchedArm:
    """One arm after matching: its scaled spec and what the scaling did (stored with its trials)."""

    spec: ArchSpec
    info: dict[str, Any] = field(default_factory=dict)  # match, match_target, _scale, _deviation


def cost(spec: ArchSpec, mode: str) -> int:
    """The cost ``mode`` ("macs" at the spec's clip, or "params") of ``spec``, without torch."""
    return estimate_macs(spec) if mode == "macs" else estimate_params(spec)


def auto_multiple(specs: Sequence[ArchSpec]) -> int:
    """Width rounding for the arms: a power of two up to 8, at most 1/8 of the narrowest width,
    so rounding moves no width by more than ~6% (8-wide stems: 1; 64-wide nets: 8)."""
    narrowest = min(min(s.stem.width, *(st.width for st in s.stages)) for s in specs)
    return max(1, min(8, 2 ** math.floor(math.log2(max(narrowest, 8) / 8))))


def plan(mode: str, target: str | None, multiple: int | None,
         arms: Sequence[tuple[str, ArchSpec]]) -> MatchPlan:
    """Resolve the target and the width multiple of a match (``mode`` "macs" or "params")."""
    if multiple is not None and multiple < 1:
        raise MatchError(f"study.match_multiple: must be >= 1 (or null), got {multiple}")
    costs = {label: cost(spec, mode) for label, spec in arms}
    if target is None:
        value = statistics.median_low(costs.values())
        label = next(name for name, c in costs.items() if c == value)
        rule = f"median arm {label!r}"
    elif str(target) in costs:
        value, rule = costs[str(target)], f"arm {str(target)!r}"
    else:
        from arch_space.space import parse_count

        try:
            value = parse_count(target, "study.match_target")
        except SpecError as exc:
            raise MatchError(f"{exc} (or an arm's label: {', '.join(costs)})") from None
        rule = "study.match_target"
    return MatchPlan(mode, value, rule, multiple or auto_multiple([s for _, s in arms]))


def match_arms(match: MatchPlan, arms: Sequence[tuple[str, ArchSpec]]) -> list[MatchedArm]:
    """Scale every arm to ``match.target`` (closest first within MATCH_AIM, else MATCH_TOL).

    Raises:
        MatchError: naming the first arm that no width scaling brings within ``match.tol``.
    """
    scale = scale_to_macs if match.mode == "macs" else scale_to_params
    done: dict[ArchSpec, ArchSpec] = {}  # inflation's arms share networks
    out = []
    for label, spec in arms:
        if spec not in done:
            try:
                try:
                    done[spec] = scale(spec, match.target, tol=MATCH_AIM, multiple=match.multiple)
                except ValueError:
                    done[spec] = scale(spec, match.target, tol=match.tol,
                                       multiple=match.multiple)
            except (ValueError, SpecError) as exc:
                reason = str(exc).split(": ", 1)[-1].split("; try")[0]
                raise MatchError(f"study.match_target: arm {label!r} cannot be scaled to within "
                                 f"{match.tol:.0%} of {format_count(match.target)} "
                                 f"{COST_NAMES[match.mode]} ({match.rule}): {reason}; try "
                                 f"another target or study.match_multiple=1") from None
        matched = done[spec]
        achieved = cost(matched, match.mode)
        out.append(MatchedArm(matched, {
            "match": match.mode, "match_target": match.target,
            "match_scale": round(width_scale(spec, matched), 4),
            "match_deviation": round(achieved / match.target - 1, 4)}))
    return out

