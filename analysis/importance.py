"""Which choice matters, and where: Optuna's importance evaluators and a per-position view.

``importance`` rebuilds an in-memory Optuna study from the stored trials (their sampled
parameters, ``optuna.trial.create_trial``) and runs Optuna's own evaluators on it: PED-ANOVA
(which handles conditional parameters, e.g. a ``t_kernel`` suggested only for temporal kinds)
and fANOVA (which Optuna restricts to parameters present in every trial). Nothing here
re-implements an importance measure.

``position_effects`` answers *where*: for each position (stem, stage1.block1, ...) the share
of the metric's variance across networks that its conv kind, temporal extent and inflation
explain (one-way ANOVA, ω² with a bootstrap interval over networks). Extent and inflation only
mean something where the position is temporal, so they are explained only among the networks
where it is (for a whole stage: where every block of it is).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.budget import higher_is_better, seed_means
from analysis.loading import spec_columns
from analysis.placement import TEMPORAL_STEM_KINDS
from analysis.stats import completed
from arch_space.spec import TEMPORAL_KINDS
from search.results.metrics import VAL_ACC1

IMPORTANCE_COLUMNS = ["param", "importance", "ped_anova", "fanova", "n_trials", "conditional"]
# Block fields that only act where the position is temporal (a 2D kernel has no extent).
CONDITIONAL_FIELDS = ("t_kernel", "t_stride", "inflate")
POSITION_FIELDS = ("kind", "t_kernel", "inflate")  # rows of the per-position view
TOP_LEVEL_CHOICES = ("clip_len", "crop_size", "block_type")  # spec fields a grid may vary
FANOVA_MAX_TRIALS = 500  # fANOVA's random forest is slow: above this, a seeded sample of trials
BCA_MAX_NETWORKS = 1000  # BCa's jackknife is O(n^2): above this, percentile bootstrap bounds
MIN_PER_LEVEL = 3  # networks per choice on average before a position's share is estimated
BOOT_CHUNK = 4_000_000  # bootstrap draws (resamples x networks) held in memory at once


def _is_temporal(position: str, kinds: pd.Series) -> pd.Series:
    temporal = TEMPORAL_STEM_KINDS if position == "stem" else TEMPORAL_KINDS
    return kinds.isin(temporal)


def has_sampled_params(df: pd.DataFrame) -> bool:
    """Whether the trials carry the parameters a search sampled (else a grid: spec fields)."""
    return "params_json" in df and bool(df["params_json"].fillna("{}").ne("{}").any())


def searched_params(df: pd.DataFrame) -> pd.DataFrame:
    """The searched choices of every trial: one column per parameter, NaN where inactive.

    From the sampled parameters stored with each trial (``params_json``) when the study is a
    search; for a grid (no sampled parameters) the spec fields that differ between trials stand
    in, with extent, stride and inflation left out where the position is not temporal — as a
    search would have suggested them.
    """
    if has_sampled_params(df):
        records = [json.loads(p) if isinstance(p, str) and p else {} for p in df["params_json"]]
        return pd.DataFrame.from_records(records, index=df.index)
    out = {}
    for col in [*spec_columns(df, "kind"), *(c for f in CONDITIONAL_FIELDS
                                             for c in spec_columns(df, f)),
                *(c for c in TOP_LEVEL_CHOICES if c in df)]:
        values = df[col]
        position, _, name = col.rpartition(".")
        if name in CONDITIONAL_FIELDS and f"{position}.kind" in df:
            values = values.where(_is_temporal(position, df[f"{position}.kind"]))
        if values.dropna().astype(str).nunique() >= 2:
            out[col] = values
    return pd.DataFrame(out, index=df.index)


def _study(params: pd.DataFrame, values: np.ndarray, maximize: bool) -> Any:
    """An in-memory Optuna study holding one COMPLETE trial per row."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {name: CategoricalDistribution(sorted(set(col.dropna().tolist()), key=str))
             for name, col in params.items()}
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    trials = []
    for (_, row), value in zip(params.iterrows(), values, strict=True):
        chosen = {k: (v.item() if isinstance(v, np.generic) else v)
                  for k, v in row.items() if not _missing(v)}
        trials.append(optuna.trial.create_trial(
            params=chosen, distributions={k: dists[k] for k in chosen}, value=float(value)))
    study.add_trials(trials)
    return study


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def importance(df: pd.DataFrame, metric: str = VAL_ACC1, *, evaluator: str = "ped_anova",
               seed: int = 0, fanova: bool = True) -> pd.DataFrame:
    """One row per searched choice: how much it mattered to ``metric``, by Optuna's evaluators.

    Columns: ``param``; ``importance`` (the chosen ``evaluator``'s values, summing to 1 over the
    rows it assesses); ``ped_anova`` (PED-ANOVA, every parameter, conditional ones included);
    ``fanova`` (fANOVA: Optuna assesses only parameters present in every trial, NaN for the
    others; on a seeded random sample of ``FANOVA_MAX_TRIALS`` trials when there are more); ``n_trials`` (trials where the parameter was active); ``conditional``.

    Args:
        df: a ``load_trials`` frame of one study; its COMPLETE trials with a finite ``metric``
            become the Optuna trials.
        evaluator: ``"ped_anova"`` or ``"fanova"``: which one fills ``importance``.
        fanova: False skips the fANOVA forest (seconds per hundred trials; ``fanova`` NaN).
    """
    if evaluator not in ("ped_anova", "fanova"):
        raise ValueError(f"evaluator: 'ped_anova' or 'fanova', got {evaluator!r}")
    if evaluator == "fanova" and not fanova:
        raise ValueError("evaluator: 'fanova' needs fanova=True")
    data = completed(df, metric)
    params = searched_params(data)
    params = params.loc[:, [c for c in params if params[c].dropna().astype(str).nunique() >= 1]]
    if len(data) < 2 or params.empty:
        return pd.DataFrame(columns=IMPORTANCE_COLUMNS)
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    values, maximize = data[metric].to_numpy(dtype=float), higher_is_better(metric)
    study = _study(params, values, maximize)
    present = params.notna()
    always = [c for c in params if present[c].all()]
    fan: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some regimes have less than 2 trials" on small studies
        ped = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                    params=list(params))
        if always and fanova:
            if len(params) > FANOVA_MAX_TRIALS:  # its forest costs seconds per 100 trials
                pick = np.random.default_rng(seed).choice(len(params), FANOVA_MAX_TRIALS,
                                                          replace=False)
                study = _study(params.iloc[pick], values[pick], maximize)
            try:
                fan = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed),
                                            params=always)
            except RuntimeError:  # "zero total variance in all trees": the metric is constant
                fan = {}
    out = pd.DataFrame({"param": list(params)})
    out["ped_anova"] = out["param"].map(ped).astype(float)
    out["fanova"] = out["param"].map(fan).astype(float)
    out["importance"] = out[evaluator]
    out["n_trials"] = [int(present[c].sum()) for c in params]
    out["conditional"] = [not present[c].all() for c in params]
    out = out.sort_values("importance", ascending=False, kind="stable", na_position="last")
    return out[IMPORTANCE_COLUMNS].reset_index(drop=True)


