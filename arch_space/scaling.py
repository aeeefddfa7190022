"""Iso-MAC arms: scale a spec's widths so that placements compare at equal compute.

Moving 3D convolutions from the top to the bottom of a network changes its MACs a lot (3D convs
on large, early feature maps are expensive). To separate *where* temporal modelling sits from
*how much compute* the network gets, S3D (Xie et al. 2018) compared placements at matched FLOPs.
``scale_to_macs`` does that for any spec: it multiplies every stage width and the stem width by
one common factor, rounds each to a multiple of ``multiple``, and picks the factor whose MACs
come closest to the target; when rounding leaves it more than a quarter of ``tol`` away, single
widths then move by one ``multiple`` step (as few as will do). Iso-parameter arms need no helper: the (2+1)D mid-width rule
(Tran et al. 2018) already matches a 3D conv's parameters.

Torch-free: MACs come from ``estimate.estimate_macs``.
"""

from __future__ import annotations

import dataclasses
import itertools

from arch_space.estimate import estimate_macs
from arch_space.spec import ArchSpec, StageSpec


def scale_widths(spec: ArchSpec, factor: float, *, multiple: int = 8) -> ArchSpec:
    """``spec`` with stage widths, stem width and (2+1)D stem mid width times ``factor``.

    Each width is rounded to the nearest multiple of ``multiple`` (at least ``multiple``).
    """
    if factor <= 0:
        raise ValueError(f"factor: must be positive, got {factor}")

    def scaled(width: int) -> int:
        return max(multiple, round(width * factor / multiple) * multiple)

    stages = tuple(StageSpec(scaled(s.width), s.blocks) for s in spec.stages)
    stem = dataclasses.replace(spec.stem, width=scaled(spec.stem.width),
                               mid_width=max(1, round(spec.stem.mid_width * factor)))
    return spec.replace(stem=stem, stages=stages)


def _breakpoints(widths: list[int], lo: float, hi: float, multiple: int) -> list[float]:
    """Factors in [lo, hi] where some rounded width changes (MACs are a step function of it)."""
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
           clip: tuple[int, int, int] | None) -> tuple[ArchSpec, int]:
    """Move the stem and stage widths by one step of -multiple, 0 or +multiple each to bring
    MACs closer.

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
        stem = dataclasses.replace(spec.stem, width=spec.stem.width + steps[0])
        stages = tuple(StageSpec(s.width + d, s.blocks)
                       for s, d in zip(spec.stages, steps[1:], strict=True))
        candidate = spec.replace(stem=stem, stages=stages)
        cand_err = abs(estimate_macs(candidate, clip) - target)
        outside = cand_err > good_enough
        moved = sum(d != 0 for d in steps)
        # within reach: fewest moves, then closest; out of reach: closest
        rank = (outside, moved if not outside else 0, cand_err)
        if rank < best[:3]:
            best = (outside, moved if not outside else 0, cand_err, candidate)
    return best[3], best[2]


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
    if target_macs <= 0:
        raise ValueError(f"target_macs: must be positive, got {target_macs}")
    current = estimate_macs(spec, clip)
    if abs(current - target_macs) <= tol * target_macs:
        return spec
    ideal = (target_macs / current) ** 0.5  # MACs ~ width^2 in the body of the network
    widths = [spec.stem.width, *(s.width for s in spec.stages)]
    best, best_err = spec, abs(current - target_macs)
    for factor in _breakpoints(widths, ideal / 2, ideal * 2, multiple):
        # the rounding is constant on each side of a breakpoint: try just above and below it
        for f in (factor * (1 - 1e-9), factor * (1 + 1e-9)):
            candidate = scale_widths(spec, f, multiple=multiple)
            err = abs(estimate_macs(candidate, clip) - target_macs)
            if err < best_err:
                best, best_err = candidate, err
    if refine and best_err > tol * target_macs / 4:
        best, best_err = _nudge(best, target_macs, best_err, tol * target_macs / 4, multiple,
                                clip)
    if best_err > tol * target_macs:
        got = estimate_macs(best, clip)
        raise ValueError(f"target_macs: closest width scaling gives {got / 1e9:.3f} GMAC, "
                         f"{best_err / target_macs:.1%} from the target {target_macs / 1e9:.3f} "
                         f"GMAC (tol {tol:.1%}); try a smaller `multiple`")
    return best
