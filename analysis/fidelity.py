"""Does a short run predict the final ranking? (The premise of ASHA's early stopping.)

``fidelity`` compares each network's accuracy at epoch k with its final accuracy across the
networks of one study: Spearman's ρ and Kendall's τ-b with BCa bootstrap intervals over
networks (scipy.stats.bootstrap). ``clip_fidelity`` does the same between a short clip length and the longest one, for
studies that ran the same networks at several clip lengths. A network's value is the mean over
its COMPLETE trials (seeds); pruned trials never reach the end, so they cannot say how their
ranking would have ended — the check speaks for the networks that finished.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.budget import higher_is_better, seed_means
from analysis.loading import spec_columns
from analysis.stats import completed
from search.results.metrics import VAL_ACC1

COLUMNS = ["n_networks", "spearman", "spearman_low", "spearman_high", "kendall", "kendall_low",
           "kendall_high", "same_best"]
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
    (NaN when fewer than three pairs or when either side is constant)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = dict.fromkeys(COLUMNS[1:-1], math.nan)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["spearman"] = float(sps.spearmanr(x, y).statistic)
        out["kendall"] = float(sps.kendalltau(x, y).statistic)
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


def _network_final(trials: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over seeds of each network's per-seed final ``metric``."""
    return seed_means(trials, metric).groupby("arch_id", sort=False)["value"].mean()


def fidelity(curves: pd.DataFrame, trials: pd.DataFrame, metric: str = VAL_ACC1, *,
             n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """How well each epoch's ranking of the networks predicts their final ranking.

    Args:
        curves: a long ``load_curves`` frame of one study (``trial_id, epoch, name, value``).
        trials: its ``load_trials`` frame; final values are its ``metric`` column.

    Returns one row per epoch before the last: ``epoch``, ``n_networks``, ``spearman`` and
    ``kendall`` with ``_low``/``_high`` bootstrap bounds, ``same_best`` (the best network at
    that epoch is the final best). Empty when the study ran a single epoch.
    """
    done = completed(trials, metric)
    sub = curves[(curves["name"] == metric) & curves["trial_id"].isin(done["trial_id"])]
    if sub.empty:
        return pd.DataFrame(columns=["epoch", *COLUMNS])
    sub = sub.merge(done[["trial_id", "arch_id"]], on="trial_id")
    early = sub.groupby(["epoch", "arch_id"])["value"].mean()  # mean over the network's seeds
    final = _network_final(done, metric)
    last = int(sub["epoch"].max())
    rng = np.random.default_rng(seed)
    up = higher_is_better(metric)
    rows = []
    for epoch in sorted(int(e) for e in sub["epoch"].unique() if e < last):
        at = early.loc[epoch]
        both = pd.concat([at.rename("early"), final.rename("final")], axis=1, join="inner")
        both = both[np.isfinite(both.to_numpy(dtype=float)).all(axis=1)]
        agree = rank_agreement(both["early"].to_numpy(), both["final"].to_numpy(),
                               n_boot=n_boot, confidence=confidence, rng=rng)
        pick = (lambda s: s.idxmax()) if up else (lambda s: s.idxmin())
        same = bool(len(both)) and pick(both["early"]) == pick(both["final"])
        rows.append({"epoch": epoch, "n_networks": len(both), **agree, "same_best": same})
    return pd.DataFrame(rows, columns=["epoch", *COLUMNS])


def clip_fidelity(trials: pd.DataFrame, metric: str = VAL_ACC1, *, n_boot: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """How well a short clip length ranks the networks as the longest clip length does.

    A network here is its spec without the clip length, so the same placement at 4 and at 16
    frames is one network measured twice. One row per shorter ``clip_len`` against
    ``final_clip_len``; empty when the study ran one clip length.
    """
    done = completed(trials, metric)
    if "clip_len" not in done or done["clip_len"].nunique() < 2:
        return pd.DataFrame(columns=["clip_len", "final_clip_len", *COLUMNS])
    keys = [c for f in ("kind", "t_kernel", "t_stride", "inflate") for c in spec_columns(done, f)]
    keys += [c for c in ("block_type", "crop_size") if c in done]
    values = _network_final(done, metric)
    nets = done.groupby("arch_id", sort=False)[[*keys, "clip_len"]].first().join(values)
    nets["network"] = nets[keys].astype(str).agg("|".join, axis=1)
    table = nets.pivot_table(index="network", columns="clip_len", values="value")
    longest = max(table.columns)
    rng = np.random.default_rng(seed)
    up = higher_is_better(metric)
    rows = []
    for clip in sorted(c for c in table.columns if c < longest):
        both = table[[clip, longest]].dropna()
        agree = rank_agreement(both[clip].to_numpy(), both[longest].to_numpy(), n_boot=n_boot,
                               confidence=confidence, rng=rng)
        pick = (lambda s: s.idxmax()) if up else (lambda s: s.idxmin())
        same = bool(len(both)) and pick(both[clip]) == pick(both[longest])
        rows.append({"clip_len": int(clip), "final_clip_len": int(longest),
                     "n_networks": len(both), **agree, "same_best": same})
    return pd.DataFrame(rows, columns=["clip_len", "final_clip_len", *COLUMNS])


def _interval(row: dict[str, Any], name: str) -> str:
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return f"[{low:.2f}, {high:.2f}]" if math.isfinite(low) else "(no interval)"


def fidelity_lines(table: pd.DataFrame, *, grace_epochs: int | None = None) -> list[str]:
    """Plain-language lines of a ``fidelity`` table (for the CLI summary and the dashboard):
    the epoch ASHA first cuts at (``grace_epochs``) when given, else the first epoch."""
    rows = table[np.isfinite(table["spearman"].to_numpy(dtype=float))] if len(table) else table
    if rows.empty:
        return ["Early ranking check: not enough epochs or networks that differ "
                "(needs 2+ epochs and 3+ networks)."]
    wanted = rows[rows["epoch"] == grace_epochs] if grace_epochs is not None else rows.iloc[0:0]
    row = (wanted if len(wanted) else rows).iloc[0].to_dict()
    where = "ASHA's first cut" if len(wanted) else "the earliest comparable epoch"
    rho = row["spearman"]
    verdict = ("agrees well with" if row["spearman_low"] > 0.7 else
               "is related to" if row["spearman_low"] > 0 else "does not reliably predict")
    return [f"Ranking at epoch {int(row['epoch'])} ({where}) {verdict} the final ranking of "
            f"{int(row['n_networks'])} networks: Spearman ρ {rho:.2f} "
            f"{_interval(row, 'spearman')}, Kendall τ {row['kendall']:.2f} "
            f"{_interval(row, 'kendall')}; the early leader "
            f"{'is' if row['same_best'] else 'is not'} the final best."]
