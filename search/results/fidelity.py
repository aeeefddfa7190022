"""Does a short run predict the final ranking? The torch- and pandas-free core.

Rank agreement between networks' early and final values: Spearman's ρ and Kendall's τ-b with
BCa bootstrap intervals over networks (scipy.stats.bootstrap; Fisher-z for τ above
``KENDALL_BOOT_MAX`` networks), and the plain-language line the CLI summary
(``search.summary``) and the dashboard (through ``analysis.fidelity``) print. This is the premise
of ASHA's early stopping: if epoch k ranks the networks as the end does, cutting at k is safe.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

COLUMNS = ["n_networks", "spearman", "spearman_low", "spearman_high", "kendall", "kendall_low",
           "kendall_high", "same_best"]
BOOT_MIN = 5  # networks: below this a bootstrap over them is degenerate, so no interval
KENDALL_BOOT_MAX = 300  # networks: above this, τ's interval is Fisher-z asymptotic, not bootstrap
PAIRS_CHUNK = 4_000_000  # (resamples x networks x networks) held in memory at once


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row pair of (draws, n) arrays (average ranks for ties)."""
    rx = sps.rankdata(x, axis=1)
    ry = sps.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of each row pair of (draws, n) arrays, in chunks that fit in memory."""
    draws, n = x.shape
    pairs = n * (n - 1) / 2
    out = np.empty(draws)
    step = max(1, PAIRS_CHUNK // max(1, n * n))
    for start in range(0, draws, step):
        xs, ys = x[start:start + step], y[start:start + step]
        sx = np.sign(xs[:, :, None] - xs[:, None, :])  # (chunk, n, n): order of each pair
        sy = np.sign(ys[:, :, None] - ys[:, None, :])
        s = (sx * sy).sum(axis=(1, 2)) / 2
        ties_x = ((sx == 0).sum(axis=(1, 2)) - n) / 2
        ties_y = ((sy == 0).sum(axis=(1, 2)) - n) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start:start + step] = s / np.sqrt((pairs - ties_x) * (pairs - ties_y))
    return out


def _fisher(value: float, n: int, variance: float, confidence: float) -> tuple[float, float]:
    """Asymptotic interval of a rank correlation through Fisher's z (Fieller et al., 1957)."""
    if not math.isfinite(value) or n < 5 or abs(value) >= 1:
        return math.nan, math.nan
    half = sps.norm.ppf(0.5 + confidence / 2) * math.sqrt(variance / (n - 3))
    z = math.atanh(value)
    return math.tanh(z - half), math.tanh(z + half)


