"""The exact 2-D hypervolume against a brute-force area count, and its reference point."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from search.hypervolume import Reference, hypervolume_2d, pareto_2d


def _brute_force(points: list[tuple[float, float]], acc_ref: float, cost_ref: float) -> float:
    """Area dominated, by summing the cells of the grid the coordinates span."""
    accs = sorted({acc_ref, *(a for a, _ in points if a > acc_ref)})
    costs = sorted({cost_ref, *(c for _, c in points if c < cost_ref)})
    area = 0.0
    for a0, a1 in itertools.pairwise(accs):
        for c0, c1 in itertools.pairwise(costs):
            # the cell (a0..a1) x (c0..c1) is dominated when one point is above and left of it
            if any(a >= a1 and c <= c0 for a, c in points):
                area += (a1 - a0) * (c1 - c0)
    return area


def test_a_single_point_spans_its_box() -> None:
    assert hypervolume_2d([(0.8, 2.0)], 0.5, 10.0) == pytest.approx(0.3 * 8.0)


def test_known_staircase() -> None:
    # a front of three networks: cheap-weak, mid, costly-strong; one dominated point adds nothing
    points = [(0.6, 1.0), (0.7, 2.0), (0.9, 4.0), (0.65, 3.0)]
    expected = (2.0 - 1.0) * 0.6 + (4.0 - 2.0) * 0.7 + (5.0 - 4.0) * 0.9
    assert hypervolume_2d(points, 0.0, 5.0) == pytest.approx(expected)
    assert pareto_2d(points) == [(0.6, 1.0), (0.7, 2.0), (0.9, 4.0)]


def test_points_beyond_the_reference_add_nothing() -> None:
    assert hypervolume_2d([(0.4, 1.0), (0.9, 11.0)], 0.5, 10.0) == 0.0
    assert hypervolume_2d([], 0.5, 10.0) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = [(float(a), float(c)) for a, c in zip(rng.uniform(0.2, 0.9, 25),
                                                   rng.integers(1, 40, 25), strict=True)]
    assert hypervolume_2d(points, 0.3, 35.0) == pytest.approx(_brute_force(points, 0.3, 35.0))


def test_reference_normalises_the_exhaustive_front_below_one() -> None:
    accs, costs = [0.5, 0.6, 0.8, 0.7], [1.0, 2.0, 5.0, 6.0]
    ref = Reference.of(accs, costs)
    assert ref.acc == pytest.approx(0.5 - 0.03) and ref.cost == pytest.approx(6.5)
    every = ref.normalised(zip(accs, costs, strict=True))
    assert 0 < every < 1
    # a subset never beats the whole set; the extreme networks still add area
    assert ref.normalised([(0.8, 5.0)]) < every
    assert ref.normalised([(0.5, 1.0), (0.8, 5.0)]) > ref.normalised([(0.8, 5.0)])
    assert ref.normalised([(max(accs), min(costs))]) == pytest.approx(1.0)
