"""Exact 2-D hypervolume of an (accuracy up, cost down) front, with a fixed reference point.

The hypervolume of a set of networks is the area of the (accuracy, cost) plane that at least
one of them dominates, bounded by a reference point (``acc_ref``, ``cost_ref``): a worse
accuracy and a larger cost than any network considered. One number that grows when a front
gains a better, a cheaper, or an in-between network; the standard way to compare
multi-objective searchers (Zitzler & Thiele 1998; Syne Tune and Optuna report it).

The reference point of a benchmark table (``Reference.of``) is fixed by the table, not by a
run: the worst mean accuracy and the largest cost of all its networks, each pushed out by 10 %
of its range, so that every network (also an extreme one) adds area. Areas are reported
normalised by the box of the ranges (``Reference.area``), which makes them unit-free: the
exhaustive front of a table scores the same whatever its MAC scale.

Torch-free and dependency-free (a sort and a sweep: O(n log n)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MARGIN = 0.1  # the reference point lies this fraction of each range beyond the worst value


def pareto_2d(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated ``(accuracy, cost)`` pairs (higher accuracy, lower cost), by cost.

    Along the returned front cost and accuracy both increase strictly; duplicates collapse.
    """
    front: list[tuple[float, float]] = []
    # cheapest first; at equal cost the most accurate first, so later equal-cost ones drop
    for acc, cost in sorted(points, key=lambda p: (p[1], -p[0])):
        if not front or acc > front[-1][0]:
            front.append((acc, cost))
    return front


def hypervolume_2d(points: Iterable[tuple[float, float]], acc_ref: float,
                   cost_ref: float) -> float:
    """Area dominated by ``points`` (``(accuracy, cost)``) and bounded by the reference point.

    A point with accuracy <= ``acc_ref`` or cost >= ``cost_ref`` adds nothing.
    """
    front = pareto_2d((a, c) for a, c in points if a > acc_ref and c < cost_ref)
    area = 0.0
    for i, (acc, cost) in enumerate(front):
        next_cost = front[i + 1][1] if i + 1 < len(front) else cost_ref
        area += (next_cost - cost) * (acc - acc_ref)  # the best accuracy up to next_cost
    return area


@dataclass(frozen=True)
class Reference:
    """A fixed reference point and the box that normalises areas to [0, 1]."""

    acc: float  # accuracy of the reference point (below every network's)
    cost: float  # cost of the reference point (above every network's)
    area: float  # (best accuracy - acc) x (cost - lowest cost): the area of a perfect front

    @classmethod
    def of(cls, accs: Sequence[float], costs: Sequence[float],
           margin: float = MARGIN) -> Reference:
        """The reference of a table: worst accuracy and largest cost pushed out by ``margin``
        of their ranges (a range of zero counts as 1 % of the value, so the box is never
        empty)."""
        if not accs or len(accs) != len(costs):
            raise ValueError("Reference.of: needs the same positive number of accuracies and "
                             "costs")
        lo_a, hi_a, lo_c, hi_c = min(accs), max(accs), min(costs), max(costs)
        span_a = (hi_a - lo_a) or max(abs(hi_a) * 0.01, 1e-9)
        span_c = (hi_c - lo_c) or max(abs(hi_c) * 0.01, 1e-9)
        acc, cost = lo_a - margin * span_a, hi_c + margin * span_c
        return cls(acc=acc, cost=cost, area=(hi_a - acc) * (cost - lo_c))

    def normalised(self, points: Iterable[tuple[float, float]]) -> float:
        """Hypervolume of ``points`` divided by ``area`` (1.0 only for a point that is both the
        best and the cheapest)."""
        return hypervolume_2d(points, self.acc, self.cost) / self.area
