"""The findings report's new parts: summary table, knob (crossover) section, Spearman lines,
chance and majority lines on the figures, "not yet run" studies, and the rooms' sizes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import findings, findings_figures, findings_published
from analysis.findings_catalogue import STUDIES
from analysis.findings_published import PUBLISHED, spearman
from analysis.findings_study import build_study
from tests.analysis.test_findings import _block, _write_study

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def variant_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """placement_crossover.scale1 and .scale2 (real designs, made-up accuracies), 3 seeds."""
    path = tmp_path_factory.mktemp("report") / "studies.db"
    for scale in (1, 2):
        _write_study(f"sqlite:///{path}", "placement_crossover",
                     name=f"placement_crossover.scale{scale}", data={"scale": float(scale)})
    return path


def test_report_on_a_partial_database(variant_db: Path, tmp_path: Path) -> None:
    assert findings.main(["--db", str(variant_db), "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "findings.md").read_text()
    # the summary table at the top: per claim and task, with the comparison and its seeds
    summary = _block(text, "summary")
    assert text.index(findings.begin("summary")) < text.index(findings.begin("overview"))
    assert "| claim (source) | task (study) | comparison |" in summary
    # how many of the study's trials converged, beside each verdict (all 9 plateaued here)
    assert "| p Holm | plateaued | here |" in summary and "| 9 of 9 |" in summary
    assert "`placement_crossover.scale2`" in summary and "| 3 |" in summary
    assert any(v in summary for v in ("**holds**", "**does not hold**", "**undecided"))
    # studies absent from the database: listed as not yet run, not an error
    assert "Not yet run" in summary and "`conv_kinds`" in summary
    assert "| placement_crossover.scale4 | not yet run |" in _block(text, "overview")
    assert "*Not yet run:" in _block(text, "placement_crossover.scale4")
    assert "*Not yet run:" in _block(text, "factorization")
    # the crossover section: both declared differences against the knob, in words
    knob = _block(text, "placement_crossover")
    assert "findings/placement_crossover_knob.png" in knob
    assert "**bottom-heavy − top-heavy** by spatial scale" in knob
    assert "**bottom-heavy − uniform 3D** by spatial scale" in knob
    assert any(w in knob for w in ("**A crossover:**", "**No crossover:**", "**Undecided"))
    diffs = pd.read_csv(tmp_path / "findings" / "placement_crossover_knob_differences.csv")
    assert sorted(diffs["knob"].unique()) == [1.0, 2.0] and (diffs["n_pairs"] == 3).all()
    # Spearman lines, saying when n is too small
    assert "Spearman ρ" in _block(text, "orderings")
    variant = _block(text, "placement_crossover.scale1")
    assert "Spearman ρ = " in variant and "too few arms to decide" in variant
    assert "Published orderings side by side" in variant and "Tran et al. 2018" in variant
    # every claim sentence carries its interval and seeds; no accuracy per GMAC anywhere
    claims = [line for line in variant.splitlines() if line.startswith("- ")]
    assert claims and all("[" in c and " seeds" in c for c in claims)
    assert all("; 9 of 9 trials of the study plateaued" in c for c in claims)
    assert "per GMAC" not in text
    arms = pd.read_csv(tmp_path / "findings" / "placement_crossover.scale1_arms.csv")
    assert "gmacs" in arms and (arms["n_seeds"] == 3).all()
    assert "**Matched compute** (`study.match: macs`)" in variant
    assert "`python -m search.run study=placement_crossover " in variant  # + what differs
    assert "which runs variant `scale1` among its `study.variants`" in variant
    assert "data.scale" not in variant.split("**Produced by**")[1].split("\n")[0]


def test_every_accuracy_figure_has_chance_and_majority_lines(variant_db: Path) -> None:
    study = next(s for s in findings.plans({"placement_crossover.scale1"})
                 if s.study.name == "placement_crossover.scale1").study
    out = build_study(variant_db, study)
    assert {"placement_crossover.scale1_pareto.png", "placement_crossover.scale1_effects.png",
            "placement_crossover.scale1_curves.png"} <= set(out.figures)
    for name, fig in out.figures.items():
        names = findings_figures.baseline_names(fig)
        assert any(n.startswith("chance 0.25") for n in names), name
        assert any(n.startswith("majority class") for n in names), name
    curves = out.figures["placement_crossover.scale1_curves.png"]
    assert any("plateaued)" in (t.name or "") for t in curves.data)


def test_knob_figure_has_a_zero_line_and_baselines() -> None:
    diffs = pd.DataFrame({"knob": [1.0, 2.0, 4.0], "comparison": ["a − b"] * 3,
                          "delta": [0.3, 0.1, -0.2], "ci_low": [0.2, -0.05, -0.3],
                          "ci_high": [0.4, 0.2, -0.1], "n_pairs": [8, 8, 8]})
    arms = pd.DataFrame({"knob": [1.0, 2.0, 4.0], "arm": ["a"] * 3, "mean": [0.9, 0.8, 0.5],
                         "ci_low": [0.85, 0.7, 0.4], "ci_high": [0.95, 0.9, 0.6],
                         "chance": [0.25] * 3, "majority": [0.27] * 3})
    fig = findings_figures.knob_figure(diffs, arms, knob_label="scale")
    zero = [t for t in fig.data if t.name == "zero: no difference"]
    assert zero and list(zero[0].y) == [0, 0]
    assert sorted(findings_figures.baseline_names(fig)) == ["chance 0.25", "majority class 0.27"]


def test_crossover_words() -> None:
    from analysis.findings_catalogue import Knob
    from analysis.findings_claims import crossover_text

    knob = Knob("data.scale", "scale", (("a", "b"),), "growing the digits")
    rows = pd.DataFrame({"knob": [1.0, 4.0], "delta": [0.3, -0.2], "ci_low": [0.2, -0.3],
                         "ci_high": [0.4, -0.1], "n_pairs": [8, 8], "p_holm": [0.001, 0.01]})
    assert "**A crossover:** a is ahead at 1 and b at 4" in crossover_text(rows, knob, "a", "b")
    rows["delta"], rows["ci_low"], rows["ci_high"] = [0.3, 0.2], [0.2, 0.1], [0.4, 0.3]
    text = crossover_text(rows, knob, "a", "b")
    assert "**No crossover:** a is ahead" in text and "at every value tested" in text


def test_spearman_says_when_n_is_too_small() -> None:
    tran = PUBLISHED["tran2018_table2"]
    agree = {"r2plus1d": 0.9, "mc3": 0.8, "mc2": 0.79, "rmc3": 0.6, "r3d": 0.58, "f_r2d": 0.3}
    result = spearman(agree, tran)
    assert result["n"] == 6 and result["rho"] > 0.9 and result["p"] < 0.05 and result["decidable"]
    assert "agrees with the published ordering" in findings_published.spearman_sentence(
        result, tran)
    two = spearman({"inflated": 0.5, "scratch": 0.6}, PUBLISHED["i3d2017_inflation"])
    assert two["n"] == 2 and not two["decidable"]
    assert "too few arms to decide" in findings_published.spearman_sentence(
        two, PUBLISHED["i3d2017_inflation"])
    rng = np.random.default_rng(0)  # a random ordering of 4: never decidable (min p 1/12)
    four = spearman(dict(zip(["p3d_mix", "p3d_a", "p3d_b", "p3d_c"], rng.random(4), strict=True)),
                    PUBLISHED["qiu2017_p3d"])
    assert four["min_p"] > 0.05 and not four["decidable"]


def test_catalogue_is_consistent() -> None:
    for study in STUDIES:
        assert all(key in PUBLISHED for key in study.published), study.name
        for claim in study.claims:
            assert claim.winner != claim.loser


def test_a_claim_is_read_only_where_its_groups_are_declared() -> None:
    from analysis.findings_catalogue import Claim
    from analysis.findings_claims import is_declared

    claim = Claim("inflated beats scratch", "inflated", "scratch")
    assert is_declared(claim, ["inflated - scratch"])
    assert is_declared(claim, ["scratch - inflated"])  # either way round
    assert is_declared(claim, ["each vs scratch"])
    # the shuffled-label control variant declares only its own contrast: no verdict there
    assert not is_declared(claim, ["shuffled - scratch"])
    assert not is_declared(claim, [])
    assert not is_declared(claim, ["not a contrast"])


def test_every_shipped_claim_is_declared_by_its_preset() -> None:
    """A claim whose groups the preset's contrasts never name would silently vanish."""
    from analysis.findings_claims import is_declared
    from search.design.composing import compose

    for study in STUDIES:
        if study.optional or not study.claims or study.variant_of:
            continue
        contrasts = list(compose([f"study={study.study_preset}"]).study.contrasts)
        for claim in study.claims:
            assert is_declared(claim, contrasts), (study.name, claim.text, contrasts)


