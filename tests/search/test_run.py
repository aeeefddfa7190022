"""``python -m search.run``: config errors, study designs, and end-to-end runs of study=smoke."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from search.design.composing import compose, options, to_run_config
from search.design.config import PLATEAU_KEYS, DataConfig, TrainSettings
from search.design.studies import build_design, mac_band
from search.run import main
from tests.search.polling import query, wait_until

SMOKE_CELLS = 4  # 2 networks x 2 seeds


# --- configs and designs (fast, no Ray) --------------------------------------------------------


def test_data_and_train_configs_mirror_the_dataclasses_they_feed() -> None:
    from search.data.synthetic import SyntheticConfig
    from search.train import TrainConfig

    data = {f.name for f in dataclasses.fields(DataConfig)}
    assert {f.name for f in dataclasses.fields(SyntheticConfig)} <= data
    train = {f.name for f in dataclasses.fields(TrainSettings)}
    # device and threads come from the hardware config; the plateau rule steers the trial, not
    # the loop; the rest must match one to one.
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {"device", "num_threads"} == \
        train - set(PLATEAU_KEYS)
    cfg = to_run_config(compose([]))
    assert cfg.train.epochs == TrainConfig().epochs and cfg.data.clip_len == SyntheticConfig().clip_len


@pytest.mark.parametrize("study", options("study"))
def test_every_study_preset_builds_its_design(study: str) -> None:
    cfg = to_run_config(compose([f"study={study}"]))
    design = build_design(cfg)
    assert design.total >= (2 if study == "smoke" else 6)
    cells = [c.spec.arch_id for c in design.cells]
    assert len(set(cells)) == len(cells)  # a cell is (arch, seed): archs are distinct
    if study == "bottom_vs_top":
        families = {c.family for c in design.cells}
        assert families == {"2D", "uniform 3D", "uniform (2+1)D", "bottom-heavy", "top-heavy"}
        assert len(design.seeds) >= 3
        labels = {c.label for c in design.cells}
        assert {"f_r2d", "r3d", "r2plus1d", "mc3", "mc5", "rmc3", "rmc5"} <= labels


def test_command_line_overrides_reach_the_typed_config() -> None:
    cfg = to_run_config(compose(["study=smoke", "train.epochs=3", "study.seeds=[5]",
                                 "storage=sqlite:///x.db"]))
    assert cfg.train.epochs == 3 and cfg.study.seeds == [5] and cfg.storage == "sqlite:///x.db"


def test_mac_bands_group_similar_costs() -> None:
    assert mac_band(1_100_000, 2.0) == mac_band(1_500_000, 2.0)
    assert mac_band(1_100_000, 2.0) != mac_band(4_500_000, 2.0)


BAD_INPUTS = [
    (["study=nope"], "study: unknown study 'nope'"),
    (["study=smoke", "trian.epochs=3"], "trian: unknown key"),
    (["study=smoke", "+extra=1"], "extra: unknown key"),
    (["study=smoke", "train.epochs=many"], "train.epochs: wrong type"),
    (["study=smoke", "study.seeds=3"], "study.seeds:"),
    (["study=smoke", "study.uniform=[4d]"], "study.uniform: unknown conv kind '4d'"),
    (["study=smoke", "train.epochs=0"], "train.epochs: must be >= 1"),
    (["study=free_search", "study.max_macs=1k"], "study.space.constraints"),
    (["study=smoke", "study.net.widths=[4,8,16]"], "study.net.widths:"),
    (["study=smoke", "storage=postgresql+psycopg2://nobody@127.0.0.1:1/vidarch"],
     "storage: cannot "),  # "cannot open" (refused) or "cannot use" (no psycopg2 installed)
    (["study=smoke", "storage=not-a-url"], "storage: not a SQLAlchemy URL"),
    (["study=smoke", "hardware.cpus_per_trial=4096"], "hardware.cpus_per_trial:"),
    (["study=smoke", "hardware.device=tpu"], "hardware.device: unknown device"),
    (["study=smoke", "study.sampler=tpe"], "study.sampler:"),
    (["study=smoke", "--verbose"], "--verbose: unknown option"),
    (["study=temporal_extent", "study.clip_lens=[4]"], "study.clip_lens: data with clip_len=4"),
    (["study=smoke", "hardware.latency_runs=-1"], "hardware.latency_runs: must be >= 0"),
    (["study=smoke", "tracking=wandb"], "tracking: unknown tracking 'wandb'"),
    (["study=smoke", "tracking_uri=file:///tmp/x"], "tracking_uri: only used by tracking=mlflow"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUTS)
def test_bad_input_is_one_line_and_touches_nothing(argv: list[str], expected: str,
                                                   tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # no database, no outputs/, nothing


def test_a_database_that_is_not_vidarch_is_refused_untouched(tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    assert main(["study=smoke", f"storage=sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert "not a vidarch database" in err and err.count("\n") == 1
    assert db.read_bytes() == before


def test_a_changed_design_is_refused_but_more_seeds_extend_the_study(tmp_path: Path) -> None:
    from search.design.composing import ConfigError
    from search.design.resuming import check_resumable, snapshot

    stored = json.dumps(snapshot(to_run_config(compose(["study=smoke"]))))
    more_seeds = snapshot(to_run_config(compose(["study=smoke", "study.seeds=[0,1,2]"])))
    assert check_resumable(stored, more_seeds, "smoke") is True
    assert check_resumable(stored, json.loads(stored), "smoke") is False
    other = snapshot(to_run_config(compose(["study=smoke", "train.lr=0.5"])))
    with pytest.raises(ConfigError, match=r"^train\.lr: study 'smoke' exists"):
        check_resumable(stored, other, "smoke")
    hardware = snapshot(to_run_config(compose(["study=smoke", "hardware.cpus_per_trial=2"])))
    assert check_resumable(stored, hardware, "smoke") is False  # where it runs is not design
    # a renamed study (search.results.renaming) resumes under its new name, and a variant study
    # beside other siblings: neither changes a trial; the stored config takes the new name
    renamed = snapshot(to_run_config(compose(["study=smoke", "study.name=smoke_kept",
                                              "study.variants=[{label: a, train: {lr: 0.1}}]"])))
    assert check_resumable(stored, renamed, "smoke_kept") is True


def test_a_study_stored_before_a_key_existed_resumes_with_its_legacy_value() -> None:
    """A config stored before the task knobs existed (bench_video's partial database) ran with
    no zoom, events spread over the clip, two directions; the same design today resumes it."""
    from search.design.resuming import check_resumable, snapshot

    current = snapshot(to_run_config(compose(["study=smoke"])))
    old = json.loads(json.dumps(current))
    for key in ("event_gap", "scale", "n_directions"):
        del old["data"][key]
    assert (current["data"]["event_gap"], current["data"]["scale"],
            current["data"]["n_directions"]) == (0, 1.0, 2)
    assert check_resumable(json.dumps(old), current, "smoke") is False


def test_plateau_settings_do_not_block_a_resume_while_the_stopper_is_off() -> None:
    """bench_video (plateau_stop false) was stored before train.plateau_min_epochs existed; its
    legacy 0 against today's null cannot change a result with the stopper off, so it resumes.
    With the stopper on, the same difference changes when trials stop and is refused."""
    from search.design.composing import ConfigError
    from search.design.resuming import check_resumable, snapshot

    for stop, resumes in ((False, True), (True, False)):
        current = snapshot(to_run_config(compose(["study=smoke", f"train.plateau_stop={stop}"])))
        assert current["train"]["plateau_min_epochs"] is None
        old = json.loads(json.dumps(current))
        del old["train"]["plateau_min_epochs"]
        if resumes:
            assert check_resumable(json.dumps(old), current, "smoke") is False
        else:
            with pytest.raises(ConfigError, match=r"^train\.plateau_min_epochs: study 'smoke'"):
                check_resumable(json.dumps(old), current, "smoke")
    off = snapshot(to_run_config(compose(["study=smoke", "train.plateau_stop=false"])))
    with pytest.raises(ConfigError, match=r"^train\.lr: "):  # other settings still count
        check_resumable(json.dumps(off), {**off, "train": {**off["train"], "lr": 9.0}}, "smoke")
    on = snapshot(to_run_config(compose(["study=smoke", "train.plateau_stop=true"])))
    with pytest.raises(ConfigError, match=r"^train\.plateau_stop: .* exists with "
                                          r"train\.plateau_stop=True, not False"):
        check_resumable(json.dumps(on), off, "smoke")  # the switch is named, not a moot key


def test_help_and_cfg_print_and_create_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--help"]) == 0
    assert "bottom_vs_top" in capsys.readouterr().out
    assert main(["study=smoke", "--cfg"]) == 0
    assert "name: smoke" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


# --- end to end through Ray (slow) -------------------------------------------------------------






@pytest.mark.slow
def test_smoke_killed_mid_trial_then_rerun_completes_exactly_once(runner) -> None:
    """SIGKILL the driver while a trial runs; the rerun repairs, resumes and completes."""
    slow, sleep = ("train.epochs=3",), "epoch_sleep_s=1.5"  # trials last long enough to kill
    proc = runner.start(*slow, faults=sleep)

    def epoch_written() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"driver ended early: {proc.communicate()}")
        try:
            # A trial mid-way: RUNNING, with an epoch and its checkpoint recorded.
            return bool(query(runner.db, "SELECT 1 FROM trials t JOIN epoch_metrics e "
                                         "ON e.trial_id = t.id WHERE t.state = 'RUNNING' "
                                         "AND t.checkpoint_path IS NOT NULL"))
        except sqlite3.OperationalError:
            return False

    assert wait_until(epoch_written, 150), "no RUNNING trial with a checkpoint appeared"
    proc.kill()  # SIGKILL of the driver only
    proc.wait()
    assert query(runner.db, "SELECT count(*) FROM trials WHERE state = 'RUNNING'")[0][0] >= 1

    # A reader hammers the database while the rerun writes: never "database is locked".
    from search.results.store import open_engine, session_scope, study_trials

    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        engine = open_engine(f"sqlite:///{runner.db}")
        while not stop.is_set():
            try:
                with session_scope(engine) as s:
                    study_trials(s, 1)
            except BaseException as exc:
                errors.append(exc)
                return
            time.sleep(0.01)

    reader = threading.Thread(target=hammer)
    reader.start()
    try:
        done = runner.run(*slow, faults=sleep)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[0]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resume:" in done.stderr and "marked interrupted" in done.stderr
    assert "Next: streamlit run " in done.stdout and "dashboard/app.py --server.address " \
        "127.0.0.1 " in done.stdout and " -- --db " in done.stdout
    assert "Pareto front" in done.stdout

    rows = query(runner.db, "SELECT arch_id, seed, state, attempt, resources_json FROM trials")
    assert len(rows) == SMOKE_CELLS
    assert len({(a, s) for a, s, *_ in rows}) == SMOKE_CELLS  # no duplicate cells
    assert {r[2] for r in rows} == {"COMPLETE"}
    rerun = [r for r in rows if r[3] == 2]
    assert rerun, "the interrupted cell was not re-run"
    assert any(json.loads(r[4]).get("resumed_from") for r in rerun), \
        f"the interrupted cell did not resume from its checkpoint: {rows}"
    assert not any("resume_note" in json.loads(r[4]) for r in rerun), rows  # it was used
    # Every completed trial has both epochs and its final metrics; the archs are shared.
    assert query(runner.db, "SELECT count(DISTINCT trial_id || '-' || epoch) FROM epoch_metrics "
                            "WHERE name = 'val/acc1'")[0][0] == 3 * SMOKE_CELLS
    assert query(runner.db, "SELECT count(*) FROM results WHERE name = 'val/acc1'")[0][0] == \
        SMOKE_CELLS
    assert query(runner.db, "SELECT count(*) FROM archs")[0][0] == 2
    assert query(runner.db, "PRAGMA integrity_check")[0][0] == "ok"
    assert not (runner.cwd / "outputs").exists() and not (runner.cwd / ".hydra").exists()
    # The driver stored the per-network summaries the readers use, current (search.results
    # .summaries): one row per network and metric, every COMPLETE seed in it.
    from search.results.summaries import fresh_seeds

    assert query(runner.db, "SELECT count(*), sum(n) FROM arch_summaries "
                            "WHERE metric = 'val/acc1'") == [(2, SMOKE_CELLS)]
    engine = open_engine(f"sqlite:///{runner.db}")
    try:
        assert fresh_seeds(engine, 1, "val/acc1") == sorted({s for _, s, *_ in rows})
    finally:
        engine.dispose()

    # Once more: nothing left to run, nothing changes.
    before = query(runner.db, "SELECT count(*), sum(attempt) FROM trials")
    again = runner.run(*slow, faults=sleep)
    assert again.returncode == 0, again.stderr[-2000:]
    assert query(runner.db, "SELECT count(*), sum(attempt) FROM trials") == before

    # Renamed (search.results.renaming), it resumes under its new name: nothing runs again, and
    # its stored config takes the name. The old name is free: a new study would start there.
    renamed = subprocess.run([sys.executable, "-m", "search.results.renaming", str(runner.db),
                              "smoke", "smoke_kept"], env=runner.env(), capture_output=True,
                             text=True, timeout=60)
    assert renamed.returncode == 0, renamed.stderr
    kept = runner.run(*slow, "study.name=smoke_kept", faults=sleep)
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert query(runner.db, "SELECT count(*), sum(attempt) FROM trials") == before
    assert [json.loads(c)["study"]["name"] for (c,) in
            query(runner.db, "SELECT config_json FROM studies")] == ["smoke_kept"]


@pytest.mark.slow
def test_raising_and_nan_trials_fail_alone(runner) -> None:
    """A raising trial and a NaN trial become FAILED rows with reasons; the others complete."""
    out = runner.run(faults="fail_on_seed=1")
    assert out.returncode == 1, out.stderr[-3000:]
    rows = query(runner.db, "SELECT seed, state, error FROM trials ORDER BY seed")
    assert len(rows) == SMOKE_CELLS
    assert [r[1] for r in rows if r[0] == 0] == ["COMPLETE", "COMPLETE"]
    assert all(r[1] == "FAILED" and "injected failure" in r[2] for r in rows if r[0] == 1)
    assert "FAILED trial(s)" in out.stdout
    assert not (runner.cwd / "outputs").exists()

    # Rerun: completed cells stay; the failed cells run again, now ending in NaN.
    out = runner.run(faults="nan_on_seed=1")
    assert out.returncode == 1, out.stderr[-3000:]
    rows = query(runner.db, "SELECT seed, state, attempt, error FROM trials ORDER BY seed")
    assert len(rows) == SMOKE_CELLS
    assert all(r[1] == "COMPLETE" and r[2] == 1 for r in rows if r[0] == 0)
    assert all(r[1] == "FAILED" and r[2] == 2 and r[3].startswith("nan:")
               for r in rows if r[0] == 1)


TINY_DATA = ("data.clip_len=4", "data.size=16", "data.n_train=32", "data.n_val=16",
             "data.object_size=3", "data.target_size=6", "data.n_distractors=2",
             "train.batch_size=8", "train.warmup_epochs=0")


@pytest.mark.slow
def test_free_search_multi_objective_with_asha(runner) -> None:
    """NSGA-II over per-block kinds with ASHA in MAC bands: stopped trials are PRUNED rows."""
    search = ("study=free_search", "study.num_samples=5", "train.epochs=2",
              "study.scheduler.grace_epochs=1", "study.scheduler.reduction_factor=2", *TINY_DATA)
    out = runner.run(*search)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = query(runner.db, "SELECT state, error, params_json FROM trials")
    assert len(rows) == 5
    assert {r[0] for r in rows} <= {"COMPLETE", "PRUNED"}
    assert all("stopped early by ASHA" in r[1] for r in rows if r[0] == "PRUNED")
    assert all("stage1.block1.kind" in json.loads(r[2]) for r in rows)  # sampled per block
    front = out.stdout.split("Pareto front")[1].split("Next:")[0]
    pruned_labels = {lbl for (lbl,) in query(runner.db,
                                             "SELECT label FROM trials WHERE state='PRUNED'")}
    assert not any(lbl in front for lbl in pruned_labels)
    # A larger budget extends the same study, warm-started from the stored trials.
    more = runner.run(*[a.replace("num_samples=5", "num_samples=7") for a in search])
    assert more.returncode == 0, more.stderr[-3000:]
    assert query(runner.db, "SELECT count(*) FROM trials")[0][0] == 7
