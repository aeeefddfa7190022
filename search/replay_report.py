"""The search-efficiency report of replayed searchers: a table, a figure, with intervals.

Per searcher, over its repetitions: the hypervolume of the (mean accuracy, MACs) front it found
against simulated time and against trials trained; the trials (and simulated time) it needed to
reach 95 % of the exhaustive front's hypervolume; for ASHA, the epochs it trained against the
same proposals trained without pruning, and whether pruning changed the final front. Intervals
are t intervals over repetitions (95 %: mean ± t(0.975, n-1) · sd / sqrt(n)).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from search.replay_sim import Bench, ReplayRun, final_front, hv_trace
from search.replay_table import ACC as ACC_NAME
from search.results.seed_stats import mean_interval

TARGET = 0.95  # fraction of the exhaustive hypervolume a searcher should reach
CURVE_POINTS = 80  # time points of the HV-over-time curves


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of a t interval; low = high = mean for fewer than 2 values. Every
    quantity reported here (hypervolume, trials, epochs, seconds) is >= 0: a lower end below
    0 is clipped there (2 repetitions gave trials to target 51 [-254, 356])."""
    mean, low, high = mean_interval(values, level)
    return (mean, mean, mean) if len(values) < 2 else (mean, max(low, 0.0), high)


@dataclass
class SearcherReport:
    """What one searcher did over its repetitions."""

    name: str
    runs: int
    final_hv: tuple[float, float, float]  # normalised HV at the end (mean, low, high)
    trials_to_target: list[int]  # trials trained until 95 % of the exhaustive HV, reached runs
    time_to_target: list[float]  # simulated seconds until then, reached runs
    sim_time: tuple[float, float, float]  # simulated seconds of the whole search
    trained: tuple[float, float, float]  # trials that trained (COMPLETE + PRUNED)
    epochs: tuple[float, float, float]  # epochs trained
    skipped: float  # mean proposals answered without training (repeats, over budget)
    missing: float  # mean proposals the table could not answer
    asha: dict[str, Any] | None = None  # epochs vs no pruning, front changes
    hv_by_time: list[tuple[float, float, float]] = field(default_factory=list)  # per time point
    hv_by_trials: list[tuple[float, float, float]] = field(default_factory=list)  # per trial 1..


def _step(trace: list[tuple[float, int, float]], at: float, index: int) -> float:
    """The last traced value whose coordinate (``index`` 0: time, 1: trials) is <= ``at``."""
    value = 0.0
    for point in trace:
        if point[index] > at:
            break
        value = point[2]
    return value


def summarise(bench: Bench, runs: Sequence[ReplayRun], names: Sequence[str]
              ) -> tuple[list[SearcherReport], list[float]]:
    """A report per searcher (in ``names`` order) and the common time axis of the curves."""
    traces = {id(r): hv_trace(bench, r) for r in runs}
    horizon = max((t[-1][0] for t in traces.values() if t), default=0.0)
    times = [horizon * i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)]
    target = TARGET * bench.exhaustive_hv
    reports = []
    for name in names:
        mine = [r for r in runs if r.searcher == name]
        finals, to_n, to_t, ends, trained, epochs, skipped, missing = ([] for _ in range(8))
        for run in mine:
            trace = traces[id(run)]
            finals.append(trace[-1][2] if trace else 0.0)
            hit = next((p for p in trace if p[2] >= target - 1e-12), None)
            if hit is not None:
                to_t.append(hit[0])
                to_n.append(hit[1])
            ends.append(max((t.end for t in run.trials), default=0.0))
            trained.append(float(len(run.trained())))
            epochs.append(float(sum(t.epochs for t in run.trials)))
            skipped.append(float(sum(t.state == "SKIPPED" for t in run.trials)))
            missing.append(float(sum(t.state == "MISSING" for t in run.trials)))
        longest = int(max(trained, default=0))
        report = SearcherReport(
            name=name, runs=len(mine), final_hv=t_interval(finals), trials_to_target=to_n,
            time_to_target=to_t, sim_time=t_interval(ends), trained=t_interval(trained),
            epochs=t_interval(epochs), skipped=statistics.fmean(skipped) if mine else 0.0,
            missing=statistics.fmean(missing) if mine else 0.0,
            hv_by_time=[t_interval([_step(traces[id(r)], at, 0) for r in mine]) for at in times],
            hv_by_trials=[t_interval([_step(traces[id(r)], n, 1) for r in mine])
                          for n in range(1, longest + 1)])
        if any(t.state == "PRUNED" for r in mine for t in r.trials) or "asha" in name:
            report.asha = _asha(bench, mine)
        reports.append(report)
    return reports, times


