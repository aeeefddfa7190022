"""``python -m analysis.findings``: findings.md blocks, CSV tables, PNGs, idempotence, errors."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from analysis import findings
from analysis.placement import estimate_layer_macs
from analysis.synthetic import simulate
from search.design.composing import compose, to_run_config
from search.design.studies import build_design
from search.results.schema import TrialState
from search.results.store import (
    finish_trial,
    get_or_create_study,
    open_engine,
    record_epoch,
    record_protocol,
    session_scope,
    start_trial,
    upsert_arch,
)

SHIPPED = ("bottom_vs_top", "conv_kinds", "temporal_extent", "inflation")


ROOT = Path(__file__).resolve().parents[2]


def _write_study(url: str, study: str, seeds: Sequence[int] = (0, 1, 2),
                 name: str | None = None, data: dict | None = None) -> None:
    """The study's real design (its Hydra preset), made-up accuracies, through the store.

    ``data`` adds settings to the stored data config (a variant's knob, ``{"scale": 2.0}``).
    """
    cfg = to_run_config(compose([f"study={study}"]))
    design = build_design(cfg)
    rng = np.random.default_rng(len(study))
    engine = open_engine(url, create=True)
    with session_scope(engine) as s:
        study_id = get_or_create_study(s, name or study, kind="grid", config={
            "data": {"task": cfg.data.task, "clip_len": cfg.data.clip_len, "size": cfg.data.size,
                     "num_classes": cfg.data.num_classes, "n_train": cfg.data.n_train,
                     "n_val": cfg.data.n_val, **(data or {})},
            "train": {"epochs": 3, "batch_size": 8, "optimizer": "adamw", "lr": 0.002},
            "study": {"name": name or study, "design": cfg.study.design, "seeds": list(seeds),
                      "clip_lens": list(cfg.study.clip_lens), "match": cfg.study.match}}).id
    for i, cell in enumerate(design.cells):
        kinds = list(cell.spec.kinds().values())
        for seed in seeds:
            trial = simulate(cell.spec, kinds, seed, rng, label=cell.label, n_epochs=3,
                             seed_offset=0.01 * seed + 0.005 * i)
            with session_scope(engine) as s:
                macs = sum(estimate_layer_macs(cell.spec).values())
                upsert_arch(s, cell.spec.arch_id, cell.spec.to_json(), macs=macs, params=1000)
                row = start_trial(s, study_id, arch_id=cell.spec.arch_id, seed=seed,
                                  label=cell.label, family=cell.family,
                                  resources={"cpus": 1.0, "gpus": 0.0})
                for epoch, metrics in enumerate(trial.epochs, start=1):
                    record_epoch(s, row.id, epoch, metrics)
                finish_trial(s, row.id, TrialState.COMPLETE, results=trial.results)
                record_protocol(s, row.id, chance_acc=0.25, majority_acc=0.27, plateaued=True)
    engine.dispose()


@pytest.fixture(scope="module")
def studies_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shipped grid study, 3 seeds, written through the store."""
    path = tmp_path_factory.mktemp("findings") / "studies.db"
    for study in SHIPPED:
        _write_study(f"sqlite:///{path}", study)
    return path


def _block(text: str, name: str) -> str:
    start = text.index(findings.begin(name)) + len(findings.begin(name))
    return text[start:text.index(findings.end(name))]


def test_blocks_hold_each_studys_arms_and_cis(studies_db: Path, tmp_path: Path) -> None:
    assert findings.main(["--db", str(studies_db), "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "findings.md").read_text()
    for study in SHIPPED:
        block = _block(text, study)
        assert "95% CI" in block and "**Compute.** " in block and f"{study}_arms.csv" in block
        assert (tmp_path / "findings" / f"{study}_arms.csv").is_file()
        assert f"![{study}: pareto](findings/{study}_pareto.png)" in block
    btv = _block(text, "bottom_vs_top")
    assert all(f"| {label} |" in btv for label in ("mc3", "rmc5", "f_r2d", "r2plus1d"))
    # the declared contrasts (from the preset: this database's config predates them), paired
    # and Holm-adjusted; no after-the-fact tests against the best arm, no accuracy per GMAC
    assert "| bottom-heavy - top-heavy | bottom-heavy | top-heavy |" in btv
    assert "| each vs 2D | top-heavy | 2D |" in btv
    assert "p paired t" in btv and "p Holm" in btv and "cannot go below p = 2/2^n (0.25 at 3)" in btv
    assert "Δ vs" not in btv and "per GMAC" not in btv
    assert "| vs chance |" in btv and "chance 0.250" in btv
    assert "whose interval lies above chance" in btv and "bottom_vs_top_front.csv" in btv
    kinds = _block(text, "conv_kinds")
    assert all(f"| {k} |" in kinds for k in ("2d", "3d", "p3d_a", "p3d_b", "p3d_c", "p3d_mix"))
    extent = _block(text, "temporal_extent")
    # (clip_len, t_kernel): the redesigned cross -- T at t = 5, t at T = 12
    assert all(cell in extent for cell in ("| 10 | 5 |", "| 16 | 5 |", "| 12 | 1 |", "| 12 | 7 |"))
    assert "findings/temporal_extent_lines.png" in extent
    infl = _block(text, "inflation")
    assert "| 3d | inflated |" in infl and "| 3d | scratch |" in infl  # the preset: 3D only
    assert "| inflated - scratch | inflated | scratch |" in infl
    assert "33 trials (33 COMPLETE)" in btv  # 11 networks (MC2-5, rMC2-5, 2D, 3D, (2+1)D) x 3 seeds
    # the preset's batch size and epochs differ from what this database ran
    assert "`python -m search.run study=bottom_vs_top train.batch_size=8 train.epochs=3`" in btv
    overview = _block(text, "overview")
    assert all(f"| {s} |" in overview for s in SHIPPED)
    arms = (tmp_path / "findings" / "temporal_extent_arms.csv").read_text().splitlines()
    assert arms[0].startswith("clip_len,t_kernel,group,n,n_seeds") and len(arms) == 1 + 6


def test_rerun_is_idempotent_and_keeps_prose(studies_db: Path, tmp_path: Path) -> None:
    args = ["--db", str(studies_db), "--out", str(tmp_path), "--no-figures"]
    assert findings.main(args) == 0
    md = tmp_path / "findings.md"
    first = md.read_text()
    prose = "The bottom-heavy nets win here, by a margin the CI supports."
    edited = first.replace("*What we find.* (to be written: which claim holds here, which does "
                           "not, how sure we are.)", prose, 1)
    edited = edited.replace(findings.end("inflation"),
                            "stale text\n" + findings.end("inflation"))
    md.write_text(edited + "\n## Notes\n\nHand-written closing words.\n")
    csv = (tmp_path / "findings" / "conv_kinds_arms.csv").read_text()
    assert findings.main(args) == 0
    second = md.read_text()
    assert prose in second and "Hand-written closing words." in second
    assert "stale text" not in second
    assert second == edited.replace("stale text\n", "") + "\n## Notes\n\nHand-written closing words.\n"
    assert findings.main(args) == 0
    assert md.read_text() == second
    assert (tmp_path / "findings" / "conv_kinds_arms.csv").read_text() == csv


def test_missing_studies_get_a_note_and_variants_a_section(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    _write_study(f"sqlite:///{db}", "bottom_vs_top", seeds=(0, 1))
    _write_study(f"sqlite:///{db}", "inflation", seeds=(0, 1), name="inflation_small")
    out = tmp_path / "docs"
    assert findings.main(["--db", str(db), "--out", str(out), "--no-figures"]) == 0
    text = (out / "findings.md").read_text()
    assert "python -m search.run study=conv_kinds" in _block(text, "conv_kinds")
    assert "free_search" not in text  # optional: no section unless it ran
    assert "| conv_kinds | not yet run |" in _block(text, "overview")
    assert "python -m search.run study=inflation" in _block(text, "inflation")
    small = _block(text, "inflation_small")  # study.name=inflation_small: the inflation arms
    assert "| inflated - scratch | inflated | scratch |" in small and "— small" in text
    assert "study=inflation study.name=inflation_small study.seeds=[0,1]" in small
    assert (out / "findings" / "inflation_small_arms.csv").is_file()
    summary = _block(text, "summary")  # a renamed run is read, not summarised with the shipped
    assert "`inflation_small`" not in summary.split("Other runs")[0]
    assert "Other runs in this database" in summary and "`inflation_small`" in summary
    assert "inflation_small" not in _block(text, "orderings")


def test_errors_are_one_line_and_exit_nonzero(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert findings.main(["--db", str(tmp_path / "nope.db"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope.db" in err and len(err.splitlines()) == 1
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    assert findings.main(["--db", str(other), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "findings.md").exists()


def test_broken_markers_are_refused(studies_db: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "findings.md"
    md.write_text(f"# Findings\n\n{findings.begin('bottom_vs_top')}\nno end marker\n")
    assert findings.main(["--db", str(studies_db), "--out", str(tmp_path), "--no-figures"]) == 1
    assert "unpaired" in capsys.readouterr().err
    assert md.read_text().endswith("no end marker\n")  # untouched


def _browser_works() -> str | None:
    """None when kaleido can export a PNG here, else why not."""
    findings.ensure_browser()
    try:
        import plotly.graph_objects as go

        go.Figure().to_image(format="png", width=50, height=50)
    except Exception as exc:  # no Chrome, kaleido missing, ...
        return f"kaleido cannot export PNGs here ({str(exc).splitlines()[0][:120]})"
    return None


def test_pngs_are_written(studies_db: Path, tmp_path: Path) -> None:
    why = _browser_works()
    if why:
        pytest.skip(f"{why}; CI installs chromium")
    db = tmp_path / "studies.db"
    shutil.copy(studies_db, db)
    assert findings.main(["--db", str(db), "--out", str(tmp_path)]) == 0
    for study in SHIPPED:
        png = tmp_path / "findings" / f"{study}_pareto.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "findings" / "temporal_extent_lines.png").stat().st_size > 1000


def test_shipped_findings_regenerate_from_the_shipped_database(
        shipped_findings_db: Path, tmp_path: Path) -> None:
    """docs/findings.md and its CSVs are what ``make findings`` writes from the committed
    findings.db.xz: no table was edited by hand, none is stale (figures are not redrawn here)."""
    docs = ROOT / "docs"
    db = tmp_path / "findings.db"
    shutil.copy(shipped_findings_db, db)
    out = tmp_path / "docs"
    out.mkdir()
    shutil.copy(docs / "findings.md", out / "findings.md")
    assert findings.main(["--db", str(db), "--out", str(out), "--no-figures"]) == 0
    assert (out / "findings.md").read_text() == (docs / "findings.md").read_text()
    written = sorted(p.name for p in (out / "findings").glob("*.csv"))
    assert written
    for name in written:
        assert (out / "findings" / name).read_text() == \
            (docs / "findings" / name).read_text(), name
