"""findings.md's *plateau stopper, measured* block: a study beside its ``<study>_stopped`` run."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from analysis import findings
from analysis.findings_stopper import shipped_twin
from tests.analysis.test_findings import _block, _write_study


def test_shipped_twin_names() -> None:
    assert shipped_twin("bottom_vs_top_data_stopped.n1024", "bottom_vs_top_data") == \
        "bottom_vs_top_data.n1024"
    assert shipped_twin("conv_kinds_stopped", "conv_kinds") == "conv_kinds"
    # other renamed runs are other changes (a budget, an older rule), not the stopper's
    assert shipped_twin("bottom_vs_top_data_8ep.n1024", "bottom_vs_top_data") is None
    assert shipped_twin("conv_kinds_stoppedx", "conv_kinds") is None


def test_each_claim_is_read_with_and_without_the_stopper(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    _write_study(url, "bottom_vs_top")
    _write_study(url, "bottom_vs_top", name="bottom_vs_top_stopped")
    con = sqlite3.connect(db)
    with con:  # the stopper ended the bottom-heavy trials of the stopped run at epoch 2 of 3, low
        (n_cells,) = con.execute("SELECT count(*) FROM trials t JOIN studies s ON s.id = "
                                 "t.study_id WHERE s.name = 'bottom_vs_top_stopped'").fetchone()
        stopped = [i for (i,) in con.execute(
            "SELECT t.id FROM trials t JOIN studies s ON s.id = t.study_id "
            "WHERE s.name = 'bottom_vs_top_stopped' AND t.family = 'bottom-heavy'")]
        marks = ",".join("?" * len(stopped))
        con.execute(f"DELETE FROM epoch_metrics WHERE epoch = 3 AND trial_id IN ({marks})",
                    stopped)
        con.execute(f"UPDATE results SET value = value - 0.5 WHERE name = 'val/acc1' "
                    f"AND trial_id IN ({marks})", stopped)
    con.close()
    out = tmp_path / "docs"
    assert findings.main(["--db", str(db), "--out", str(out), "--no-figures"]) == 0
    text = (out / "findings.md").read_text()
    block = _block(text, "stopper")
    rows = [r for r in block.splitlines() if r.startswith("| ") and "`bottom_vs_top`" in r]
    assert rows, block
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        on, full, machines, moved = cells[3], cells[4], cells[5], cells[6]
        # both runs: the same cells, bit-identical up to where the stopper ended them
        assert machines.endswith(f"; identical to the stop in {n_cells} of {n_cells}"), machines
        assert f"({len(stopped)} of " in on and " ended early)" in on
        verdicts = re.findall(r"\*\*(.+?)\*\*", on + full)
        assert moved == ("yes" if verdicts[0] != verdicts[1] else "no")
    # the bottom-heavy arms lost half a point in the stopped run: the placement claim moves
    placement = next(r for r in rows if "bottom-heavy − top-heavy" in r)
    assert placement.rstrip(" |").endswith("yes")
    # run on another CPU model, the stopped run's trajectories part from the first epoch
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE trials SET resources_json = json_set(resources_json, '$.cpu_model', "
                    "CASE WHEN study_id = (SELECT id FROM studies WHERE name = 'bottom_vs_top') "
                    "THEN 'Intel Xeon' ELSE 'AMD EPYC' END)")
        con.execute("UPDATE epoch_metrics SET value = value + 0.001 WHERE epoch = 1 AND "
                    "name = 'val/acc1' AND trial_id = ?", (stopped[0],))
    con.close()
    assert findings.main(["--db", str(db), "--out", str(out), "--no-figures"]) == 0
    block = _block((out / "findings.md").read_text(), "stopper")
    row = next(r for r in block.splitlines() if "bottom-heavy − top-heavy" in r)
    assert f"| AMD EPYC → Intel Xeon; identical to the stop in {n_cells - 1} of {n_cells} |" in row
    # the stopped run keeps its own section, and stays out of the summary
    assert "`bottom_vs_top_stopped`" not in _block(text, "summary").split("Other runs")[0]
    assert "(the stopper ended each where it plateaued)" not in text  # no stopper config stored


def test_without_stopped_runs_the_block_says_so(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _write_study(f"sqlite:///{db}", "conv_kinds", seeds=(0, 1))
    out = tmp_path / "docs"
    assert findings.main(["--db", str(db), "--out", str(out), "--no-figures"]) == 0
    assert "nothing to compare" in _block((out / "findings.md").read_text(), "stopper")


def test_only_runs_that_differ_in_the_stopper_alone_are_paired() -> None:
    from analysis.findings_stopper import same_cells

    full = {"study": {"name": "s.n1", "seeds": [0, 1], "variants": [{"label": "n1"}]},
            "data": {"n_train": 1024}, "train": {"epochs": 16, "plateau_stop": False}}
    stopped = {"study": {"name": "s.n1", "seeds": [0, 1, 2]}, "data": {"n_train": 1024},
               "train": {"epochs": 16, "plateau_stop": True, "plateau_patience": 2}}
    assert same_cells(stopped, full)
    assert not same_cells({**stopped, "train": {**stopped["train"], "epochs": 4}}, full)
    assert not same_cells({**stopped, "data": {"n_train": 4096}}, full)