def _rows(statistic: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``statistic`` of (draws, n) rows applied over the last axis of any-shaped ``a``, ``b``."""
    flat = statistic(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
    return flat.reshape(a.shape[:-1])


def _boot_interval(statistic: Any, x: np.ndarray, y: np.ndarray, n_boot: int,
                   confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """BCa bootstrap interval over the (x, y) pairs (scipy.stats.bootstrap); percentile bounds
    of the finite resamples where BCa is undefined (resamples with a constant side)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((x, y), lambda a, b, axis=-1: _rows(statistic, a, b), paired=True,
                            vectorized=True, n_resamples=n_boot, confidence_level=confidence,
                            method="BCa", rng=rng)
    low, high = (float(v) for v in res.confidence_interval)
    if math.isfinite(low) and math.isfinite(high):
        return low, high
    draws = res.bootstrap_distribution
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return float(low), float(high)


def rank_agreement(x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, confidence: float = 0.95,
                   rng: np.random.Generator | None = None) -> dict[str, float]:
    """Spearman ρ and Kendall τ-b of ``x`` against ``y`` with bootstrap intervals over the pairs
    (NaN when fewer than three pairs or when either side is constant; the intervals NaN below
    ``BOOT_MIN`` pairs)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = dict.fromkeys(COLUMNS[1:-1], math.nan)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["spearman"] = float(sps.spearmanr(x, y).statistic)
        out["kendall"] = float(sps.kendalltau(x, y).statistic)
    if x.size < BOOT_MIN:  # resamples of 3-4 pairs are mostly ties: no honest interval
        return {k: float(v) for k, v in out.items()}
    rng = rng or np.random.default_rng(0)
    out["spearman_low"], out["spearman_high"] = _boot_interval(_spearman_rows, x, y, n_boot,
                                                               confidence, rng)
    if x.size <= KENDALL_BOOT_MAX:
        out["kendall_low"], out["kendall_high"] = _boot_interval(_kendall_rows, x, y, n_boot,
                                                                 confidence, rng)
    else:
        out["kendall_low"], out["kendall_high"] = _fisher(out["kendall"], x.size, 0.437,
                                                          confidence)
    return {k: float(v) for k, v in out.items()}

def agreement_row(early: Mapping[Any, float], final: Mapping[Any, float], higher: bool, *,
                  n_boot: int = 1000, confidence: float = 0.95,
                  rng: np.random.Generator | None = None) -> dict[str, Any]:
    """``COLUMNS`` of one comparison: the networks in both ``early`` and ``final`` (network ->
    value, finite only), their rank agreement, and whether the early leader is the final best
    (``higher``: larger values are better)."""
    # in a fixed order, so the bootstrap draws do not depend on how the caller built its maps
    keys = sorted((k for k in early if k in final and math.isfinite(early[k])
                   and math.isfinite(final[k])), key=str)
    x = np.array([early[k] for k in keys], dtype=float)
    y = np.array([final[k] for k in keys], dtype=float)
    agree = rank_agreement(x, y, n_boot=n_boot, confidence=confidence, rng=rng)
    pick = np.argmax if higher else np.argmin
    same = bool(keys) and keys[int(pick(x))] == keys[int(pick(y))]
    return {"n_networks": len(keys), **agree, "same_best": same}


def epoch_fidelity(early: Mapping[int, Mapping[Any, float]], final: Mapping[Any, float],
                   higher: bool, *, n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> list[dict[str, Any]]:
    """One ``agreement_row`` (with ``epoch``) per epoch of ``early`` (epoch -> network ->
    value), epochs in order; the caller leaves out the last epoch."""
    rng = np.random.default_rng(seed)
    return [{"epoch": int(epoch), **agreement_row(early[epoch], final, higher, n_boot=n_boot,
                                                  confidence=confidence, rng=rng)}
            for epoch in sorted(early)]


def _interval(row: Mapping[str, Any], name: str) -> str:
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return f"[{low:.2f}, {high:.2f}]" if math.isfinite(low) else "(no interval)"


def fidelity_lines(rows: Sequence[Mapping[str, Any]], *,
                   grace_epochs: int | None = None) -> list[str]:
    """Plain-language lines of ``epoch_fidelity`` rows (for the CLI summary and the dashboard):
    the epoch ASHA first cuts at (``grace_epochs``) when given, else the first epoch."""
    rows = [r for r in rows if math.isfinite(float(r["spearman"]))]
    if not rows:
        return ["Early ranking check: not enough epochs or networks that differ "
                "(needs 2+ epochs and 3+ networks)."]
    wanted = [r for r in rows if grace_epochs is not None and int(r["epoch"]) == grace_epochs]
    row = (wanted or rows)[0]
    where = "ASHA's first cut" if wanted else "the earliest comparable epoch"
    rho = row["spearman"]
    verdict = ("agrees well with" if row["spearman_low"] > 0.7 else
               "is related to" if row["spearman_low"] > 0 else
               "does not reliably predict" if math.isfinite(row["spearman_low"]) else
               f"cannot be judged (an interval needs {BOOT_MIN}+ networks) against")
    return [f"Ranking at epoch {int(row['epoch'])} ({where}) {verdict} the final ranking of "
            f"{int(row['n_networks'])} networks: Spearman ρ {rho:.2f} "
            f"{_interval(row, 'spearman')}, Kendall τ {row['kendall']:.2f} "
            f"{_interval(row, 'kendall')}; the early leader "
            f"{'is' if row['same_best'] else 'is not'} the final best."]
