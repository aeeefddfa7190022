"""Replaying searchers against a benchmark table: the table, the simulation, the report, the CLI.

A small synthetic table (18 networks x 3 seeds x 4 epochs of study=bench_video with three
positions fixed) is written once per session through the real path: a results database under
the preset's config, exported by ``search.replay_table``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.synthetic_bench import bench_table
from search.replay import main
from search.replay_sim import Bench, TrialRecord, hv_trace, parse_searchers, replay
from search.replay_table import ReplayError, provenance_path, read_table, study_table

SMALL = ("study=bench_video", "study.space.choices.stage2.kind=[2d]",
         "study.space.choices.stage3.kind=[2d]", "study.space.choices.stage4.kind=[2d,3d]",
         "train.epochs=4", "study.scheduler.grace_epochs=1", "study.scheduler.reduction_factor=2")


@pytest.fixture(scope="session")
def small_table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "small.parquet"
    bench_table(path, SMALL)
    return path


@pytest.fixture(scope="session")
def bench(small_table: Path) -> Bench:
    return Bench(read_table(small_table))


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- the table --------------------------------------------------------------------------------


def test_table_rows_columns_and_provenance(small_table: Path) -> None:
    table = read_table(small_table)
    frame = table.frame
    assert table.networks == 18 and table.seeds == [0, 1, 2] and table.epochs == 4
    assert len(frame) == 18 * 3 * 4
    assert list(table.param_columns) == ["stem.kind", "stage1.kind", "stage4.kind"]
    for column in ("arch_id", "label", "macs", "params", "seed", "epoch", "val/acc1",
                   "val/loss", "train/acc1", "epoch_time_s"):
        assert column in frame.columns
    first = frame[frame["label"] == "3d-2plus1d-2d-2d-3d"].iloc[0]
    assert (first["stem.kind"], first["stage1.kind"], first["stage4.kind"]) == (
        "3d", "2plus1d", "3d")
    meta = json.loads(provenance_path(small_table).read_text())
    assert meta["synthetic"] is True and meta["networks"] == 18 and meta["seeds"] == [0, 1, 2]
    for key in ("command", "git_sha", "date", "hardware", "config"):
        assert key in meta
    assert meta["config"]["study"]["sampler"] == "grid"


def test_csv_gz_round_trip(small_table: Path, tmp_path: Path) -> None:
    from search.replay_table import write_table

    table = read_table(small_table)
    out = write_table(table, tmp_path / "copy.csv.gz")
    again = read_table(out)
    pd.testing.assert_frame_equal(again.frame[["arch_id", "seed", "epoch", "macs"]],
                                  table.frame[["arch_id", "seed", "epoch", "macs"]])
    assert again.provenance["config"] == table.provenance["config"]


def test_export_from_a_database(tmp_path: Path, capsys) -> None:
    """The exporter on a study database: COMPLETE trials only, every epoch, provenance."""
    from analysis.synthetic import bulk_write_trials, exhaustive_trials
    from search.design.composing import compose, to_run_config
    from search.design.resuming import snapshot
    from search.design.studies import build_design
    from search.results.store import open_engine

    cfg = to_run_config(compose(list(SMALL)))
    trials = exhaustive_trials(build_design(cfg).cells[:4], seeds=(0, 1), n_epochs=3)
    db = tmp_path / "studies.db"
    engine = open_engine(f"sqlite:///{db}", create=True)
    bulk_write_trials(engine, "bench_video", trials, kind="grid", config=snapshot(cfg))
    engine.dispose()
    code, out, err = _run(["export", "--db", str(db), "--study", "bench_video", "--out",
                           str(tmp_path / "t.parquet"), "--note", "run on 2 cores"], capsys)
    assert code == 0, err
    assert "4 networks × 2 seeds × 3 epochs" in out
    table = read_table(tmp_path / "t.parquet")
    assert len(table.frame) == 4 * 2 * 3
    assert table.provenance["study"] == "bench_video"
    assert "search.replay export" in table.provenance["command"]
    assert table.provenance["note"] == "run on 2 cores"
    assert {"date", "exported_git_sha", "hardware"} <= set(table.provenance)


# --- the simulation ---------------------------------------------------------------------------


def test_grid_trains_every_network_once_and_reaches_the_exhaustive_front(bench: Bench) -> None:
    (grid,) = parse_searchers("grid")
    run = replay(bench, grid, 0, workers=2, budget=100)
    assert sorted(t.arch_id for t in run.trials) == sorted(bench.curves)  # capped at the grid
    assert all(t.state == "COMPLETE" and t.epochs == 4 for t in run.trials)
    assert hv_trace(bench, run)[-1][2] == pytest.approx(bench.exhaustive_hv)


def test_a_repetition_is_reproducible_and_repetitions_differ(bench: Bench) -> None:
    (tpe,) = parse_searchers("tpe")
    a, b = (replay(bench, tpe, 3, workers=2, budget=12) for _ in range(2))
    assert [(t.arch_id, t.seed, t.end) for t in a.trials] == \
        [(t.arch_id, t.seed, t.end) for t in b.trials]
    c = replay(bench, tpe, 4, workers=2, budget=12)
    assert [t.arch_id for t in a.trials] != [t.arch_id for t in c.trials]


def test_the_clock_follows_the_stored_epoch_times_and_the_workers(bench: Bench) -> None:
    (grid,) = parse_searchers("grid")

    def duration(t: TrialRecord) -> float:
        return sum(r["epoch_time_s"] for r in bench.curves[t.arch_id][t.seed][:t.epochs])

    one = replay(bench, grid, 0, workers=1, budget=18)
    for t in one.trials:
        assert t.end - t.start == pytest.approx(duration(t))
    total = sum(duration(t) for t in one.trials)
    assert max(t.end for t in one.trials) == pytest.approx(total)  # one at a time
    three = replay(bench, grid, 0, workers=3, budget=18)
    busy = max(t.end for t in three.trials)
    assert total / 3 <= busy + 1e-9 < total  # three at once: about a third of the time
    starts = sorted(t.start for t in three.trials)
    assert starts[:3] == [0.0, 0.0, 0.0]


def test_asha_prunes_in_bands_and_proposes_what_random_proposes(bench: Bench) -> None:
    random, asha = parse_searchers("random,asha")
    plain = replay(bench, random, 1, workers=2, budget=18)
    pruned = replay(bench, asha, 1, workers=2, budget=18)
    def proposals(run):
        return sorted((t.number, t.arch_id, t.seed, t.state == "SKIPPED") for t in run.trials)

    assert proposals(plain) == proposals(pruned)  # a random sampler ignores the results
    states = {t.state for t in pruned.trials}
    assert "PRUNED" in states and "COMPLETE" in states
    assert all(t.epochs < 4 for t in pruned.trials if t.state == "PRUNED")
    assert sum(t.epochs for t in pruned.trials) < sum(t.epochs for t in plain.trials)


def test_parse_searchers() -> None:
    names = [(s.name, s.sampler, s.asha) for s in parse_searchers("grid, tpe+asha,asha")]
    assert names == [("grid", "grid", False), ("tpe+asha", "tpe", True),
                     ("asha", "random", True)]
    for bad in ("bogus", "tpe+bogus", "grid,grid", ""):
        with pytest.raises(ReplayError, match="--searchers"):
            parse_searchers(bad)


# --- the command line -------------------------------------------------------------------------


def test_replay_prints_the_header_the_table_and_the_figure(small_table: Path, tmp_path: Path,
                                                          capsys) -> None:
    figure = tmp_path / "fig.html"
    code, out, err = _run([str(small_table), "--searchers", "grid,random,tpe,nsga2,asha",
                           "--repetitions", "3", "--jobs", "1", "--figure", str(figure)], capsys)
    assert code == 0, err
    assert "bench_video: 18 networks × 3 seeds × 4 epochs (SYNTHETIC" in out.splitlines()[0]
    for name in ("grid", "random", "tpe", "nsga2", "asha"):
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "trials to 95%" in out and "HV @ " in out and "epochs vs no pruning" in out
    assert figure.is_file() and "plotly" in figure.read_text()[:5000].lower()


def test_replay_in_two_processes_gives_the_same_report(small_table: Path, capsys) -> None:
    args = [str(small_table), "--searchers", "random,asha", "--repetitions", "4"]
    _, one, _ = _run([*args, "--jobs", "1"], capsys)
    _, two, _ = _run([*args, "--jobs", "2"], capsys)
    table = [line for line in one.splitlines() if line.startswith(("random", "asha"))]
    assert table and table == [line for line in two.splitlines()
                               if line.startswith(("random", "asha"))]


def _no_epochs_db(path: Path) -> Path:
    from analysis.synthetic import bulk_write_random
    from search.results.store import open_engine

    engine = open_engine(f"sqlite:///{path}", create=True)
    bulk_write_random(engine, "finals_only", 10, seeds=2, n_epochs=0)
    engine.dispose()
    return path


@pytest.mark.parametrize(("argv", "expected"), [
    (["--searchers", "grid,bogus"], "--searchers: unknown searcher 'bogus'"),
    (["--repetitions", "0"], "--repetitions: must be >= 1"),
    (["--workers", "two"], "--workers"),
    (["--figure", "x.pdf"], "--figure:"),
])
def test_bad_options_are_one_line(argv: list[str], expected: str, small_table: Path,
                                  capsys) -> None:
    code, out, err = _run([str(small_table), *argv], capsys)
    assert code == 2 and err.startswith("error: ") and expected in err, err
    assert err.count("\n") == 1 and out == ""


def test_bad_sources_are_one_line(tmp_path: Path, capsys) -> None:
    cases = [
        ([str(tmp_path / "absent.parquet")], "absent.parquet: no such table"),
        ([str(tmp_path / "table.txt")], "a table is a .parquet or .csv.gz file"),
        (["--db", str(tmp_path / "none.db"), "--study", "x"], "--db: no such database"),
        (["--db", str(_no_epochs_db(tmp_path / "s.db")), "--study", "finals_only"],
         "has no per-epoch metrics"),
        (["--db", str(tmp_path / "s.db"), "--study", "nope"], "--study: no study 'nope'"),
        (["--db", str(tmp_path / "s.db")], "--study:"),
        (["export", "--db", str(tmp_path / "s.db"), "--study", "finals_only", "--out",
          str(tmp_path / "t.parquet")], "has no per-epoch metrics"),
    ]
    for argv, expected in cases:
        code, out, err = _run(argv, capsys)
        assert code == 2 and err.startswith("error: ") and expected in err, (argv, err)
        assert err.count("\n") == 1 and out == "", err
    assert not (tmp_path / "t.parquet").exists()
    with sqlite3.connect(tmp_path / "s.db") as conn:  # the database is read, not changed
        assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 10


def _grid_design_db(path: Path) -> Path:
    """A placement study (a grid of named networks, no search space) with per-epoch rows."""
    from analysis.synthetic import bulk_write_trials, exhaustive_trials
    from search.design.composing import compose, to_run_config
    from search.design.resuming import snapshot
    from search.design.studies import build_design
    from search.results.store import open_engine

    cfg = to_run_config(compose(["study=smoke"]))
    trials = exhaustive_trials(build_design(cfg).cells, seeds=(0, 1), n_epochs=2)
    engine = open_engine(f"sqlite:///{path}", create=True)
    bulk_write_trials(engine, "smoke", trials, kind="grid", config=snapshot(cfg))
    engine.dispose()
    return path


def test_a_grid_design_replays_only_with_grid(tmp_path: Path, capsys) -> None:
    db = str(_grid_design_db(tmp_path / "grid.db"))
    code, out, err = _run(["--db", db, "--study", "smoke", "--searchers", "grid",
                           "--repetitions", "2", "--jobs", "1"], capsys)
    assert code == 0, err
    assert out.startswith("smoke: 2 networks × 2 seeds × 2 epochs")
    code, out, err = _run(["--db", db, "--study", "smoke", "--searchers", "grid,tpe"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "'tpe' needs a study with a search space (design=space)" in err


def test_a_database_without_a_study_config_is_refused(tmp_path: Path, capsys) -> None:
    from analysis.synthetic import make_demo_db

    make_demo_db(f"sqlite:///{tmp_path / 'demo.db'}", n_random=0).dispose()
    code, out, err = _run(["--db", str(tmp_path / "demo.db"), "--study", "bottom_vs_top"],
                          capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "its study config does not load" in err, err


def test_a_table_without_provenance_is_refused(small_table: Path, tmp_path: Path,
                                               capsys) -> None:
    copy = tmp_path / "lonely.parquet"
    copy.write_bytes(small_table.read_bytes())
    code, _, err = _run([str(copy)], capsys)
    assert code == 2 and "lonely.json: the table's provenance file is missing" in err


def test_study_table_reads_a_database_like_the_exported_file(small_table: Path) -> None:
    with pytest.raises(ReplayError, match="no such database"):
        study_table(str(small_table.with_suffix(".db")), "bench_video")


def test_the_shipped_benchmark_is_the_measured_study_with_its_provenance() -> None:
    """search/bench/bench_video.parquet: the exhaustive study (not the synthetic stand-in),
    every (network, seed) with every epoch, and where it comes from."""
    from search.replay import default_table

    table = read_table(default_table())
    assert default_table().name == "bench_video.parquet" and not table.synthetic
    assert table.networks >= 200 and len(table.seeds) >= 3
    frame = table.frame
    per_cell = frame.groupby(["arch_id", "seed"])["epoch"].agg(["min", "max", "count"])
    assert len(per_cell) == table.networks * len(table.seeds)
    assert (per_cell["min"] == 1).all() and (per_cell["count"] == per_cell["max"]).all()
    assert frame[["val/acc1", "epoch_time_s"]].notna().all().all()
    meta = table.provenance
    assert {"command", "git_sha", "date", "hardware", "note", "config"} <= set(meta)
    assert meta["config"]["study"]["name"] == "bench_video"


def test_report_intervals_stay_at_or_above_zero() -> None:
    """Trials, hours and hypervolume are never negative: a wide interval is clipped at 0."""
    from search.replay_report import t_interval

    mean, low, high = t_interval([5.0, 97.0])
    assert mean == 51.0 and low == 0.0 and high > 97.0
    assert t_interval([3.0]) == (3.0, 3.0, 3.0)
    mean, low, high = t_interval([10.0, 11.0, 12.0])
    assert 0 < low < 11.0 < high