def test_split_rooms_are_under_500_lines() -> None:
    rooms = sorted((ROOT / "analysis").glob("findings*.py"))
    assert len(rooms) >= 8
    for path in rooms:
        assert len(path.read_text().splitlines()) <= 500, path.name


def test_make_dashboard_findings_unpacks_the_database(tmp_path: Path) -> None:
    """The Makefile target unpacks the database when missing and opens the dashboard on it
    (``make -n``: the dashboard itself is not started here)."""
    out = subprocess.run(["make", "-n", "dashboard-findings"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PY": sys.executable})
    assert out.returncode == 0, out.stderr
    assert "xz -dk docs/findings/findings.db.xz" in out.stdout or (
        ROOT / "docs/findings/findings.db").is_file()
    assert "dashboard/app.py -- --db docs/findings/findings.db" in out.stdout


@pytest.mark.slow
def test_report_on_a_real_knob_study(tmp_path: Path) -> None:
    """placement_crossover at two scales through the real driver (tiny), then the report."""
    db = tmp_path / "real.db"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "search.run", "study=placement_crossover", f"storage=sqlite:///{db}",
         "study.seeds=[0,1]", "study.variants=[{data:{scale:1}},{data:{scale:4}}]",
         "data.n_train=64", "data.n_val=64", "train.epochs=2", "train.batch_size=16",
         "summary=false"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert findings.main(["--db", str(db), "--out", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "findings.md").read_text()
    knob = _block(text, "placement_crossover")
    assert "**bottom-heavy − top-heavy** by spatial scale" in knob
    # the preset's scale2 was overridden away here: expected by the preset, so not yet run
    assert "Not yet run: `placement_crossover.scale2`" in knob
    assert "| placement_crossover.scale4 | 6 | 6 |" in _block(text, "overview")


def test_bottom_vs_top_arms_table_stacks_both_data_sizes(tmp_path: Path) -> None:
    """bottom_vs_top_arms.csv: every arm at both training-set sizes, with seeds and GMACs, so a
    reader checks the matched compute (within ±10% of one target) without the database."""
    db = tmp_path / "studies.db"
    for n_train in (1024, 4096):
        _write_study(f"sqlite:///{db}", "bottom_vs_top_data",
                     name=f"bottom_vs_top_data.n{n_train}", data={"n_train": n_train})
    assert findings.main(["--db", str(db), "--out", str(tmp_path), "--no-figures"]) == 0
    arms = pd.read_csv(tmp_path / "findings" / "bottom_vs_top_arms.csv")
    assert list(arms.columns[:2]) == ["knob", "study"]
    assert sorted(arms["knob"].unique()) == [1024.0, 4096.0]
    per_size = arms.groupby("knob")["network"].apply(set)
    assert per_size[1024.0] == per_size[4096.0] and len(per_size[1024.0]) == 11
    assert (arms["n_seeds"] == 3).all()
    target = arms["gmacs"].median()
    assert ((arms["gmacs"] - target).abs() <= 0.10 * target).all()
    text = (tmp_path / "findings.md").read_text()
    assert "findings/bottom_vs_top_arms.csv" in _block(text, "bottom_vs_top_data")


def test_a_run_made_by_hand_under_a_dotted_name_is_not_called_a_variant(tmp_path: Path) -> None:
    """``study.name=inflation_long.n4096 'study.variants=[]' ...`` is reproduced by its own
    overrides, not by "variant n4096 of the preset" (whose settings it does not share)."""
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    _write_study(url, "placement_crossover", name="placement_crossover.scale1",
                 data={"scale": 1.0})
    _write_study(url, "placement_crossover", name="placement_crossover_long.scale1",
                 data={"scale": 1.0})
    con = sqlite3.connect(db)
    with con:  # as search.run stores them: the variant run lists the variants, the other none
        for name, listed in (("placement_crossover.scale1", [{"data": {"scale": 1}}]),
                             ("placement_crossover_long.scale1", [])):
            config = json.loads(con.execute("SELECT config_json FROM studies WHERE name = ?",
                                            (name,)).fetchone()[0])
            config["study"]["variants"] = listed
            con.execute("UPDATE studies SET config_json = ? WHERE name = ?",
                        (json.dumps(config), name))
    con.close()
    out = tmp_path / "docs"
    assert findings.main(["--db", str(db), "--out", str(out), "--no-figures"]) == 0
    text = (out / "findings.md").read_text()
    made = _block(text, "placement_crossover.scale1").split("**Produced by**")[1].split("\n")[0]
    assert "which runs variant `scale1`" in made
    by_hand = _block(text, "placement_crossover_long.scale1")
    line = by_hand.split("**Produced by**")[1].split("\n")[0]
    assert "which runs variant" not in line
    assert "study.name=placement_crossover_long.scale1" in line and "study.variants=[]" in line
