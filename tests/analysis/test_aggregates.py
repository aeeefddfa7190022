"""SQL aggregates (analysis.aggregates + analysis.unit_stats) against pandas on the same trials.

The per-network GROUP BY must give the numbers ``analysis.stats`` / ``analysis.budget`` /
``analysis.summary`` compute from ``load_trials`` rows: on SQLite and on PostgreSQL, with and
without stored placement facts; trial pages return every row once.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete as sa_delete
from sqlalchemy import select

import analysis
from analysis import aggregates, placements, unit_stats
from analysis.synthetic import bulk_write_random, make_demo_db
from search.results import summaries
from search.results.schema import ArchPlacementRow, ArchRow, TrialRow, TrialState
from search.results.store import finish_trial, open_engine, session_scope, start_trial

SUMMARY_COLUMNS = ["arch_id", "family", "label", "gmacs", "params", "latency_ms", "n", "mean",
                   "std", "ci_low", "ci_high", "seeds", "chance", "majority", "above_chance",
                   "train_val_gap", "n_undertrained", "memorising", "flags"]


def _frame_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        left, right = a[col], b[col]
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right) \
                and not pd.api.types.is_bool_dtype(left):
            np.testing.assert_allclose(left.to_numpy(dtype=float, na_value=np.nan),
                                       right.to_numpy(dtype=float, na_value=np.nan),
                                       rtol=1e-9, atol=1e-12, err_msg=col)
        else:
            assert [None if pd.isna(v) else v for v in left] == \
                   [None if pd.isna(v) else v for v in right], col


def _check_study(db: str | Path, study: str, metric: str) -> None:
    df = analysis.load_trials(db, study)
    table = aggregates.arch_table(db, study, metric)
    mode = analysis.stats.metrics.direction(metric)
    by_arch = analysis.arch_summary(df, metric, mode=mode).sort_values("arch_id")
    sql = unit_stats.arch_summary(table, mode=mode).sort_values("arch_id")
    _frame_equal(by_arch[SUMMARY_COLUMNS], sql[SUMMARY_COLUMNS])
    for by in ("family", "label") if df["label"].notna().any() else ("family",):
        _frame_equal(analysis.compare(df, by=by, metric=metric, mode=mode),
                     unit_stats.compare(table, by, mode=mode))
    nets = analysis.network_table(df, metric)
    _frame_equal(nets.sort_values("arch_id"),
                 unit_stats.network_table(table).sort_values("arch_id"))
    budget = float(np.median(df["macs"]))
    want, got = analysis.at_budget(df, macs=budget, metric=metric), \
        unit_stats.at_budget(table, macs=budget)
    assert want.sentences == got.sentences
    _frame_equal(want.families, got.families)
    assert analysis.verdict(df, metric, mode=mode)["sentences"] == \
        unit_stats.verdict(table, mode=mode)["sentences"]
    fields = placements.spec_fields(db, table.archs.index.tolist(), "kind")
    cols = ["position", "kind", "n", "mean", "delta", "sem", "gmacs", "delta_gmacs"]
    _frame_equal(analysis.marginal_effects(df, metric)[cols].sort_values(["position", "kind"]),
                 unit_stats.marginal_effects(table, fields)[cols]
                 .sort_values(["position", "kind"]))
    assert unit_stats.baselines(table) == pytest.approx(analysis.baselines(
        analysis.stats.completed(df, metric)))


@pytest.mark.parametrize("metric", ["val/acc1", "val/loss"])
def test_sql_summaries_equal_pandas_on_sqlite(demo_db: Path, metric: str) -> None:
    for study in ("bottom_vs_top", "random_placement"):
        _check_study(demo_db, study, metric)


def test_stored_placements_give_the_same_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    engine = open_engine(url, create=True)
    bulk_write_random(engine, "bench", 300, seeds=3)  # stores arch_placements as it writes
    engine.dispose()
    _check_study(url, "bench", "val/acc1")
    ids = aggregates.sample_trial_ids(url, "bench", 40)
    assert ids is not None and 35 <= len(ids) <= 40 and len(set(ids)) == len(ids)
    assert placements.fill(url) == 0  # every arch already described


def test_study_facts_match_the_trials(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "bottom_vs_top")
    facts = aggregates.study_facts(demo_db, "bottom_vs_top")
    assert facts.counts == analysis.state_counts(df)
    assert facts.informative() == analysis.informative_metrics(df)
    spent = analysis.budget(df)
    seconds, gmacs = aggregates.study_spent(demo_db, "bottom_vs_top")
    assert seconds == pytest.approx(spent["trial_hours"] * 3600)
    assert gmacs == pytest.approx(spent["gmacs_total"])


def test_trial_pages_return_every_row_once(demo_db: Path) -> None:
    df = analysis.load_trials(demo_db, "random_placement")
    seen: list[int] = []
    offset, total = 0, None
    while True:
        page, total = aggregates.trial_page(demo_db, "random_placement", ["val/acc1"],
                                            offset=offset, limit=7)
        if page.empty:
            break
        seen += page["number"].tolist()
        offset += len(page)
    assert total == len(df) and sorted(seen) == seen == sorted(df["number"])
    where = aggregates.TrialFilter(states=("COMPLETE",), families=("mixed",))
    page, n = aggregates.trial_page(demo_db, "random_placement", ["val/acc1"], where=where,
                                    limit=1000)
    want = df[(df["state"] == "COMPLETE") & (df["family"] == "mixed")]
    assert n == len(want) and page["number"].tolist() == want["number"].tolist()
    np.testing.assert_allclose(page["val/acc1"], want["val/acc1"])
    top = aggregates.top_trials(demo_db, "random_placement", "val/acc1", "max", limit=5)
    best = df.sort_values("val/acc1", ascending=False).head(5)
    assert top["number"].tolist() == best["number"].tolist()


def test_top_trials_rank_those_with_a_value_then_the_rest(demo_db: Path, tmp_path: Path) -> None:
    shutil.copy(demo_db, tmp_path / "copy.db")
    db = tmp_path / "copy.db"
    with sqlite3.connect(db) as conn:  # some trials lose their val/loss
        conn.execute("DELETE FROM results WHERE name = 'val/loss' AND trial_id % 3 = 0")
    df = analysis.load_trials(db, "random_placement")
    every = aggregates.top_trials(db, "random_placement", "val/loss", "min", limit=10_000)
    valued = df[df["val/loss"].notna()].sort_values(["val/loss", "number"], kind="stable")
    rest = df[df["val/loss"].isna()].sort_values("number")
    assert len(rest) and len(valued)
    assert every["number"].tolist() == valued["number"].tolist() + rest["number"].tolist()
    np.testing.assert_allclose(every["val/loss"].head(len(valued)), valued["val/loss"])
    few = aggregates.top_trials(db, "random_placement", "val/loss", "min", limit=len(valued) + 2)
    assert few["number"].tolist() == every["number"].tolist()[:len(valued) + 2]


def test_sql_summaries_equal_pandas_on_postgres(postgres_db: str, demo_db: Path) -> None:
    make_demo_db(postgres_db, n_random=12).dispose()
    for study in ("bottom_vs_top", "random_placement"):
        want = analysis.load_trials(demo_db, study)  # the same synthetic trials, on SQLite
        table = aggregates.arch_table(postgres_db, study, "val/acc1")
        got = unit_stats.arch_summary(table).sort_values("arch_id")
        _frame_equal(analysis.arch_summary(want).sort_values("arch_id")[SUMMARY_COLUMNS],
                     got[SUMMARY_COLUMNS])
        _frame_equal(analysis.compare(want, by="family"), unit_stats.compare(table, "family"))
        _check_study(postgres_db, study, "val/acc1")
        page, total = aggregates.trial_page(postgres_db, study, ["val/acc1"], limit=5,
                                            offset=5)
        assert total == len(want) and page["number"].tolist() == list(range(5, 10))
        facts = aggregates.study_facts(postgres_db, study)
        assert facts.counts == analysis.state_counts(want)
        assert facts.informative() == analysis.informative_metrics(want)
        assert math.isclose(aggregates.study_spent(postgres_db, study)[1],
                            analysis.budget(want)["gmacs_total"])


# --- summaries the writer stores (search.results.summaries) -----------------------------------


def _stored(db: str | Path, study: str, metric: str) -> bool:
    with aggregates.opened(db) as engine:
        return summaries.fresh_seeds(engine, aggregates.study_id(engine, study), metric) \
            is not None


def _refresh(url: str, study: str) -> int:
    engine = open_engine(url, create=True)
    try:
        return summaries.refresh(engine, aggregates.study_id(engine, study))
    finally:
        engine.dispose()


@pytest.mark.parametrize("metric", ["val/acc1", "val/loss"])
def test_stored_summaries_give_the_live_answers_until_a_trial_changes(
        demo_db: Path, tmp_path: Path, metric: str) -> None:
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    shutil.copy(demo_db, tmp_path / "copy.db")
    for study in ("bottom_vs_top", "random_placement"):
        live = aggregates.arch_table(url, study, metric)
        spent = aggregates.study_spent(url, study)
        assert not _stored(url, study, metric)
        assert _refresh(url, study) > 0
        assert aggregates.study_spent(url, study) == pytest.approx(spent)
        with sqlite3.connect(tmp_path / "copy.db") as conn:  # read from the stored row
            assert conn.execute("SELECT count(*) FROM study_summaries").fetchone()[0] >= 1
        assert _stored(url, study, metric)
        kept = aggregates.arch_table(url, study, metric)
        np.testing.assert_array_equal(kept.seeds, live.seeds)
        np.testing.assert_allclose(kept.values, live.values)  # same rows, same order
        _frame_equal(kept.archs.reset_index(), live.archs.reset_index())
        _check_study(url, study, metric)  # the stored path against pandas, every summary
    # a trial ends after the summaries were stored: they are stale, the reader groups live
    engine = open_engine(url, create=True)
    with session_scope(engine) as s:
        sid = aggregates.study_id(engine, "random_placement")
        arch_id = s.scalars(select(TrialRow.arch_id).where(TrialRow.study_id == sid)).first()
        trial = start_trial(s, sid, arch_id=arch_id, seed=7)
        finish_trial(s, trial.id, TrialState.COMPLETE, results={metric: 0.123})
    engine.dispose()
    assert not _stored(url, "random_placement", metric)
    with aggregates.opened(url) as engine:
        sid = aggregates.study_id(engine, "random_placement")
        assert summaries.spent(engine, sid) == pytest.approx(summaries.spent_now(engine, sid))
        with engine.begin() as conn:  # a stale stored row is never read
            conn.exec_driver_sql("UPDATE study_summaries SET spent_s = -1")
        assert summaries.spent(engine, sid)[0] > 0
    table = aggregates.arch_table(url, "random_placement", metric)
    assert 7 in table.seeds.tolist()
    row = table.archs.index.get_loc(arch_id)
    assert table.values[row, table.seeds.tolist().index(7)] == pytest.approx(0.123)
    _check_study(url, "random_placement", metric)


def test_stored_summaries_with_more_seeds_than_columns(demo_db: Path, tmp_path: Path,
                                                       monkeypatch) -> None:
    """More seeds than ``MAX_SEED_COLUMNS``: grouped and stored from (arch, seed) rows."""
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    shutil.copy(demo_db, tmp_path / "copy.db")
    live = aggregates.arch_table(url, "bottom_vs_top", "val/acc1")
    monkeypatch.setattr(summaries, "MAX_SEED_COLUMNS", 1)
    long = aggregates.arch_table(url, "bottom_vs_top", "val/acc1")
    _refresh(url, "bottom_vs_top")
    kept = aggregates.arch_table(url, "bottom_vs_top", "val/acc1")
    for table in (long, kept):
        np.testing.assert_allclose(table.values, live.values)
        _frame_equal(table.archs.reset_index(), live.archs.reset_index())


def test_the_summaries_command_stores_them_and_refuses_bad_input(demo_db: Path, tmp_path: Path,
                                                                 capsys) -> None:
    shutil.copy(demo_db, tmp_path / "copy.db")
    db = str(tmp_path / "copy.db")
    assert summaries.main([db, "--study", "bottom_vs_top"]) == 0
    assert "bottom_vs_top: " in capsys.readouterr().out
    assert _stored(db, "bottom_vs_top", "val/acc1")
    assert not _stored(db, "random_placement", "val/acc1")
    for argv, names in (([db, "--study", "nope"], "--study"),
                        ([str(tmp_path / "missing.db")], "no database")):
        assert summaries.main(argv) == 2
        err = capsys.readouterr().err
        assert names in err and err.count("\n") == 1
    assert not (tmp_path / "missing.db").exists()


def test_stored_summaries_on_postgres(postgres_db: str) -> None:
    make_demo_db(postgres_db, n_random=12).dispose()
    live = aggregates.arch_table(postgres_db, "random_placement", "val/acc1")
    _refresh(postgres_db, "random_placement")
    assert _stored(postgres_db, "random_placement", "val/acc1")
    kept = aggregates.arch_table(postgres_db, "random_placement", "val/acc1")
    np.testing.assert_allclose(kept.values, live.values)
    _frame_equal(kept.archs.reset_index(), live.archs.reset_index())
    _check_study(postgres_db, "random_placement", "val/acc1")


def test_spec_fields_match_the_specs_whichever_way_they_are_read(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Stored fields matched by key, parsed whole, read for every arch or for a list, or
    computed from specs where none is stored: the same frame."""
    url = f"sqlite:///{tmp_path / 'big.db'}"
    engine = open_engine(url, create=True)
    bulk_write_random(engine, "bench", 60, seeds=2)  # stores arch_placements
    engine.dispose()
    ids = aggregates.arch_table(url, "bench", "val/acc1").archs.index.tolist()[::-1]
    want = pd.DataFrame([{k: v for k, v in analysis.placement.arch_features(spec).items()
                          if k.endswith(".kind")} for spec in _specs(url, ids)],
                        index=pd.Index(ids, name="arch_id"))
    got = placements.spec_fields(url, ids, "kind")
    pd.testing.assert_frame_equal(got[sorted(got.columns)], want[sorted(want.columns)],
                                  check_dtype=False)
    monkeypatch.setattr(placements, "MANY_IDS", 5)  # a range of ids read, no IN (...)
    pd.testing.assert_frame_equal(placements.spec_fields(url, ids, "kind"), got)
    some = sorted(ids)[10:40:3]  # a range holding other archs, filtered out
    pd.testing.assert_frame_equal(placements.spec_fields(url, some, "kind"), got.loc[some])
    whole = placements.spec_fields(url, ids[:7])
    pd.testing.assert_frame_equal(whole[got.columns], got.iloc[:7], check_dtype=False)
    assert {"stem.t_kernel"} <= set(whole.columns)
    engine = open_engine(url, create=True)
    with engine.begin() as conn:  # placement facts gone: computed from the specs
        conn.execute(sa_delete(ArchPlacementRow))
    engine.dispose()
    pd.testing.assert_frame_equal(placements.spec_fields(url, ids, "kind"), got)


def _specs(url: str, ids: list[str]) -> list[str]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            specs = dict(conn.execute(select(ArchRow.arch_id, ArchRow.spec_json)).all())
    finally:
        engine.dispose()
    return [specs[a] for a in ids]
