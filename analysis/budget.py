"""What to pick under a compute budget: the best network and family, bottom- vs top-heavy.

``at_budget(df, macs=15e6)`` answers the question a user brings — "for the compute I can
afford, which network, which placement family, and is bottom- or top-heavy better there?" —
from a ``load_trials`` frame. The unit of replication is the seed: a network's score is the
mean of its per-seed means, with a Student-t interval over those seeds (scipy.stats.t); two
networks are compared paired over the seeds both ran. Only COMPLETE trials count.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.loading import spec_columns
from analysis.stats import completed, pareto_mask
from analysis.stats import t_interval as row_t_intervals
from arch_space.naming import HASH_LABEL, runs_name
from arch_space.spec import TEMPORAL_KINDS
from search.results import metrics
from search.results.metrics import VAL_ACC1
from search.results.seed_stats import UNBOUNDED, mean_interval

# Cost axes a budget may be given on: column of load_trials → (unit label, scale to that unit).
COST_AXES: dict[str, tuple[str, float]] = {
    "macs": ("MMACs", 1e6),
    "params": ("k params", 1e3),
    "latency_ms": ("ms", 1.0),
}
MATCHED_COST = 0.05  # two arms whose costs differ by at most 5% count as matched (DESIGN.md)


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better (``search.results.metrics`` owns the direction)."""
    return metrics.direction(metric) == metrics.MAX


def network_name(label: Any, arch_id: str, spec: Mapping[str, Any] | None = None) -> str:
    """A network's display name: its label, else its placement (``3d:s0-s1 | 2d:s2-s4``) read
    from the flattened ``spec`` columns of one of its trials, else the start of its arch_id."""
    if isinstance(label, str) and label and not HASH_LABEL.fullmatch(label):
        return label
    if spec is not None and "stem.kind" in spec:
        blocks = [k.removesuffix(".kind") for k in spec if k.startswith("stage")
                  and k.endswith(".kind")]
        per_stage = Counter(b.split(".")[0] for b in blocks)
        layers = [(0, 1, 1, str(spec["stem.kind"]), int(spec.get("stem.t_kernel", 1)),
                   spec["stem.kind"] in TEMPORAL_KINDS and int(spec.get("stem.t_kernel", 1)) > 1)]
        for b in blocks:
            stage, block = b.split(".")
            kind, t = str(spec[f"{b}.kind"]), int(spec.get(f"{b}.t_kernel", 1))
            layers.append((int(stage.removeprefix("stage")), int(block.removeprefix("block")),
                           per_stage[stage], kind, t, kind in TEMPORAL_KINDS and t > 1))
        return runs_name(layers)
    return str(arch_id)[:12]


def t_interval(values: np.ndarray | pd.Series, confidence: float = 0.95,
               bounds: tuple[float, float] = UNBOUNDED) -> tuple[float, float, float]:
    """Mean and Student-t interval of ``values`` (NaN bounds below two values), clipped to
    ``bounds`` (``search.results.seed_stats.mean_interval``)."""
    return mean_interval(values, confidence, bounds)


