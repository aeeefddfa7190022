"""Reading vidarch results into pandas: trials, curves, Pareto fronts, seed statistics.

Imports the store schema and the torch-free ``arch_space.spec``; never torch or ray.

Example::

    from analysis import load_trials, compare, pareto_front
    df = load_trials("studies.db", study="bottom_vs_top")
    compare(df, by="family", metric="val/acc1")     # Student-t CIs over seeds, chance, flags
    compare(df, by="family", metric="val/loss")     # "best" is the lowest loss
    declared_contrasts(df, study_contrasts(study_config("studies.db", "bottom_vs_top")))
    pareto_front(df, objectives=("val/acc1", "macs"))
    at_budget(df, macs=15e6).sentences      # what to pick under 15 MMACs
    importance(df, metric="val/acc1")       # Optuna's PED-ANOVA / fANOVA per searched choice
    position_effects(df, metric="val/acc1")  # where it matters: variance explained per position
"""

from analysis.budget import (
    BudgetAnswer,
    at_budget,
    chance_level,
    network_table,
    paired_difference,
)
from analysis.checks import baselines, default_metric, informative_metrics
from analysis.contrasts import declared_contrasts, study_contrasts, wilcoxon_note
from analysis.export import export, to_csv, to_parquet
from analysis.fidelity import clip_fidelity, fidelity, fidelity_lines
from analysis.importance import importance, position_effects, position_ranking
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
from analysis.matched import best_at_budget, budget_levels, credible_front
from analysis.networks import (
    choice_table,
    cross_study,
    load_cross_study,
    network_diff,
    studies_of_arch,
)
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
    "BudgetAnswer",
    "NoDataError",
    "arch_features",
    "arch_summary",
    "at_budget",
    "baselines",
    "best_at_budget",
    "best_per_group",
    "budget",
    "budget_levels",
    "chance_level",
    "choice_table",
    "clip_fidelity",
    "compare",
    "completed",
    "connect",
    "credible_front",
    "cross_study",
    "curve_names",
    "curve_summary",
    "curves_wide",
    "declared_contrasts",
    "default_metric",
    "describe",
    "export",
    "family_of",
    "fidelity",
    "fidelity_lines",
    "importance",
    "informative_metrics",
    "layer_costs",
    "list_studies",
    "load_arch",
    "load_cross_study",
    "load_curves",
    "load_trials",
    "marginal_effects",
    "mean_ci",
    "metric_names",
    "network_diff",
    "network_table",
    "paired_difference",
    "pareto_front",
    "position_effects",
    "position_ranking",
    "spec_columns",
    "state_counts",
    "studies_of_arch",
    "study_config",
    "study_contrasts",
    "to_csv",
    "to_parquet",
    "verdict",
    "wilcoxon_note",
]
