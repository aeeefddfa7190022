"""Reading vidarch results into pandas: trials, curves, Pareto fronts, seed statistics.

Imports the store schema and the torch-free ``arch_space.spec``; never torch or ray.

Example::

    from analysis import load_trials, compare, pareto_front
    df = load_trials("studies.db", study="bottom_vs_top")
    compare(df, by="family", metric="val/acc1")     # Student-t CIs over seeds, chance, flags
    compare(df, by="family", metric="val/loss")     # "best" is the lowest loss
    declared_contrasts(df, study_contrasts(study_config("studies.db", "bottom_vs_top")))
    pareto_front(df, objectives=("val/acc1", "macs"))
"""

from analysis.checks import baselines, default_metric, informative_metrics
from analysis.contrasts import declared_contrasts, study_contrasts, wilcoxon_note
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
from analysis.matched import at_budget, budget_levels, credible_front
from analysis.placement import FAMILIES, arch_features, describe, family_of, layer_costs
from analysis.stats import (
    arch_summary,
    compare,
    completed,
    curve_summary,
    marginal_effects,
    mean_ci,
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
    "at_budget",
    "baselines",
    "best_per_group",
    "budget",
    "budget_levels",
    "compare",
    "completed",
    "connect",
    "credible_front",
    "curve_names",
    "curve_summary",
    "curves_wide",
    "declared_contrasts",
    "default_metric",
    "describe",
    "export",
    "family_of",
    "informative_metrics",
    "layer_costs",
    "list_studies",
    "load_arch",
    "load_curves",
    "load_trials",
    "marginal_effects",
    "mean_ci",
    "metric_names",
    "pareto_front",
    "spec_columns",
    "state_counts",
    "study_config",
    "study_contrasts",
    "to_csv",
    "to_parquet",
    "verdict",
    "wilcoxon_note",
]
