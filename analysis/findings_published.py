"""Published orderings the shipped studies speak to, and vidarch's rank agreement with them.

Each ``Ordering`` ranks vidarch's arms (network labels or design families) as a paper ranks
the networks they stand for, with its source named. Ranks are tiers: 1 is best, arms a source
does not separate share a rank (Spearman's ρ uses average ranks for ties). Only orderings go in
here, no published accuracies: the numbers could not be checked against the papers while this
was written, and an ordering is what a rank correlation needs. Where a tier groups networks the
paper does rank, the comment says why (the within-tier order was not certain).

``spearman`` correlates vidarch's arm means with an ordering over the arms both have, with an
exact permutation p value up to 8 arms (the t approximation above), and says when the number
of arms is too small for any ordering to reach p < 0.05.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from search.results import metrics

ALPHA = 0.05
EXACT_UP_TO = 8  # arms: 8! = 40,320 permutations, enumerated


@dataclass(frozen=True)
class Ordering:
    """A published ordering of networks, keyed by vidarch's names for them."""

    key: str
    source: str  # the paper and the table or figure
    setting: str  # dataset, metric, backbone of the published numbers
    column: str  # "network" (vidarch's label) or "family" (its design family)
    ranks: Mapping[str, float]  # vidarch name -> published rank (1 = best; ties share a rank)
    names: Mapping[str, str] = field(default_factory=dict)  # vidarch name -> published name
    note: str = ""  # what the tiers leave out


ORDERINGS: tuple[Ordering, ...] = (
    # Table 2 of Tran et al. 2018 (Kinetics, trained from scratch, ResNet-18, clip accuracy at
    # 8 frames): R(2+1)D best, the MCx above the rMCx and R3D, the 2D nets last. The order
    # inside the MCx tier and inside the rMCx/R3D tier is left as ties: the per-network
    # numbers are within about a point of each other and were not checked here.
    Ordering("tran2018_table2",
             "Tran et al. 2018, *A Closer Look at Spatiotemporal Convolutions*, Table 2",
             "Kinetics, clip accuracy at 8 frames, ResNet-18 from scratch", "network",
             {"r2plus1d": 1, "mc2": 2, "mc3": 2, "mc4": 2, "mc5": 2, "rmc2": 3, "rmc3": 3,
              "rmc4": 3, "rmc5": 3, "r3d": 3, "f_r2d": 4},
             {"r2plus1d": "R(2+1)D", "mc2": "MC2", "mc3": "MC3", "mc4": "MC4", "mc5": "MC5",
              "rmc2": "rMC2", "rmc3": "rMC3", "rmc4": "rMC4", "rmc5": "rMC5", "r3d": "R3D",
              "f_r2d": "f-R2D"},
             "tiers: R(2+1)D > MCx > rMCx, R3D > f-R2D; order within a tier not used"),
    # Xie et al. 2018 (S3D), Sec. 4 ("bottom-heavy" vs "top-heavy" I3D): the top-heavy nets are
    # both faster and more accurate.
    Ordering("s3d2018_placement",
             "Xie et al. 2018, *Rethinking Spatiotemporal Feature Learning* (S3D), Sec. 4",
             "Kinetics / Something-something, top-1, Inception (I3D) backbone", "family",
             {"top-heavy": 1, "bottom-heavy": 2}),
    # Qiu et al. 2017 (P3D), comparison of the P3D ResNet variants on UCF101: the A->B->C
    # cycle best, then P3D-A, P3D-C, P3D-B. (Ordering only; the accuracies were not checked.)
    Ordering("qiu2017_p3d",
             "Qiu et al. 2017, *Learning Spatio-Temporal Representation with Pseudo-3D "
             "Residual Networks*, P3D variants", "UCF101, clip accuracy, ResNet-152 backbone",
             "network", {"p3d_mix": 1, "p3d_a": 2, "p3d_c": 3, "p3d_b": 4},
             {"p3d_mix": "P3D ResNet (A→B→C)", "p3d_a": "P3D-A", "p3d_c": "P3D-C",
              "p3d_b": "P3D-B"}),
    # Carreira & Zisserman 2017 (I3D): ImageNet-inflated beats from-scratch training.
    Ordering("i3d2017_inflation",
             "Carreira & Zisserman 2017, *Quo Vadis, Action Recognition?* (I3D), "
             "ImageNet-inflated vs scratch", "Kinetics / UCF101 / HMDB51, I3D (RGB)", "family",
             {"inflated": 1, "scratch": 2}),
    # Varol et al. 2018 (LTC): accuracy grows with the input length.
    Ordering("varol2018_ltc",
             "Varol et al. 2018, *Long-term Temporal Convolutions*, clip length", "UCF101 / "
             "HMDB51, longer inputs better", "network",
             {"3d_t5_T16": 1, "3d_t5_T12": 2, "3d_t5_T10": 3}),
    # Tran et al. 2018, Sec. 3.5 / Fig. 4: R(2+1)D above R3D at equal parameters.
    Ordering("tran2018_factorization", "Tran et al. 2018, Sec. 3.5 and Fig. 4",
             "Kinetics, R(2+1)D vs R3D at equal parameters", "network",
             {"r2plus1d": 1, "r3d": 2}, {"r2plus1d": "R(2+1)D", "r3d": "R3D"}),
)
PUBLISHED: dict[str, Ordering] = {o.key: o for o in ORDERINGS}


