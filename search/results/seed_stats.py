"""Seed statistics every reader shares: t intervals, paired contrasts, Holm, Pareto masks.

Torch-free and pandas-free, so that the CLI summary (``search.summary``) and ``analysis`` use the
same code rather than two copies. Seeds are the replicates: an interval over per-seed means
uses Student's t with n - 1 degrees of freedom, which has nominal coverage for normal data at
any n (a percentile bootstrap over 3-5 seed means covers the true mean only 75-83% of the time).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from search.results.metrics import CONFIDENCE

CI_METHOD = "student-t"  # the name every table reports next to its interval
NORMAL_ABOVE = 100_000  # units above this: t and normal quantiles agree; skip scipy's t


def t_half_width(std: Any, n: Any, confidence: float = CONFIDENCE) -> Any:
    """Half-width of the Student-t interval of a mean: t_{n-1} * std / sqrt(n) (NaN for n < 2).

    Vectorised over numpy arrays or pandas Series of ``std`` and ``n`` (thousands of groups).
    """
    n_arr = np.asarray(n, dtype=float)
    dof = np.where(n_arr > 1, n_arr - 1, np.nan)
    quantile = np.where(n_arr > NORMAL_ABOVE, sps.norm.ppf(0.5 + confidence / 2),
                        sps.t.ppf(0.5 + confidence / 2, dof))
    return quantile * std / np.sqrt(n_arr)


Bounds = tuple[float, float]
UNBOUNDED: Bounds = (-math.inf, math.inf)


def mean_ci(units: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE,
            bounds: Bounds = UNBOUNDED) -> tuple[float, float]:
    """Student-t interval of the mean of ``units`` (per-seed means); NaNs below two units.

    With identical units the interval is the point itself (zero spread is what was seen). The
    interval is clipped to ``bounds``, the range the mean can take (``search.results.metrics.bounds``:
    [0, 1] for an accuracy), which only removes values the mean cannot have.
    """
    return mean_interval(units, confidence, bounds)[1:]


def mean_interval(units: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE,
                  bounds: Bounds = UNBOUNDED) -> tuple[float, float, float]:
    """``(mean, low, high)``: ``mean_ci`` with the mean (NaN without finite units)."""
    values = np.asarray(units, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    half = _quantile(values.size, confidence) * float(values.std(ddof=1)) / math.sqrt(values.size)
    low, high = clip_interval(mean - half, mean + half, bounds)
    return mean, low, high


def clip_interval(low: Any, high: Any, bounds: Bounds = UNBOUNDED) -> tuple[Any, Any]:
    """``low`` and ``high`` (floats or arrays) clipped to ``bounds``; NaN stays NaN."""
    lo, hi = bounds
    if isinstance(low, float | int) and isinstance(high, float | int):
        return (min(max(float(low), lo), hi) if math.isfinite(low) else low,
                min(max(float(high), lo), hi) if math.isfinite(high) else high)
    return np.clip(low, lo, hi), np.clip(high, lo, hi)


@functools.lru_cache(maxsize=256)
def _quantile(n: int, confidence: float) -> float:
    """The two-sided t (normal above ``NORMAL_ABOVE``) quantile for a mean of ``n`` units."""
    return float(t_half_width(1.0, n, confidence) * math.sqrt(n))


def wilcoxon_floor(n_pairs: int) -> float:
    """The smallest two-sided p the exact signed-rank test can give with ``n_pairs``: 2 / 2^n.

    With 3 seeds it is 0.25, with 5 seeds 0.0625: below 6 seeds Wilcoxon can never reach 0.05,
    whatever the data.
    """
    return 2.0 / 2 ** n_pairs if n_pairs >= 1 else math.nan


def paired_contrast(diffs: Sequence[float] | np.ndarray,
                    confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Statistics of per-seed differences (arm A - arm B, one per shared seed).

    Returns ``n_pairs``, ``delta`` (mean difference), ``ci_low``/``ci_high`` (t interval),
    ``p_t`` (paired t-test, two-sided), ``p_wilcoxon`` (exact signed-rank, two-sided) and
    ``wilcoxon_floor``. p-values are NaN when a test is undefined: fewer than two pairs, or
    differences without spread (identical across seeds).
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    out: dict[str, Any] = {"n_pairs": n, "delta": float(d.mean()) if n else math.nan,
                           "ci_low": math.nan, "ci_high": math.nan, "p_t": math.nan,
                           "p_wilcoxon": math.nan, "wilcoxon_floor": wilcoxon_floor(n)}
    if n < 2:
        return out
    if np.ptp(d) > 0:
        out["ci_low"], out["ci_high"] = mean_ci(d, confidence)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["p_t"] = float(sps.ttest_1samp(d, 0.0).pvalue)
    if np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["p_wilcoxon"] = float(sps.wilcoxon(d).pvalue)
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN, not counted).

    The adjusted p of the i-th smallest of m is max over j <= i of min(1, (m - j + 1) p_(j)):
    it controls the family-wise error rate at any alpha, without assuming independence.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of non-dominated rows of ``values`` (n, k), every column minimised.

    A row is dominated when another is no worse in every column and better in one; exact
    duplicates of a front point are all kept.
    """
    n, k = values.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    if k == 1:
        return values[:, 0] == values[:, 0].min()
    if k == 2:  # O(n log n): sort by the first objective, sweep the second
        order = np.lexsort((values[:, 1], values[:, 0]))
        first, second = values[order, 0], values[order, 1]
        keep = np.zeros(n, dtype=bool)
        best1, best0 = math.inf, math.nan
        for i in range(n):
            if second[i] < best1:
                keep[i], best1, best0 = True, second[i], first[i]
            elif second[i] == best1 and first[i] == best0:
                keep[i] = True
        mask = np.zeros(n, dtype=bool)
        mask[order] = keep
        return mask
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, 1024):  # O(n^2) in chunks for 3+ objectives
        block = values[start:start + 1024, None, :]
        no_worse = np.all(values[None, :, :] <= block, axis=2)  # (chunk, n): j no worse than i
        better = np.any(values[None, :, :] < block, axis=2)
        mask[start:start + 1024] = ~np.any(no_worse & better, axis=1)
    return mask
