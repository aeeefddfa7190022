"""Ray/Optuna wiring without a Ray cluster: the searcher, the banded ASHA, error reasons."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from search.schema import TrialState
from search.tuning import (
    BandedASHA,
    StudySearch,
    error_reason,
    final_state,
    was_stopped_early,
)

SPACE = {"stage1.kind": CategoricalDistribution(["2d", "3d"])}


def _searcher() -> StudySearch:
    return StudySearch(space=dict(SPACE), metric=["val/acc1", "macs"], mode=["max", "min"],
                       sampler=optuna.samplers.RandomSampler(seed=0))


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
