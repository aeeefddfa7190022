"""Iso-cost arms: scale a spec's widths so that placements compare at equal MACs or parameters.

Moving 3D convolutions from the top to the bottom of a network changes its MACs a lot (3D convs
on large, early feature maps are expensive). To separate *where* temporal modelling sits from
*how much compute* the network gets, S3D (Xie et al. 2018) compared placements at matched FLOPs.
``scale_to_macs`` does that for any spec, ``scale_to_params`` the same at matched parameters: it
multiplies every stage width and the stem width by one common factor, rounds each to a multiple
of ``multiple``, and picks the factor whose cost comes closest to the target; when rounding
leaves it more than a quarter of ``tol`` away, single widths then move by one ``multiple`` step
(as few as will do). A (2+1)D stem's mid width follows eq. (1) of Tran et al. 2018 for its new
width (``spec.stem_mid_width``).

Torch-free: costs come from ``estimate.estimate_macs`` / ``estimate.estimate_params``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

from arch_space.estimate import estimate_macs, estimate_params
from arch_space.kinds import find_kind
from arch_space.spec import ArchSpec, StageSpec, StemSpec

Cost = Callable[[ArchSpec], int]
# Common-factor results that single width steps start from, closest first.
NUDGE_STARTS = 4


def _stem(stem: StemSpec, width: int, factor: float = 1.0) -> StemSpec:
    """``stem`` at ``width``; a (2+1)D stem's mid width is derived again (eq. 1) for it.

    Other stems have no mid conv; their inert ``mid_width`` is scaled by ``factor`` as it always
    was, so scaled specs stored before keep their arch_ids.
    """
    facts = find_kind(stem.kind)
    if facts is not None and facts.uses_mid:
        return dataclasses.replace(stem, width=width, mid_width=None)
    inert = stem.mid_width if factor == 1.0 else max(1, round(stem.mid_width * factor))
    return dataclasses.replace(stem, width=width, mid_width=inert)


def scale_widths(spec: ArchSpec, factor: float, *, multiple: int = 8) -> ArchSpec:
    """``spec`` with stage widths and stem width times ``factor`` (a (2+1)D stem's mid width
    follows eq. (1) for the new width).

    Each width is rounded to the nearest multiple of ``multiple`` (at least ``multiple``).
    """
    if factor <= 0:
        raise ValueError(f"factor: must be positive, got {factor}")

    def scaled(width: int) -> int:
        return max(multiple, round(width * factor / multiple) * multiple)

    stages = tuple(StageSpec(scaled(s.width), s.blocks) for s in spec.stages)
    return spec.replace(stem=_stem(spec.stem, scaled(spec.stem.width), factor), stages=stages)


def width_scale(base: ArchSpec, scaled: ArchSpec) -> float:
    """The common width factor of ``scaled`` over ``base``: the geometric mean of the stem's and
    every stage's width ratio (1.0 for the same widths)."""
    pairs = [(base.stem.width, scaled.stem.width),
             *((a.width, b.width) for a, b in zip(base.stages, scaled.stages, strict=True))]
    return math.exp(sum(math.log(new / old) for old, new in pairs) / len(pairs))


def _breakpoints(widths: list[int], lo: float, hi: float, multiple: int) -> list[float]:
    """Factors in [lo, hi] where some rounded width changes (cost is a step function of it)."""
    points = {lo, hi}
    for width in widths:
        k_lo = int(lo * width / multiple - 0.5)
        k_hi = int(hi * width / multiple + 0.5) + 1
        for k in range(max(k_lo, 0), k_hi + 1):
            factor = (k + 0.5) * multiple / width
            if lo < factor < hi:
                points.add(factor)
    return sorted(points)


def _nudge(spec: ArchSpec, target: int, err: int, good_enough: float, multiple: int,
           cost: Cost) -> tuple[ArchSpec, int]:
    """Move the stem and stage widths by one step of -multiple, 0 or +multiple each to bring
    the cost closer.

    The stem and the first stage dominate a video ResNet's MACs, so a common factor moves MACs
    in coarse steps; single steps on the stem or other stages fill the gaps. Of the
    3^(stages + 1) combinations, the one with the fewest moved widths within ``good_enough``
    wins (or else the closest).
    """
    if len(spec.stages) > 5:  # 3^6 = 729 candidates at most
        return spec, err
    widths = [spec.stem.width, *(s.width for s in spec.stages)]
    best = (err > good_enough, 0, err, spec)
    for steps in itertools.product((0, -multiple, multiple), repeat=len(widths)):
        if not any(steps) or any(w + d < multiple for w, d in zip(widths, steps, strict=True)):
            continue
        stages = tuple(StageSpec(s.width + d, s.blocks)
                       for s, d in zip(spec.stages, steps[1:], strict=True))
        candidate = spec.replace(stem=_stem(spec.stem, spec.stem.width + steps[0]),
                                 stages=stages)
        cand_err = abs(cost(candidate) - target)
        outside = cand_err > good_enough
        moved = sum(d != 0 for d in steps)
        # within reach: fewest moves, then closest; out of reach: closest
        rank = (outside, moved if not outside else 0, cand_err)
        if rank < best[:3]:
            best = (outside, moved if not outside else 0, cand_err, candidate)
    return best[3], best[2]


