"""Does a short run predict the final ranking? (The premise of ASHA's early stopping.)

``fidelity`` compares each network's accuracy at epoch k with its final accuracy across the
networks of one study: Spearman's ρ and Kendall's τ-b with BCa bootstrap intervals over
networks (the torch-free core in ``search.results.fidelity``, shared with the CLI summary).
``clip_fidelity`` does the same between a short clip length and the longest one, for studies that ran the same networks at several clip lengths. A network's value is the mean over
its COMPLETE trials (seeds); pruned trials never reach the end, so they cannot say how their
ranking would have ended — the check speaks for the networks that finished.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.budget import higher_is_better, seed_means
from analysis.loading import spec_columns
from analysis.stats import completed
from search.results.fidelity import COLUMNS, agreement_row, epoch_fidelity
from search.results.fidelity import fidelity_lines as _fidelity_lines
from search.results.fidelity import rank_agreement as rank_agreement  # re-exported
from search.results.metrics import VAL_ACC1


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
    by_epoch = {int(e): early.loc[e].to_dict() for e in sub["epoch"].unique() if e < last}
    rows = epoch_fidelity(by_epoch, final.to_dict(), higher_is_better(metric), n_boot=n_boot,
                          confidence=confidence, seed=seed)
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
    rows = []
    for clip in sorted(c for c in table.columns if c < longest):
        both = table[[clip, longest]].dropna()
        rows.append({"clip_len": int(clip), "final_clip_len": int(longest),
                     **agreement_row(both[clip].to_dict(), both[longest].to_dict(),
                                     higher_is_better(metric), n_boot=n_boot,
                                     confidence=confidence, rng=rng)})
    return pd.DataFrame(rows, columns=["clip_len", "final_clip_len", *COLUMNS])




def fidelity_lines(table: pd.DataFrame, *, grace_epochs: int | None = None) -> list[str]:
    """Plain-language lines of a ``fidelity`` table (``search.results.fidelity.fidelity_lines``)."""
    return _fidelity_lines(table.to_dict("records"), grace_epochs=grace_epochs)