def _exact(x: np.ndarray, y: np.ndarray, rho: float) -> tuple[float, float]:
    """(p, smallest attainable p): two-sided permutation test of Spearman's ρ, enumerated."""
    rx, ry = sps.rankdata(x), sps.rankdata(y)
    perms = np.array(list(itertools.permutations(range(len(x)))))
    px = rx[perms]  # (n!, n): every reordering of x's ranks against y's
    pc = px - px.mean(axis=1, keepdims=True)
    yc = ry - ry.mean()
    denom = np.sqrt((pc ** 2).sum(axis=1) * (yc ** 2).sum())
    rhos = np.abs((pc * yc).sum(axis=1) / np.where(denom > 0, denom, np.nan))
    top = np.nanmax(rhos)
    return (float(np.mean(rhos >= abs(rho) - 1e-12)),
            float(np.mean(rhos >= top - 1e-12)))


def spearman(means: Mapping[str, float], ordering: Ordering,
             mode: str = metrics.MAX) -> dict[str, Any]:
    """Spearman's ρ between vidarch's arm means and ``ordering`` over the arms both have.

    Returns ``n`` (arms compared), ``rho`` (positive: vidarch agrees with the source),
    ``p`` (two-sided; exact permutation up to ``EXACT_UP_TO`` arms, else the t approximation),
    ``min_p`` (the smallest p any ordering of these arms could give), ``decidable`` (min_p
    below ``ALPHA``), ``method`` and ``arms`` (the names compared, best published first).
    """
    arms = sorted((k for k in ordering.ranks if k in means and math.isfinite(means[k])),
                  key=lambda k: (ordering.ranks[k], k))
    out: dict[str, Any] = {"n": len(arms), "rho": math.nan, "p": math.nan, "min_p": 1.0,
                           "decidable": False, "method": "", "arms": arms}
    sign = 1.0 if mode == metrics.MAX else -1.0
    x = np.array([sign * means[k] for k in arms], dtype=float)
    y = np.array([-float(ordering.ranks[k]) for k in arms])  # higher = better, like x
    if len(arms) < 2 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return out
    rho = float(sps.spearmanr(x, y).statistic)
    out["rho"] = rho
    if len(arms) <= EXACT_UP_TO:
        out["p"], out["min_p"] = _exact(x, y, rho)
        out["method"] = "exact permutation"
    else:
        out["p"], out["min_p"] = float(sps.spearmanr(x, y).pvalue), 0.0
        out["method"] = "t approximation"
    out["decidable"] = out["min_p"] < ALPHA
    return out


def spearman_sentence(result: Mapping[str, Any], ordering: Ordering) -> str:
    """One line: ρ, n and p, or why n is too small to decide."""
    n = result["n"]
    if n < 2 or not math.isfinite(result["rho"]):
        return (f"Spearman ρ against {ordering.source}: not computable ({n} arm(s) in common, "
                f"or no spread in one of the orderings).")
    text = (f"Spearman ρ = {result['rho']:+.2f} over {n} arms against {ordering.source} "
            f"(p = {result['p']:.2g}, {result['method']})")
    if not result["decidable"]:
        return (text + f": **too few arms to decide** — with {n} arms (and these ties) no "
                f"ordering can reach p < {ALPHA} (smallest attainable p = "
                f"{result['min_p']:.2g}).")
    verdict = ("agrees with the published ordering" if result["rho"] > 0 and result["p"] < ALPHA
               else "disagrees with it" if result["rho"] < 0 and result["p"] < ALPHA
               else "neither agrees nor disagrees at p < 0.05")
    return f"{text}: vidarch's ordering {verdict}."
