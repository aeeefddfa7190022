"""Trial detail: spec, per-layer MACs and curves of one trial, or two side by side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import analysis.checks
from analysis import figures as figs
from dashboard import common
from search.results.metrics import TRAIN_LOSS

MAX_OPTIONS = 1000  # trials offered in the pickers: the best, by the chosen metric

ctx = common.context(need_complete=False)
ranked = common.top_trials(ctx.db, ctx.study, ctx.metric, ctx.mode, MAX_OPTIONS)  # best first

st.title("Trial detail")
numbers = ranked["number"].tolist()
by_number = ranked.set_index("number")
gaps = analysis.checks.trial_gap(by_number)
chance = analysis.checks.trial_chance(by_number)


def _num(value: object, spec: str) -> str:
    """A number formatted, or "—" when missing."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    return "—" if number != number else format(number, spec)


def describe(number: int) -> str:
    """One line per trial in the pickers."""
    row = by_number.loc[number]
    name = row["label"] if isinstance(row["label"], str) else row["arch_id"][:8]
    return (f"#{number} · {name} · seed {row['seed']} · {row['state']} · "
            f"{_num(row.get(ctx.metric), '.4f')}")


def runner_up(first: int) -> int | None:
    """The best trial of another family than ``first`` (a placement to compare with)."""
    family = by_number.loc[first, "family"]
    others = [n for n in numbers if by_number.loc[n, "family"] != family]
    return others[0] if others else None


left, right = st.columns(2)
first = left.selectbox("Trial", numbers, key="trial_a", format_func=describe)
options = [None, *numbers]
second = right.selectbox("Compare with", options, key="trial_b",
                         index=options.index(runner_up(first)) if first is not None else 0,
                         format_func=lambda n: "—" if n is None else describe(n))
chosen = [n for n in (first, second) if n is not None]
if not chosen:
    st.info("No trial to show.")
    st.stop()

# Where the trial ran (analysis.load_trials columns from trials.resources_json): key, label.
HARDWARE_FACTS = [("node", "node"), ("node_ip", "node IP"), ("node_id", "Ray node"),
                  ("device", "device"), ("device_name", "device model"), ("gpu_model", "GPU"),
                  ("gpu_count", "GPUs"), ("torch_version", "torch"),
                  ("cuda_version", "CUDA")]
SPEC_COLUMNS = ["layer", "kind", "t_kernel", "t_stride", "s_stride", "inflate", "width",
                "out_thw", "macs"]
columns = st.columns(len(chosen))
for col, number in zip(columns, chosen, strict=True):
    row = by_number.loc[number]
    layers, record = common.arch(ctx.db, row["arch_id"])
    with col:
        st.subheader(f"#{number} · {row['label'] if isinstance(row['label'], str) else ''}")
        facts = {"family": row.get("family"), "state": row["state"], "seed": row["seed"],
                 ctx.metric: _num(row.get(ctx.metric), ".4f"), "GMACs": _num(row["gmacs"], ".4g"),
                 "params": _num(row["params"], ",.0f"),
                 "latency ms": _num(row.get("latency_ms"), ".2f"),
                 "temporal depth (0 bottom, 1 top)": _num(row.get("t_com"), ".2f"),
                 "train−val gap": _num(gaps.loc[number], ".3f"),
                 "plateaued": {True: "yes", False: "no (undertrained)"}.get(
                     row.get("plateaued"), "not recorded"),
                 "chance": _num(chance.loc[number], ".3f"),
                 "majority class": _num(row.get("majority_acc"), ".3f"),
                 "data seed": _num(row.get("data_seed"), ".0f"),
                 "arch_id": row["arch_id"]}
        facts.update({name: row[key] for key, name in HARDWARE_FACTS
                      if key in row and pd.notna(row[key])})
        if isinstance(row.get("error"), str):
            facts["error"] = row["error"]
        st.dataframe(pd.DataFrame({"value": [str(v) for v in facts.values()]},
                                  index=list(facts)), width="stretch")
        common.plot(figs.layer_macs_figure(layers, title="MACs per layer "
                                           f"({layers['macs_source'].iloc[0]})"),
                    key=f"macs_{number}")
        st.dataframe(layers[SPEC_COLUMNS], hide_index=True, width="stretch",
                     column_config={"macs": st.column_config.NumberColumn(format="compact")})

curves = common.curves(ctx.db, ctx.study, trial_ids=tuple(int(by_number.loc[n, "trial_id"])
                                                          for n in chosen))
if curves.empty:
    st.info("No per-epoch metrics recorded for these trials.")
else:
    names = {int(by_number.loc[n, "trial_id"]): f"#{n}" for n in chosen}
    metrics = [ctx.metric, TRAIN_LOSS] if ctx.metric != TRAIN_LOSS else [TRAIN_LOSS]
    common.plot(figs.trial_curves_figure(curves, metrics, names, chance=chance.loc[first]),
                key="trial_curves")