def _asha(bench: Bench, runs: Sequence[ReplayRun]) -> dict[str, Any]:
    """Epochs ASHA trained against the same proposals trained to the end, and whether pruning
    changed the front (its COMPLETE networks against every network it trained)."""
    ratios, changed, hv_with, hv_without = [], 0, [], []
    for run in runs:
        trained = run.trained()
        full = sum(len(bench.curves[t.arch_id][t.seed]) for t in trained if t.seed is not None)
        ratios.append(sum(t.epochs for t in trained) / full if full else 1.0)
        kept = [t.arch_id for t in trained if t.state == "COMPLETE"]
        every = list(dict.fromkeys(t.arch_id for t in trained))
        if final_front(bench, kept) != final_front(bench, every):
            changed += 1
        hv_with.append(bench.reference.normalised(
            (bench.mean_acc[a], bench.macs[a]) for a in kept))
        hv_without.append(bench.reference.normalised(
            (bench.mean_acc[a], bench.macs[a]) for a in every))
    return {"epoch_ratio": t_interval(ratios), "front_changed": changed, "runs": len(runs),
            "hv_with": t_interval(hv_with), "hv_without": t_interval(hv_without)}


# --- output -----------------------------------------------------------------------------------


def _ci(v: tuple[float, float, float], fmt: str = "{:.3f}") -> str:
    mean, lo, hi = v
    if math.isnan(mean):
        return "-"
    if lo == hi:
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def print_report(bench: Bench, reports: Sequence[SearcherReport], times: Sequence[float], *,
                 stream: TextIO, budget: int, workers: int) -> None:
    """The efficiency tables: reaching the front, HV along the way, and ASHA's saving."""
    from rich.console import Console
    from rich.table import Table

    def table(columns: list[str]) -> Any:
        out = Table(show_edge=False, pad_edge=False)
        for i, col in enumerate(columns):
            out.add_column(col, justify="left" if i == 0 else "right")
        return out

    console = Console(file=stream, width=150, force_terminal=False, highlight=False)
    n, ref = bench.networks, bench.reference
    runs = reports[0].runs if reports else 0
    console.print(
        f"\nSearch efficiency: {runs} repetitions per searcher (95 % t intervals), {budget} "
        f"proposals each, {workers} trial(s) at a time on the simulated clock.\nHV = "
        f"hypervolume of the front (mean {ACC_NAME} over seeds up, MACs down) of the networks "
        f"trained to the end, normalised; reference point {ACC_NAME} {ref.acc:.3f}, "
        f"{ref.cost / 1e6:.2f} M MACs. Exhaustive (all {n} networks): HV "
        f"{bench.exhaustive_hv:.3f}; target {TARGET:.0%} of it = "
        f"{TARGET * bench.exhaustive_hv:.3f}.")
    main = table(["searcher", "final HV", f"trials to {TARGET:.0%}", f"as share of {n}",
                  "reached", f"sim. hours to {TARGET:.0%}", "sim. hours", "trained",
                  "epochs", "answered untrained"])
    for r in reports:
        to_n = t_interval([float(x) for x in r.trials_to_target])
        main.add_row(
            r.name, _ci(r.final_hv), _ci(to_n, "{:.0f}"),
            f"{to_n[0] / n:.0%}" if r.trials_to_target else "-",
            f"{len(r.trials_to_target)}/{r.runs}",
            _ci(t_interval([t / 3600 for t in r.time_to_target]), "{:.2f}"),
            f"{r.sim_time[0] / 3600:.2f}", f"{r.trained[0]:.0f}", f"{r.epochs[0]:.0f}",
            f"{r.skipped:.1f}")
    console.print(main)
    console.print("(trials to the target: mean over the runs that reached it; answered "
                  "untrained: repeated proposals of a network whose seeds were all used)")
    if any(r.missing for r in reports):
        console.print("Proposals the table could not answer (networks or seeds it lacks): "
                      + ", ".join(f"{r.name} {r.missing:.1f}" for r in reports if r.missing))
    marks = sorted({max(1, round(n * f)) for f in (0.1, 0.25, 0.5)})
    hours = [times[round((len(times) - 1) * f)] for f in (0.1, 0.25, 0.5)] if times else []
    along = table(["searcher", *(f"HV @ {k} trials" for k in marks),
                   *(f"HV @ {_duration(h)}" for h in hours)])
    for r in reports:
        by_trials = [_ci(r.hv_by_trials[min(k, len(r.hv_by_trials)) - 1])
                     if r.hv_by_trials else "-" for k in marks]
        by_time = [_ci(r.hv_by_time[round((len(times) - 1) * f)]) for f in (0.1, 0.25, 0.5)]
        along.add_row(r.name, *by_trials, *by_time[:len(hours)])
    console.print("\nHypervolume along the way (trials trained; simulated hours)")
    console.print(along)
    asha = [r for r in reports if r.asha]
    if asha:
        console.print("\nASHA in MAC bands against the same proposals trained to the end")
        saving = table(["searcher", "epochs vs no pruning", "final front changed",
                        "HV with pruning", "HV without pruning"])
        for r in asha:
            a = r.asha or {}
            saving.add_row(r.name, _ci(a["epoch_ratio"], "{:.2f}"),
                           f"{a['front_changed']}/{a['runs']} runs", _ci(a["hv_with"]),
                           _ci(a["hv_without"]))
        console.print(saving)