# --- where a choice matters -------------------------------------------------------------------


def _explained(y: np.ndarray, codes: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """η² and ω² of a one-way ANOVA, row-wise: ``y`` and ``codes`` are (draws, units)."""
    draws, n = y.shape
    flat = codes + n_levels * np.arange(draws)[:, None]  # (draws, n): a bin per (draw, level)
    counts = np.bincount(flat.ravel(), minlength=draws * n_levels).reshape(draws, n_levels)
    sums = np.bincount(flat.ravel(), weights=y.ravel(),
                       minlength=draws * n_levels).reshape(draws, n_levels)
    total = y.sum(axis=1)
    ss_total = ((y - (total / n)[:, None]) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ss_between = np.where(counts > 0, sums ** 2 / counts, 0.0).sum(axis=1) - total ** 2 / n
        k = (counts > 0).sum(axis=1)
        ms_within = (ss_total - ss_between) / (n - k)
        eta2 = np.where(ss_total > 0, ss_between / ss_total, np.nan)
        omega2 = (ss_between - (k - 1) * ms_within) / (ss_total + ms_within)
    # unclipped: ω² below 0 means "less than chance would explain"; callers clip for display
    omega2 = np.where((ss_total > 0) & (n - k > 0) & (k > 1), omega2, np.nan)
    return eta2, omega2


def _omega2_interval(y: np.ndarray, codes: np.ndarray, n_levels: int, n_boot: int,
                     confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """BCa bootstrap interval of ω² over networks (scipy.stats.bootstrap), clipped to [0, 1].

    Resampling networks repeats some of them, which shrinks the within-choice variance and
    biases the resampled ω² upwards; BCa's bias correction accounts for that where percentile
    bounds would not. Where BCa is undefined, percentile bounds of the finite resamples; above
    ``BCA_MAX_NETWORKS`` networks (where the bias is small) percentile bounds throughout.
    """
    def statistic(values: np.ndarray, groups: np.ndarray, axis: int = -1) -> np.ndarray:
        flat_y = values.reshape(-1, values.shape[-1])  # (draws, n)
        flat_c = groups.reshape(-1, groups.shape[-1]).astype(int)
        return _explained(flat_y, flat_c, n_levels)[1].reshape(values.shape[:-1])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((y, codes), statistic, paired=True, vectorized=True,
                            n_resamples=n_boot, confidence_level=confidence,
                            method="BCa" if y.size <= BCA_MAX_NETWORKS else "percentile",
                            rng=rng, batch=max(1, BOOT_CHUNK // max(1, y.size)))
    low, high = (float(v) for v in res.confidence_interval)
    if not (math.isfinite(low) and math.isfinite(high)):
        draws = res.bootstrap_distribution[np.isfinite(res.bootstrap_distribution)]
        if not draws.size:
            return math.nan, math.nan
        alpha = (1.0 - confidence) / 2
        low, high = (float(v) for v in np.quantile(draws, [alpha, 1 - alpha]))
    return min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0)


def network_choices(df: pd.DataFrame, metric: str = VAL_ACC1) -> pd.DataFrame:
    """One row per network: its spec columns and ``value``, the mean of its per-seed means."""
    per_seed = seed_means(df, metric)
    value = per_seed.groupby("arch_id", sort=False)["value"].mean()
    data = completed(df, metric)
    cols = [c for f in POSITION_FIELDS for c in spec_columns(data, f)]
    specs = data.groupby("arch_id", sort=False)[cols].first()
    return specs.join(value, how="inner").reset_index()


def _position_values(nets: pd.DataFrame, position: str, field: str,
                     level: str) -> tuple[pd.Series, str]:
    """The value of ``field`` at ``position`` per network (NaN where it does not apply)."""
    if level == "block":
        paths = [position]
    else:
        paths = [c.removesuffix(".kind") for c in spec_columns(nets, "kind")
                 if c == f"{position}.kind" or c.startswith(f"{position}.")]
    temporal = pd.concat([_is_temporal(p, nets[f"{p}.kind"]) for p in paths], axis=1)
    parts = []
    for p in paths:
        col = nets.get(f"{p}.{field}")
        if col is None:
            return pd.Series(np.nan, index=nets.index), "not in the spec"
        parts.append(col.astype(str))
    values = pd.concat(parts, axis=1).agg("/".join, axis=1)  # a stage's blocks taken together
    if field == "kind":
        return values, ""
    return values.where(temporal.all(axis=1)), "only where temporal"


def positions(df: pd.DataFrame, level: str = "block") -> list[str]:
    """Positions bottom to top: ``stem, stage1.block1, ...`` (blocks) or ``stem, stage1, ...``."""
    paths = [c.removesuffix(".kind") for c in spec_columns(df, "kind")]
    if level == "stage":
        paths = [p.split(".")[0] for p in paths]
    return list(dict.fromkeys(paths))


def position_effects(df: pd.DataFrame, metric: str = VAL_ACC1, *, level: str = "block",
                     n_boot: int = 500, confidence: float = 0.95,
                     seed: int = 0) -> pd.DataFrame:
    """How much of ``metric``'s variance across networks each position's choices explain.

    For every position (``level="block"``: stem, stage1.block1, ...; ``"stage"``: stem, stage1,
    ... with a stage's blocks taken together) and every field (conv ``kind``, temporal extent
    ``t_kernel``, ``inflate``): a one-way ANOVA of the networks' mean ``metric`` (over seeds) on
    that choice. ``omega2`` is the bias-adjusted share of variance explained (ω², 0 when the
    choice explains no more than chance would), ``eta2`` the raw share; ``ci_low``/``ci_high``
    are BCa bootstrap bounds of ω² over networks. Extent and inflation are explained
    only among the networks where the position is temporal (``subset``); ``n`` counts them.
    Marginal: in a search the other positions vary too, so a position's share includes what
    the choices it is correlated with explain.

    Columns: ``position, field, subset, n, n_levels, eta2, omega2, ci_low, ci_high, note``.
    """
    if level not in ("block", "stage"):
        raise ValueError(f"level: 'block' or 'stage', got {level!r}")
    nets = network_choices(df, metric)
    rng = np.random.default_rng(seed)
    rows = []
    for position in positions(nets, level):
        for field in POSITION_FIELDS:
            values, subset = _position_values(nets, position, field, level)
            ok = values.notna() & np.isfinite(nets["value"].to_numpy(dtype=float))
            y = nets.loc[ok, "value"].to_numpy(dtype=float)
            codes, levels = pd.factorize(values[ok])
            row = {"position": position, "field": field, "subset": subset or "all networks",
                   "n": int(ok.sum()), "n_levels": len(levels), "eta2": math.nan,
                   "omega2": math.nan, "ci_low": math.nan, "ci_high": math.nan, "note": ""}
            if subset == "not in the spec":
                row["subset"], row["note"] = "", subset
            elif len(levels) < 2:
                row["note"] = "not varied" if int(ok.sum()) else "never temporal"
            elif y.size < MIN_PER_LEVEL * len(levels):
                row["note"] = f"too few networks (under {MIN_PER_LEVEL} per choice)"
            else:
                eta2, omega2 = _explained(y[None, :], codes[None, :], len(levels))
                row["eta2"], row["omega2"] = float(eta2[0]), min(max(float(omega2[0]), 0.0), 1.0)
                row["ci_low"], row["ci_high"] = _omega2_interval(y, codes, len(levels), n_boot,
                                                                 confidence, rng)
            rows.append(row)
    return pd.DataFrame(rows, columns=["position", "field", "subset", "n", "n_levels", "eta2",
                                       "omega2", "ci_low", "ci_high", "note"])


def position_ranking(effects: pd.DataFrame) -> pd.DataFrame:
    """Positions ranked by the largest share of variance any of their choices explains."""
    if effects.empty:
        return pd.DataFrame(columns=["position", "omega2", "field"])
    best = effects.assign(score=effects["omega2"].fillna(-1.0))
    best = best.loc[best.groupby("position", sort=False)["score"].idxmax()]
    best = best.sort_values("score", ascending=False, kind="stable")
    return best[["position", "omega2", "field"]].reset_index(drop=True)
