"""The knob section of a study run as variants: does the answer move with the data?

``placement_crossover`` runs as ``placement_crossover.scale1``, ``.scale2``, ``.scale4`` (one
study per knob value, ``search.design.variants``). ``knob_section`` gathers, from each variant's
``StudyOutput``, the knob value (from its stored config), its declared differences and its arms'
accuracies, draws them against the knob (``findings_figures.knob_figure``) and says in plain
words whether a crossover appears and what that implies (``findings_claims.crossover_text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from analysis.findings_catalogue import METRIC, Study
from analysis.findings_claims import crossover_text
from analysis.findings_figures import knob_figure
from analysis.findings_md import CAPTIONS
from analysis.findings_setup import config_value
from analysis.findings_study import StudyOutput, csv_note, link

DIFF_COLUMNS = ("knob", "study", "comparison", "a", "b", "delta", "ci_low", "ci_high",
                "n_pairs", "p_holm")
ARM_COLUMNS = ("knob", "study", "arm", "mean", "ci_low", "ci_high", "n_seeds", "chance",
               "majority")


@dataclass
class KnobOutput:
    """The knob section's block, its CSV tables and its figure."""

    block: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, go.Figure] = field(default_factory=dict)


def _difference(table: pd.DataFrame, a: str, b: str) -> dict[str, float] | None:
    """The row of ``a − b`` from a declared-contrasts table, flipped if declared ``b − a``."""
    for (x, y), sign in (((a, b), 1.0), ((b, a), -1.0)):
        rows = table[(table["a"] == x) & (table["b"] == y)]
        if len(rows):
            r = rows.iloc[0]
            low, high = float(r["ci_low"]), float(r["ci_high"])
            return {"delta": sign * float(r["delta"]),
                    "ci_low": low if sign > 0 else -high, "ci_high": high if sign > 0 else -low,
                    "n_pairs": int(r["n_pairs"]), "p_holm": float(r["p_holm"])}
    return None


def knob_points(study: Study, outputs: Sequence[tuple[str, StudyOutput]]
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(differences, arms) frames over the variants present: one row per knob value."""
    assert study.knob is not None
    diffs, arms = [], []
    for name, out in outputs:
        value = config_value(out.config, *study.knob.key.split("."))
        if value is None:
            continue
        knob = float(value)
        declared = out.contrasts.get(METRIC)
        for a, b in study.knob.contrasts:
            row = _difference(declared, a, b) if declared is not None else None
            if row is not None:
                diffs.append({"knob": knob, "study": name, "comparison": f"{a} − {b}",
                              "a": a, "b": b, **row})
        table = out.family_table if out.family_table is not None else out.arms
        if table is not None:
            for _, r in table.iterrows():
                arms.append({"knob": knob, "study": name, "arm": str(r["group"]),
                             **{c: r.get(c) for c in ARM_COLUMNS[3:]}})
    return (pd.DataFrame(diffs, columns=list(DIFF_COLUMNS)),
            pd.DataFrame(arms, columns=list(ARM_COLUMNS)))


def networks_table(study: Study, outputs: Sequence[tuple[str, StudyOutput]]) -> pd.DataFrame:
    """Every variant's per-arm table (``<variant>_arms.csv``: network, seeds, gmacs, ...) stacked,
    with the knob value and the variant study first: one row per (knob value, arm)."""
    assert study.knob is not None
    frames = []
    for name, out in outputs:
        value = config_value(out.config, *study.knob.key.split("."))
        if out.arms is None or value is None:
            continue
        frames.append(out.arms.assign(knob=float(value), study=name))
    if not frames:
        return pd.DataFrame(columns=["knob", "study"])
    table = pd.concat(frames, ignore_index=True)
    first = ["knob", "study"]
    return table[first + [c for c in table.columns if c not in first]]


def knob_section(study: Study, present: Sequence[tuple[str, StudyOutput]],
                 missing: Sequence[str]) -> KnobOutput:
    """The block of a knob study: figure, crossover sentences, and which variants are missing."""
    assert study.knob is not None
    knob = study.knob
    parts = [f"Each knob value is its own study (`{study.name}.<label>`, same networks and "
             f"seeds), read here together: the knob is `{knob.key}` ({knob.meaning})."]
    if missing:
        parts.append("Not yet run: " + ", ".join(f"`{m}`" for m in missing)
                     + f" (`python -m search.run study={study.study_preset}` runs every "
                     "variant, skipping finished trials; then `make findings`).")
    out = KnobOutput("")
    diffs, arms = knob_points(study, present)
    if diffs.empty and arms.empty:
        parts.append("No variant has completed trials yet: nothing to plot against the knob.")
        out.block = "\n\n".join(parts)
        return out
    name = f"{study.name}_knob"
    fig = knob_figure(diffs, arms, knob_label=knob.label)
    fig.update_layout(title=f"{study.name}: the declared differences against {knob.key}")
    out.figures[f"{name}.png"] = fig
    out.tables[f"{name}_differences.csv"] = diffs
    out.tables[f"{name}_arms.csv"] = arms
    parts.append(f"![{study.name}: knob]({link(name + '.png')})\n\n{CAPTIONS['knob']} "
                 f"{csv_note(name + '_differences.csv')}; {csv_note(name + '_arms.csv')}.")
    if study.networks_csv:
        out.tables[study.networks_csv] = networks_table(study, present)
        parts.append(f"Every arm at every knob value (seeds, GMACs, interval, flags): "
                     f"{csv_note(study.networks_csv)}.")
    for a, b in knob.contrasts:
        points = diffs[(diffs["a"] == a) & (diffs["b"] == b)]
        parts.append(crossover_text(points, knob, a, b))
    if len(diffs["knob"].unique()) < 2:
        parts.append("*Only one knob value so far:* a crossover needs at least two.")
    out.block = "\n\n".join(parts)
    return out
