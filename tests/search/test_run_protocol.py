"""The study protocol end to end through ``python -m search.run`` and the real driver (slow).

- A trial is a function of (network, seed, data, train settings): the same cells in other
  studies, orders and concurrency store the same per-epoch metrics, bit for bit.
- Each seed draws its own clips (``trials.data_seed``); a pinned ``data.data_seed`` gives every
  seed the same ones.
- A trial the plateau stopper ends is COMPLETE, ``plateaued``, with fewer epochs than the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from search.design.protocol import baselines, trial_data_seed
from tests.search.conftest import StudyRunner
from tests.search.polling import query

EPOCHS = ("train.epochs=2",)
TIMING = ("epoch_time_s",)  # wall-clock metrics: the only ones allowed to differ




def _curves(db: Path) -> dict[tuple[str, int], list[tuple[int, str, float]]]:
    """Per-epoch metrics of every COMPLETE cell (label, seed), timing metrics left out."""
    out: dict[tuple[str, int], list[tuple[int, str, float]]] = {}
    for label, seed, epoch, name, value in query(
            db, "SELECT t.label, t.seed, e.epoch, e.name, e.value FROM trials t "
                "JOIN epoch_metrics e ON e.trial_id = t.id WHERE t.state = 'COMPLETE' "
                "ORDER BY t.label, t.seed, e.epoch, e.name"):
        if name not in TIMING:
            out.setdefault((label, seed), []).append((epoch, name, value))
    return out


def _trials(db: Path) -> dict[tuple[str, int], dict]:
    cols = ("state", "data_seed", "plateaued", "train_val_gap", "chance_acc", "majority_acc")
    return {(label, seed): dict(zip(cols, rest, strict=True)) for label, seed, *rest in query(
        db, f"SELECT label, seed, {', '.join(cols)} FROM trials")}


@pytest.fixture(scope="module")
def study_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StudyRunner, Path]]:
    """study=smoke with seeds 0 and 1, two trials at a time: the reference database."""
    work = tmp_path_factory.mktemp("protocol")
    runner = StudyRunner(work)
    out = runner.run(*EPOCHS, "storage=sqlite:///a.db", "summary=false")
    assert out.returncode == 0, out.stderr[-3000:]
    yield runner, work / "a.db"
    runner.cleanup()


@pytest.mark.slow
def test_same_cells_store_the_same_metrics_in_any_study_order_or_concurrency(study_a) -> None:
    """Seed 1 alone (fresh workers), and seeds [1, 0] one trial at a time (one worker reused by
    every trial, seed 0 after seed 1): the stored per-epoch metrics equal study A's, bit for bit.
    """
    runner, db_a = study_a
    b = runner.run(*EPOCHS, "study.seeds=[1]", "storage=sqlite:///b.db", "summary=false")
    assert b.returncode == 0, b.stderr[-3000:]
    c = runner.run(*EPOCHS, "study.seeds=[1,0]", "hardware.max_concurrent_trials=1",
                   "storage=sqlite:///c.db", "summary=false")
    assert c.returncode == 0, c.stderr[-3000:]
    a, b_curves, c_curves = _curves(db_a), _curves(runner.cwd / "b.db"), _curves(
        runner.cwd / "c.db")
    assert len(a) == 4 and all(len(v) == 2 * 6 for v in a.values())  # 2 epochs x 6 metrics
    assert b_curves == {k: v for k, v in a.items() if k[1] == 1}
    assert c_curves == a
    # The same cells also recorded the same data seed and baselines.
    trials_a, trials_c = _trials(db_a), _trials(runner.cwd / "c.db")
    assert trials_c == trials_a
    # Seeds are replicates: the two seeds of a network did not train alike.
    assert a[("f_r2d", 0)] != a[("f_r2d", 1)]


@pytest.mark.slow
def test_each_seed_draws_its_own_clips_unless_the_study_pins_them(study_a) -> None:
    """Study A's seeds drew different clips (data seeds from ``trial_data_seed``); a study that
    pins ``data.data_seed`` to seed 1's draw reproduces seed 1's trials exactly and changes
    seed 0's (same weights, other clips)."""
    from search.data.synthetic import make_synthetic
    from search.design.composing import compose, to_run_config
    from search.design.studies import synthetic_config

    runner, db_a = study_a
    trials_a = _trials(db_a)
    for (_, seed), row in trials_a.items():
        assert row["state"] == "COMPLETE" and row["data_seed"] == trial_data_seed(None, seed)
    seed1_clips = trial_data_seed(None, 1)
    pinned = runner.run(*EPOCHS, f"data.data_seed={seed1_clips}", "storage=sqlite:///p.db",
                        "summary=false")
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    trials_p = _trials(runner.cwd / "p.db")
    assert {row["data_seed"] for row in trials_p.values()} == {seed1_clips}
    a, p = _curves(db_a), _curves(runner.cwd / "p.db")
    for label in ("f_r2d", "bottom1_3d"):
        assert p[(label, 1)] == a[(label, 1)]  # same network, seed and clips
        assert p[(label, 0)] != a[(label, 0)]  # same network and seed, other clips

    # Baselines: chance 1/4 and the majority share of the val set each trial drew.
    data = to_run_config(compose(["study=smoke"])).data.__dict__
    for row in [*trials_a.values(), *trials_p.values()]:
        _, val = make_synthetic(synthetic_config(data), seed=row["data_seed"])
        assert (row["chance_acc"], row["majority_acc"]) == baselines(val.labels.tolist(), 4)


@pytest.mark.slow
def test_a_trial_the_plateau_stopper_ends_is_complete_and_plateaued(runner) -> None:
    """A budget of 5 epochs with a rule every curve meets after 2 epochs (no change can beat
    min_delta=1.0): no plateau is called before half the budget (3 epochs, the default
    train.plateau_min_epochs), so every trial stops at epoch 3, COMPLETE; with the stopper off
    the same rule is still recorded after all 5 epochs."""
    rule = ("train.epochs=5", "train.plateau_patience=1", "train.plateau_min_delta=1.0",
            "study.seeds=[0]")
    out = runner.run(*rule)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 complete, 0 pruned, 0 failed" in out.stdout
    rows = query(runner.db, "SELECT t.id, t.state, t.error, t.plateaued, t.train_val_gap, "
                            "max(e.epoch) FROM trials t JOIN epoch_metrics e "
                            "ON e.trial_id = t.id GROUP BY t.id")
    assert len(rows) == 2
    for trial_id, state, error, plateau, gap, last_epoch in rows:
        assert (state, error, plateau, last_epoch) == ("COMPLETE", None, 1, 3)
        final = dict(query(runner.db, f"SELECT name, value FROM results "
                                      f"WHERE trial_id = {trial_id}"))
        assert final["epoch"] == 3
        assert gap == final["train/acc1"] - final["val/acc1"]

    fixed = runner.run(*rule, "train.plateau_stop=false", "study.name=fixed")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    rows = query(runner.db, "SELECT t.state, t.plateaued, max(e.epoch) FROM trials t "
                            "JOIN studies s ON s.id = t.study_id JOIN epoch_metrics e "
                            "ON e.trial_id = t.id WHERE s.name = 'fixed' GROUP BY t.id")
    assert rows == [("COMPLETE", 1, 5)] * 2