def seed_means(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (network, seed) of COMPLETE trials: ``arch_id, seed, value``."""
    data = completed(df, metric)
    if data.empty:
        return pd.DataFrame({"arch_id": pd.Series(dtype=object), "seed": pd.Series(dtype=int),
                             "value": pd.Series(dtype=float)})
    seed = data["seed"] if "seed" in data else pd.Series(0, index=data.index)
    return (data.assign(seed=seed).groupby(["arch_id", "seed"], sort=False)[metric].mean()
            .rename("value").reset_index())


def network_table(df: pd.DataFrame, metric: str = VAL_ACC1,
             confidence: float = 0.95) -> pd.DataFrame:
    """One row per network: name, family, costs, ``n_seeds``, ``mean``, ``ci_low``/``ci_high``
    (t over per-seed means), best first."""
    per_seed = seed_means(df, metric)
    cols = ["arch_id", "name", "family", "label", "macs", "params", "latency_ms", "n_seeds",
            "mean", "ci_low", "ci_high"]
    if per_seed.empty:
        return pd.DataFrame(columns=cols)
    data = completed(df, metric)
    facts = data.groupby("arch_id", sort=False)[[c for c in ("family", "label", "macs", "params",
                                                             "latency_ms") if c in data]].first()
    specs = data.groupby("arch_id", sort=False)[
        [*spec_columns(data, "kind"), *spec_columns(data, "t_kernel")]].first()
    stats = per_seed.groupby("arch_id", sort=False)["value"].agg(["count", "mean", "std"])
    # NaN with one seed; an accuracy's interval stays inside [0, 1]
    low, high = row_t_intervals(stats["mean"], stats["std"], stats["count"], confidence,
                                metrics.bounds(metric))
    table = pd.DataFrame({"n_seeds": stats["count"], "mean": stats["mean"],
                          "ci_low": low, "ci_high": high})
    out = facts.join(table).reset_index()
    for col in ("family", "label", "macs", "params", "latency_ms"):
        if col not in out:
            out[col] = math.nan
    out["name"] = [network_name(lbl, a, specs.loc[a].to_dict() if a in specs.index else None)
                   for lbl, a in zip(out["label"], out["arch_id"], strict=True)]
    out = out.sort_values("mean", ascending=not higher_is_better(metric), kind="stable")
    return out[cols].reset_index(drop=True)


def paired_difference(df: pd.DataFrame, arch_a: str, arch_b: str, metric: str = VAL_ACC1,
                      confidence: float = 0.95) -> dict[str, Any]:
    """``metric`` of network a minus network b, paired over the seeds both ran.

    Returns ``delta`` (mean of per-seed differences), ``ci_low``/``ci_high`` (Student t),
    ``p`` (paired t-test; NaN below two pairs or when every difference is the same),
    ``n_pairs`` and ``seeds``.
    """
    return paired_of(seed_means(df, metric), arch_a, arch_b, confidence)


def paired_of(per_seed: pd.DataFrame, arch_a: str, arch_b: str,
              confidence: float = 0.95) -> dict[str, Any]:
    """``paired_difference`` from per-seed values (``seed_means``' frame, any source)."""
    two = per_seed[per_seed["arch_id"].isin([arch_a, arch_b])]
    per_seed = two.pivot(index="seed", columns="arch_id", values="value")
    if arch_a not in per_seed or arch_b not in per_seed:
        shared = pd.Index([])
    else:
        shared = per_seed[[arch_a, arch_b]].dropna().index
    diff = (per_seed.loc[shared, arch_a] - per_seed.loc[shared, arch_b]).to_numpy(dtype=float) \
        if len(shared) else np.zeros(0)
    delta, low, high = t_interval(diff, confidence)
    p = math.nan
    if diff.size >= 2 and np.ptp(diff) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(sps.ttest_1samp(diff, 0.0).pvalue)
    return {"delta": delta, "ci_low": low, "ci_high": high, "p": p, "n_pairs": int(diff.size),
            "seeds": [int(s) if isinstance(s, int | np.integer) else s for s in shared]}


@dataclass
class BudgetAnswer:
    """What ``at_budget`` found; every frame is over COMPLETE trials of one study."""

    axis: str  # cost column the budget is on: macs, params or latency_ms
    budget: float  # in the column's own unit (MACs, parameters, ms)
    metric: str
    higher_is_better: bool
    networks: pd.DataFrame  # every network, with `within` (under the budget) and `pareto`
    families: pd.DataFrame  # per family under the budget: its mean over seeds, its best network
    best: dict[str, Any] | None  # the best network under the budget (a `networks` row)
    best_family: dict[str, Any] | None  # the best `families` row
    bottom_vs_top: dict[str, Any] | None  # best bottom-heavy minus best top-heavy, paired
    matched: dict[str, Any] | None  # a bottom- and a top-heavy network of equal cost (±5%)
    sentences: list[str] = field(default_factory=list)  # the answer in words

    @property
    def within(self) -> pd.DataFrame:
        """The networks under the budget, best first."""
        return self.networks[self.networks["within"]]


def _family_table(per_seed: pd.DataFrame, nets: pd.DataFrame, metric: str,
                  confidence: float) -> pd.DataFrame:
    """Per family of the networks in ``nets``: the mean over its per-seed means (t interval) and
    its best network. A family with one seed uses its networks as the units instead."""
    cols = ["family", "n_networks", "n_units", "unit", "mean", "ci_low", "ci_high", "best",
            "best_arch_id", "best_mean", "best_cost"]
    if nets.empty:
        return pd.DataFrame(columns=cols)
    # by hash lookups on plain objects (isin/map over pyarrow strings go value by value in
    # Python: 3 s at 1M trials)
    nets_ids = pd.Index(nets["arch_id"].to_numpy(dtype=object))
    where = nets_ids.get_indexer(per_seed["arch_id"].to_numpy(dtype=object))
    per_seed = per_seed[where >= 0].copy()
    per_seed["family"] = nets["family"].to_numpy(dtype=object)[where[where >= 0]]
    rows = []
    for family, g in nets.groupby("family", sort=False):
        s = per_seed[per_seed["family"] == family]
        if s["seed"].nunique() >= 2:
            units, unit = s.groupby("seed")["value"].mean(), "seed"
        else:
            units, unit = g["mean"], "network"
        mean, low, high = t_interval(units, confidence, metrics.bounds(metric))
        top = g.iloc[0]  # nets is sorted best first
        rows.append({"family": family, "n_networks": len(g), "n_units": len(units), "unit": unit,
                     "mean": mean, "ci_low": low, "ci_high": high, "best": top["name"],
                     "best_arch_id": top["arch_id"], "best_mean": top["mean"],
                     "best_cost": top.get("cost", math.nan)})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("mean", ascending=not higher_is_better(metric),
                           kind="stable").reset_index(drop=True)


def _axis_of(macs: float | None, params: float | None, latency_ms: float | None) -> tuple[str,
                                                                                          float]:
    given = {k: v for k, v in (("macs", macs), ("params", params), ("latency_ms", latency_ms))
             if v is not None}
    if len(given) != 1:
        raise ValueError("give exactly one budget: macs=, params= or latency_ms= "
                         f"(got {', '.join(given) or 'none'})")
    axis, value = next(iter(given.items()))
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{axis}: a budget must be a positive number, got {value!r}")
    return axis, float(value)


def fmt_cost(value: float, axis: str) -> str:
    """A cost in the budget axis's unit: ``15.2 MMACs``, ``11.3 k params``, ``4.1 ms``."""
    unit, scale = COST_AXES[axis]
    if not math.isfinite(value):
        return f"? {unit}"
    scaled = value / scale
    return f"{scaled:,.0f} {unit}" if abs(scaled) >= 1000 else f"{scaled:.3g} {unit}"


def at_budget(df: pd.DataFrame, *, macs: float | None = None, params: float | None = None,
              latency_ms: float | None = None, metric: str = VAL_ACC1,
              confidence: float = 0.95) -> BudgetAnswer:
    """The best network, the best family and bottom- vs top-heavy under one cost budget.

    Args:
        df: a ``load_trials`` frame of one study.
        macs / params / latency_ms: the budget — exactly one of them, in MACs per clip,
            parameters, or milliseconds; a network is under it when its cost is ``<=`` it.
        metric: the final metric to rank by (higher is better unless its name says loss).

    Bottom- vs top-heavy compares the best network of each family under the budget, paired
    over the seeds both ran (``paired_difference``); their costs are reported alongside, and
    ``matched`` says whether they are within 5% of each other. When they are not, ``matched``
    of the answer holds a pair that is: the most expensive bottom-/top-heavy pair under the
    budget whose costs are within 5% (chosen by cost, not by outcome), or None.

    Raises:
        ValueError: no budget or several, a non-positive one, or a cost axis the study lacks.
    """
    return answer_at_budget(network_table(df, metric, confidence), seed_means(df, metric),
                            macs=macs, params=params, latency_ms=latency_ms, metric=metric,
                            confidence=confidence)


def answer_at_budget(nets: pd.DataFrame, per_seed: pd.DataFrame, *, macs: float | None = None,
                     params: float | None = None, latency_ms: float | None = None,
                     metric: str = "val/acc1", confidence: float = 0.95) -> BudgetAnswer:
    """``at_budget`` from a ``network_table`` and per-seed values (``seed_means``' frame),
    however computed: from trial rows or from SQL aggregates (``analysis.unit_stats``)."""
    axis, value = _axis_of(macs, params, latency_ms)
    up = higher_is_better(metric)
    nets = nets.copy()
    if not nets.empty and not nets[axis].notna().any():
        raise ValueError(f"{axis}: no network of this study has that cost recorded")
    nets["cost"] = pd.to_numeric(nets[axis], errors="coerce").astype(float)
    nets["within"] = nets["cost"] <= value
    nets["pareto"] = False
    ok = nets["cost"].notna() & nets["mean"].notna()
    if ok.any():
        signs = np.array([-1.0 if up else 1.0, 1.0])
        values = nets.loc[ok, ["mean", "cost"]].to_numpy(dtype=float) * signs
        nets.loc[ok, "pareto"] = pareto_mask(values)
    inside = nets[nets["within"]]
    families = _family_table(per_seed, inside, metric, confidence)
    best = inside.iloc[0].to_dict() if len(inside) else None
    best_family = families.iloc[0].to_dict() if len(families) else None
    answer = BudgetAnswer(axis=axis, budget=value, metric=metric, higher_is_better=up,
                          networks=nets, families=families, best=best, best_family=best_family,
                          bottom_vs_top=_bottom_vs_top(per_seed, inside, confidence),
                          matched=_matched(per_seed, inside, confidence))
    answer.sentences = _sentences(answer, nets)
    return answer


def _pair(per_seed: pd.DataFrame, bottom: pd.Series, top: pd.Series,
          confidence: float) -> dict[str, Any]:
    """``paired_difference`` of a bottom-heavy and a top-heavy network, with their costs."""
    out = paired_of(per_seed, bottom["arch_id"], top["arch_id"], confidence)
    ratio = bottom["cost"] / top["cost"] if top["cost"] else math.nan
    out.update({"bottom": bottom["name"], "bottom_arch_id": bottom["arch_id"],
                "bottom_mean": bottom["mean"], "bottom_cost": bottom["cost"],
                "top": top["name"], "top_arch_id": top["arch_id"], "top_mean": top["mean"],
                "top_cost": top["cost"], "cost_ratio": ratio,
                "matched": bool(math.isfinite(ratio) and abs(ratio - 1) <= MATCHED_COST)})
    return out


def _bottom_vs_top(per_seed: pd.DataFrame, inside: pd.DataFrame,
                   confidence: float) -> dict[str, Any] | None:
    """The best bottom-heavy against the best top-heavy network under the budget."""
    heads = {f: inside[inside["family"] == f] for f in ("bottom-heavy", "top-heavy")}
    if any(h.empty for h in heads.values()):
        return None
    return _pair(per_seed, heads["bottom-heavy"].iloc[0], heads["top-heavy"].iloc[0],
                 confidence)


def _matched(per_seed: pd.DataFrame, inside: pd.DataFrame,
             confidence: float) -> dict[str, Any] | None:
    """A bottom- and a top-heavy network under the budget whose costs are within 5%: of such
    pairs, the most expensive one (the pair is chosen by cost, never by its outcome; ties go to
    the better-ranked bottom-heavy, then top-heavy network)."""
    bottoms = inside[inside["family"] == "bottom-heavy"]
    tops = inside[inside["family"] == "top-heavy"]
    pair = matched_pair(bottoms["cost"].to_numpy(dtype=float), tops["cost"].to_numpy(dtype=float))
    if pair is None:
        return None
    return _pair(per_seed, bottoms.iloc[pair[0]], tops.iloc[pair[1]], confidence)


def _within(b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether costs ``b`` and ``t`` are matched: ``|b / t - 1| <= MATCHED_COST``, t > 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (t > 0) & (np.abs(b / np.where(t > 0, t, 1.0) - 1) <= MATCHED_COST)


def matched_pair(b_cost: np.ndarray, t_cost: np.ndarray) -> tuple[int, int] | None:
    """(i, j): of the pairs whose costs are matched (``_within``), the one whose smaller cost
    is largest; ties to the lowest i, then the lowest j. Vectorised: for each i the matched
    t's form one run of the sorted costs (``|b/t - 1|`` falls, then rises, in t)."""
    if not len(b_cost) or not len(t_cost):
        return None
    order = np.argsort(t_cost, kind="stable")
    ranked = t_cost[order]
    n = len(ranked)
    # the run's ends from the bounds, then nudged to the exact predicate (float rounding)
    lo = np.searchsorted(ranked, b_cost / (1 + MATCHED_COST), side="left")
    hi = np.searchsorted(ranked, b_cost / (1 - MATCHED_COST), side="right")
    for _ in range(n + 1):
        back = (lo > 0) & _within(b_cost, ranked[np.maximum(lo - 1, 0)])
        ahead = (lo < hi) & ~_within(b_cost, ranked[np.minimum(lo, n - 1)])
        if not (back.any() or ahead.any()):
            break
        lo = lo - back + (ahead & ~back)  # one way per step: never back and forth
    for _ in range(n + 1):
        more = (hi < n) & _within(b_cost, ranked[np.minimum(hi, n - 1)])
        less = (hi > lo) & ~_within(b_cost, ranked[np.maximum(hi - 1, 0)])
        if not (more.any() or less.any()):
            break
        hi = hi + more - (less & ~more)
    has = hi > lo
    if not has.any():
        return None
    top = np.where(has, ranked[np.maximum(hi - 1, 0)], -np.inf)  # the dearest matched t
    best = np.where(has, np.minimum(b_cost, top), -np.inf)
    i = int(np.flatnonzero(best == best.max())[0])
    run = order[lo[i]:hi[i]]
    j = int(np.sort(run[np.minimum(b_cost[i], t_cost[run]) == best[i]])[0])
    return i, j


def _ci(low: float, high: float) -> str:
    return f"95% CI {low:.4f} to {high:.4f}" if math.isfinite(low) else "no interval: one seed"


def _sentences(a: BudgetAnswer, nets: pd.DataFrame) -> list[str]:
    budget = fmt_cost(a.budget, a.axis)
    if a.best is None:
        cheapest = nets["cost"].min() if len(nets) else math.nan
        return [f"No network fits under {budget}; the cheapest costs "
                f"{fmt_cost(cheapest, a.axis)}."]
    b = a.best
    out = [f"Under {budget} ({len(a.within)} of {len(nets)} networks), the best is "
           f"**{b['name']}** ({b['family']}): {a.metric} {b['mean']:.4f} "
           f"({_ci(b['ci_low'], b['ci_high'])}, {b['n_seeds']} seeds) at "
           f"{fmt_cost(b['cost'], a.axis)}."]
    f = a.best_family
    if f is not None and len(a.families) > 1:
        its = "its one network" if f["n_networks"] == 1 else f"its {f['n_networks']} networks"
        out.append(f"Averaged over {its} under the budget, "
                   f"**{f['family']}** is the best family: {f['mean']:.4f} "
                   f"({_ci(f['ci_low'], f['ci_high'])} over {f['n_units']} {f['unit']}s).")
    bt = a.bottom_vs_top
    if bt is None:
        present = set(a.within["family"])
        missing = [x for x in ("bottom-heavy", "top-heavy") if x not in present]
        out.append(f"Bottom- vs top-heavy: no {' or '.join(missing)} network under the budget.")
        return out
    out.append(_pair_sentence(bt, "best of each under the budget", a))
    m = a.matched
    if not bt["matched"]:
        out.append(_pair_sentence(m, "at matched cost", a) if m is not None else
                   "No bottom- and top-heavy networks under the budget cost the same (±5%): "
                   "the comparison above is not at matched cost.")
    return out


def _pair_sentence(pair: dict[str, Any], which: str, a: BudgetAnswer) -> str:
    """One bottom- vs top-heavy comparison in words."""
    costs = (f"{fmt_cost(pair['bottom_cost'], a.axis)} vs {fmt_cost(pair['top_cost'], a.axis)}"
             + ("" if pair["matched"] else f", cost ratio {pair['cost_ratio']:.2f}"))
    head = f"Bottom- vs top-heavy, {which} ({pair['bottom']} vs {pair['top']}, {costs})"
    if pair["n_pairs"] == 0:
        return f"{head}: they share no seed, no paired comparison."
    if pair["delta"] == 0:
        verdict = "no difference"
    else:
        better_bottom = (pair["delta"] > 0) == a.higher_is_better
        ahead = "bottom-heavy" if better_bottom else "top-heavy"
        if math.isfinite(pair["ci_low"]) and (pair["ci_low"] > 0 or pair["ci_high"] < 0):
            verdict = f"**{ahead}** is better"
        else:  # a point estimate is not a finding
            verdict = (f"**undecided**: the interval includes 0 ({ahead} is ahead on the "
                       f"means only)")
    return (f"{head}: {verdict}; Δ {pair['delta']:+.4f} ({_ci(pair['ci_low'], pair['ci_high'])}"
            f", paired over {pair['n_pairs']} seeds).")


def chance_level(df: pd.DataFrame, num_classes: int | None = None) -> float:
    """The accuracy of guessing: the stored ``chance_acc`` when trials have it, else
    ``1 / num_classes``, else NaN."""
    if "chance_acc" in df:
        values = pd.to_numeric(df["chance_acc"], errors="coerce").dropna()
        if len(values):
            return float(values.median())
    return 1.0 / num_classes if num_classes else math.nan
