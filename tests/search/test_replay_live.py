"""Sanity of the replay: a real live study and the replay of its database, same searcher seed,
propose the same first networks (TPE's first proposals are seeded random start-up trials; the
grid's order is the GridSampler's seeded shuffle)."""

from __future__ import annotations

import sqlite3

import pytest

from search.replay_sim import Bench, parse_searchers, replay
from search.replay_table import study_table

TINY = ("data.clip_len=4", "data.size=16", "data.n_train=32", "data.n_val=16",
        "data.object_size=3", "data.target_size=6", "data.n_distractors=2",
        "train.batch_size=8", "train.warmup_epochs=0", "train.epochs=2", "study.seeds=[0]")
FOUR_CELLS = ("study.space.choices.stem.kind=[2d,3d]", "study.space.choices.stage1.kind=[2d,3d]",
              "study.space.choices.stage2.kind=[2d]", "study.space.choices.stage3.kind=[2d]",
              "study.space.choices.stage4.kind=[2d]")


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["tpe", "grid"])
def test_live_study_and_its_replay_propose_the_same_first_trials(runner, sampler: str) -> None:
    name = f"live_{sampler}"
    extra = FOUR_CELLS if sampler == "grid" else ("study.num_samples=4",)
    # one trial at a time: trials start (and are numbered) in the order they were proposed
    out = runner.run("study=bench_video", f"study.name={name}", f"study.sampler={sampler}",
                     "hardware.max_concurrent_trials=1", *TINY, *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    with sqlite3.connect(runner.db) as conn:
        live = [a for (a,) in conn.execute("SELECT arch_id FROM trials ORDER BY number")]
    assert len(live) == 4

    bench = Bench(study_table(str(runner.db), name))
    assert bench.networks == 4 and bench.seeds == (0,)
    (searcher,) = parse_searchers(sampler)
    run = replay(bench, searcher, 0, workers=2, budget=4)  # repetition 0 = the live seed
    replayed = [t.arch_id for t in sorted(run.trials, key=lambda t: t.number)
                if t.state != "SKIPPED"]
    assert replayed == live
    if sampler == "tpe":  # and another seed proposes other networks: the match is no accident
        other = replay(bench, searcher, 1, workers=2, budget=4)
        assert [t.arch_id for t in sorted(other.trials, key=lambda t: t.number)] != live
    assert all(t.state == "COMPLETE" for t in run.trials)  # every proposal is in the table