def figure(bench: Bench, reports: Sequence[SearcherReport], times: Sequence[float]) -> Any:
    """Plotly: HV against simulated hours and against trials, a 95 % band per searcher."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("against simulated time",
                                                        "against trials trained"))
    hours = [t / 3600 for t in times]
    for i, r in enumerate(reports):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        for col, xs, ys in ((1, hours, r.hv_by_time),
                            (2, list(range(1, len(r.hv_by_trials) + 1)), r.hv_by_trials)):
            mean = [y[0] for y in ys]
            band_x = list(xs) + list(xs)[::-1]
            band_y = [y[2] for y in ys] + [y[1] for y in ys][::-1]
            fig.add_trace(go.Scatter(x=band_x, y=band_y, fill="toself", line={"width": 0},
                                     fillcolor=color, opacity=0.18, hoverinfo="skip",
                                     showlegend=False, legendgroup=r.name), row=1, col=col)
            fig.add_trace(go.Scatter(x=list(xs), y=mean, name=r.name, legendgroup=r.name,
                                     line={"color": color}, showlegend=col == 1),
                          row=1, col=col)
    for col in (1, 2):
        fig.add_hline(y=bench.exhaustive_hv, line_dash="dot", line_color="gray", row=1, col=col)
        fig.add_hline(y=TARGET * bench.exhaustive_hv, line_dash="dash", line_color="gray",
                      row=1, col=col)
    fig.update_xaxes(title_text="simulated hours", row=1, col=1)
    fig.update_xaxes(title_text="trials trained", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume (normalised)", row=1, col=1)
    fig.update_layout(title=f"Search efficiency on {bench.table.provenance.get('study', '')}: "
                            f"{bench.networks} networks × {len(bench.seeds)} seeds"
                            + (" (SYNTHETIC table)" if bench.table.synthetic else ""),
                      template="plotly_white", width=1100, height=450)
    return fig