def format_count(n: float) -> str:
    """``40696553472`` -> ``"40.70G"``."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _scale_to(spec: ArchSpec, target: int, cost: Cost, key: str, unit: str, *,
              tol: float, multiple: int, refine: bool) -> ArchSpec:
    """Scale ``spec``'s widths by a common factor (then single steps) so ``cost`` meets
    ``target``; ``key`` and ``unit`` word the error."""
    if target <= 0:
        raise ValueError(f"{key}: must be positive, got {target}")
    if multiple < 1:
        raise ValueError(f"multiple: must be >= 1, got {multiple}")
    current = cost(spec)
    if abs(current - target) <= tol * target:
        return spec
    ideal = (target / current) ** 0.5  # cost ~ width^2 in the body of the network
    widths = [spec.stem.width, *(s.width for s in spec.stages)]
    found = {spec: abs(current - target)}
    for factor in _breakpoints(widths, ideal / 2, ideal * 2, multiple):
        # the rounding is constant on each side of a breakpoint: try just above and below it
        for f in (factor * (1 - 1e-9), factor * (1 + 1e-9)):
            candidate = scale_widths(spec, f, multiple=multiple)
            if candidate not in found:
                found[candidate] = abs(cost(candidate) - target)
    ranked = sorted(found.items(), key=lambda item: item[1])
    best, best_err = ranked[0]
    good_enough = tol * target / 4
    if refine and best_err > good_enough:
        # narrow stems make the common factor's steps coarse: single steps from the closest few
        # factors (closest first) reach what one factor cannot
        for start, start_err in ranked[:NUDGE_STARTS]:
            nudged, err = _nudge(start, target, start_err, good_enough, multiple, cost)
            if err < best_err:
                best, best_err = nudged, err
            if best_err <= good_enough:
                break
    if best_err > tol * target:
        raise ValueError(f"{key}: closest width scaling gives {format_count(cost(best))} {unit}, "
                         f"{best_err / target:.1%} from the target {format_count(target)} {unit} "
                         f"(tol {tol:.1%}); try a smaller `multiple`")
    return best


def scale_to_macs(spec: ArchSpec, target_macs: int, *, tol: float = 0.02, multiple: int = 8,
                  clip: tuple[int, int, int] | None = None, refine: bool = True) -> ArchSpec:
    """Scale ``spec``'s widths by a common factor so its MACs meet ``target_macs``.

    MACs grow monotonically (about quadratically) with the factor and change only where a
    rounded width changes, so every such breakpoint near the ideal factor is tried and the
    closest result kept. Because the stem and first stage dominate the MACs, those steps are
    coarse; ``refine`` then moves single widths by one ``multiple`` step each.

    Args:
        spec: the architecture (its blocks, kinds and strides are kept).
        target_macs: conv + linear MACs to meet, at ``clip`` (see ``cost.estimate_macs``).
        tol: largest accepted relative error ``|macs - target| / target``.
        multiple: every width is a multiple of this (8 suits tensor cores; 4 or 1 gets closer).
        clip: (T, H, W) the target is stated at; default the spec's own.
        refine: after the common factor, move the stem and stage widths by one ±``multiple``
            step each (as few as will do) when that brings MACs closer; False keeps one factor.

    Returns:
        The scaled spec (``spec`` itself when it already meets the target within ``tol``).

    Raises:
        ValueError: when no factor comes within ``tol``; the message gives the closest MACs.
    """
    return _scale_to(spec, target_macs, lambda s: estimate_macs(s, clip), "target_macs",
                     "MACs", tol=tol, multiple=multiple, refine=refine)


def scale_to_params(spec: ArchSpec, target_params: int, *, tol: float = 0.02,
                    multiple: int = 8, refine: bool = True) -> ArchSpec:
    """Scale ``spec``'s widths by a common factor so its parameters meet ``target_params``.

    The twin of ``scale_to_macs`` (same search, same arguments) on ``estimate_params``: conv
    weights, batch-norm pairs and the classifier, as fvcore counts them.

    Raises:
        ValueError: when no factor comes within ``tol``; the message gives the closest count.
    """
    return _scale_to(spec, target_params, estimate_params, "target_params", "params",
                     tol=tol, multiple=multiple, refine=refine)
