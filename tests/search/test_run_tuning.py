"""Ray/Optuna wiring without a Ray cluster: the searcher, the banded ASHA, error reasons."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from search.design.config import SAMPLERS
from search.results.schema import TrialState
from search.tuning import (
    BandedASHA,
    StudySearch,
    error_reason,
    final_state,
    make_sampler,
    was_stopped_early,
)

SPACE = {"stage1.kind": CategoricalDistribution(["2d", "3d"])}


def _searcher() -> StudySearch:
    return StudySearch(space=dict(SPACE), metric=["val/acc1", "macs"], mode=["max", "min"],
                       sampler=optuna.samplers.RandomSampler(seed=0))


@pytest.mark.parametrize("kind", [k for k in SAMPLERS if k != "grid"])
def test_every_searched_sampler_survives_the_pickle_the_tuner_makes(kind: str) -> None:
    """The Tuner pickles its searcher when it is made; a sampler holding a lock (Optuna 5.1's
    NSGA-II) failed every free search with "cannot pickle '_thread.lock' object"."""
    import ray.cloudpickle

    search = StudySearch(space=dict(SPACE), metric=["val/acc1", "macs"], mode=["max", "min"],
                         sampler=make_sampler(kind, seed=0))
    copy = ray.cloudpickle.loads(ray.cloudpickle.dumps(search))
    for i in range(6):  # the copy still proposes and learns (NSGA-II's lock was rebuilt)
        copy.suggest(f"t{i}")
        copy.on_trial_complete(f"t{i}", {"val/acc1": i / 10, "macs": 1.0 + i, "epoch": 1.0,
                                         "epochs_planned": 1.0})
    states = [t.state for t in copy._ot_study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 6


def test_both_objectives_reach_optuna_and_stopped_trials_are_pruned() -> None:
    search = _searcher()
    search.stopped = {"b"}  # what BandedASHA records when it stops a trial
    search.suggest("a")
    search.on_trial_complete("a", {"val/acc1": 0.5, "macs": 10.0, "epoch": 4.0,
                                   "epochs_planned": 4.0})
    search.suggest("b")
    search.on_trial_complete("b", {"val/acc1": 0.9, "macs": 5.0, "epoch": 1.0,
                                   "epochs_planned": 4.0})
    trials = search._ot_study.get_trials()
    assert trials[0].state == optuna.trial.TrialState.COMPLETE
    assert trials[0].values == [0.5, 10.0]  # two objectives, none dropped
    assert trials[1].state == optuna.trial.TrialState.PRUNED  # stopped by ASHA
    assert [t.number for t in search._ot_study.best_trials] == [0]  # pruned is no Pareto point
    search.suggest("c")  # ended short of its epochs without the scheduler: interrupted
    search.on_trial_complete("c", {"val/acc1": 0.99, "macs": 1.0, "epoch": 2.0,
                                   "epochs_planned": 4.0})
    assert search._ot_study.get_trials()[2].state == optuna.trial.TrialState.FAIL


def test_final_state_prunes_only_what_the_scheduler_stopped() -> None:
    short = {"epoch": 2.0, "epochs_planned": 4.0}
    assert final_state(short, True)[0] is TrialState.PRUNED
    assert final_state(short, False)[0] is TrialState.FAILED
    assert "interrupted" in final_state(short, False)[1]
    assert final_state({"epoch": 4.0, "epochs_planned": 4.0}, False) == (TrialState.COMPLETE, None)


def test_warm_start_adds_stored_trials() -> None:
    search = _searcher()
    search.add_stored_trial({"stage1.kind": "3d"}, SPACE, [0.7, 20.0], TrialState.COMPLETE)
    search.add_stored_trial({"stage1.kind": "2d"}, SPACE, None, TrialState.PRUNED)
    search.add_stored_trial({"stage1.kind": "2d"}, SPACE, None, TrialState.FAILED)  # ignored
    states = [t.state for t in search._ot_study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]


def test_was_stopped_early() -> None:
    assert was_stopped_early({"epoch": 2.0, "epochs_planned": 4.0})
    assert not was_stopped_early({"epoch": 4.0, "epochs_planned": 4.0})
    assert not was_stopped_early({"epoch": 0.0, "epochs_planned": 4.0, "skipped": 1.0})
    assert not was_stopped_early(None)


def _trial(trial_id: str, band: int) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={"band": band})


def test_asha_compares_trials_only_within_a_mac_band() -> None:
    def scheduler() -> BandedASHA:
        return BandedASHA(metric="val/acc1", mode="max", time_attr="epoch", max_t=8,
                          grace_period=1, reduction_factor=2)

    # Same band: the weak trial is stopped once a strong one has set the rung's cutoff.
    same = scheduler()
    strong, weak = _trial("s", 0), _trial("w", 0)
    for t in (strong, weak):
        same.on_trial_add(None, t)
    same.on_trial_result(None, strong, {"epoch": 1, "val/acc1": 0.9})
    decision_same = same.on_trial_result(None, weak, {"epoch": 1, "val/acc1": 0.1,
                                                      "epochs_planned": 8})

    # Different bands: the cheap weak network never competes with the expensive strong one.
    apart = scheduler()
    strong, weak = _trial("s", 20), _trial("w", 18)
    for t in (strong, weak):
        apart.on_trial_add(None, t)
    apart.on_trial_result(None, strong, {"epoch": 1, "val/acc1": 0.9})
    decision_apart = apart.on_trial_result(None, weak, {"epoch": 1, "val/acc1": 0.1})
    assert decision_same == "STOP" and same.stopped == {"w"}
    assert decision_apart == "CONTINUE"


@pytest.mark.parametrize(("exc", "expected"), [
    (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "out of memory"),
    (ValueError("bad\nmore"), "ValueError: bad"),
])
def test_error_reason_is_one_line(exc: BaseException, expected: str) -> None:
    reason = error_reason(SimpleNamespace(), exc)
    assert expected in reason and "\n" not in reason


def test_progress_line_counts_best_and_eta() -> None:
    import io

    from search.progress import ProgressDisplay

    stream = io.StringIO()
    writer = SimpleNamespace(stopped={"p"})
    progress = ProgressDisplay(writer, total=4, study="demo", interval_s=0.5, stream=stream)

    def trial(trial_id: str, label: str, result: dict) -> SimpleNamespace:
        return SimpleNamespace(trial_id=trial_id, config={"label": label}, last_result=result)

    done = {"val/acc1": 0.75, "epoch": 2.0, "epochs_planned": 2.0}
    a, p, f = trial("a", "mc3", done), trial("p", "rmc3", {"epoch": 1.0}), trial("f", "r3d", {})
    for t in (a, p, f):
        progress.on_trial_start(0, [], t)
    progress.on_trial_complete(0, [], a)
    progress.on_trial_complete(0, [], p)
    progress.on_trial_error(0, [], f)
    line = progress.line()
    assert "3/4 done" in line and "0 running" in line and "1 failed" in line
    assert "1 pruned" in line and "best val/acc1 0.750 (mc3)" in line and "ETA" in line
    assert stream.getvalue().count("\n") >= 1  # rate-limited, but state changes are shown


def test_progress_in_a_log_prints_changes_not_heartbeats() -> None:
    import io

    from search.progress import ProgressDisplay

    stream = io.StringIO()
    progress = ProgressDisplay(SimpleNamespace(stopped=set()), total=2, study="demo",
                               interval_s=0.5, stream=stream)
    trial = SimpleNamespace(trial_id="a", config={"label": "mc3"}, last_result={})
    progress.on_trial_start(0, [], trial)
    lines = stream.getvalue().count("\n")
    for _ in range(5):  # nothing changed: no new line, however often Tune calls back
        progress.last = 0.0
        progress.on_step_end(0, [])
    assert stream.getvalue().count("\n") == lines
    progress.on_trial_error(0, [], trial)  # a change is printed at once
    assert stream.getvalue().count("\n") == lines + 1


def test_summary_pareto_uses_complete_trials_and_seed_means() -> None:
    from search.summary import summarize

    def row(label: str, family: str, seed: int, state: str, acc: float, macs: int) -> dict:
        return {"label": label, "family": family, "arch_id": label, "seed": seed, "state": state,
                "results": {"val/acc1": acc}, "macs": macs, "params": 1, "error": None,
                "plateaued": None, "train_val_gap": None, "chance_acc": 0.25,
                "majority_acc": None}

    rows = [row("mc3", "bottom-heavy", 0, "COMPLETE", 0.6, 20), row("mc3", "bottom-heavy", 1,
                                                                  "COMPLETE", 0.4, 20),
            row("rmc3", "top-heavy", 0, "COMPLETE", 0.40, 10),
            row("rmc3", "top-heavy", 1, "COMPLETE", 0.41, 10),
            row("big", "uniform 3D", 0, "COMPLETE", 0.45, 40),
            row("big", "uniform 3D", 1, "COMPLETE", 0.47, 40),
            row("lucky", "top-heavy", 0, "PRUNED", 0.99, 5),
            row("bad", "2D", 0, "FAILED", float("nan"), 5)]
    data = summarize(rows)
    mc3 = next(a for a in data["archs"] if a["label"] == "mc3")
    assert mc3["mean"] == pytest.approx(0.5) and mc3["n"] == 2
    assert mc3["above_chance"] is False  # [0.5 +- 12.7 * 0.1]: includes chance
    assert "interval includes chance" in mc3["flags"]
    # the front holds only networks whose interval is above chance ("lucky" was pruned)
    assert [a["label"] for a in data["front"]] == ["rmc3", "big"]
    assert data["best"]["top-heavy"]["label"] == "rmc3"
    assert [r["label"] for r in data["failures"]] == ["bad"]
    assert data["counts"]["PRUNED"] == 1


def test_dashboard_command_runs_from_where_the_study_ran(tmp_path, monkeypatch) -> None:
    from search.results.loopback import dashboard_command

    monkeypatch.chdir(tmp_path)
    command = dashboard_command("sqlite:///studies.db")
    assert command.startswith("streamlit run /") and command.endswith(
        f"-- --db {tmp_path.resolve() / 'studies.db'}")
