"""Reading vidarch results into pandas: trials, curves, Pareto fronts, seed statistics.

Imports the store schema and the torch-free ``arch_space.spec``; never torch or ray.

Example::

    from analysis import load_trials, compare, pareto_front
    df = load_trials("studies.db", study="bottom_vs_top")
    compare(df, by="family", metric="val/acc1")
    pareto_front(df, objectives=(("val/acc1", "max"), ("macs", "min")))
"""

from analysis.export import export, to_csv, to_parquet
from analysis.loading import (
    RUN_HINT,
    NoDataError,
    connect,
    curve_names,
    curves_wide,
    list_studies,
    load_arch,
    load_curves,
    load_trials,
    metric_names,
    spec_columns,
    study_config,
)
from analysis.placement import FAMILIES, arch_features, describe, family_of, layer_costs
from analysis.stats import (
    arch_summary,
    bootstrap_ci,
    compare,
    completed,
    curve_summary,
    marginal_effects,
    pareto_front,
    state_counts,
)
from analysis.summary import best_per_group, budget, verdict

__all__ = [
    "FAMILIES",
    "RUN_HINT",
    "NoDataError",
    "arch_features",
    "arch_summary",
    "best_per_group",
    "bootstrap_ci",
    "budget",
    "compare",
    "completed",
    "connect",
    "curve_names",
    "curve_summary",
    "curves_wide",
    "describe",
    "export",
    "family_of",
    "layer_costs",
    "list_studies",
    "load_arch",
    "load_curves",
    "load_trials",
    "marginal_effects",
    "metric_names",
    "pareto_front",
    "spec_columns",
    "state_counts",
    "study_config",
    "to_csv",
    "to_parquet",
    "verdict",
]
