"""``study=path/to/my_study.yaml``: a study of one's own, outside the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from search.run import main
from tests.search.polling import query

TINY = {"clip_len": 4, "size": 16, "n_train": 32, "n_val": 16, "object_size": 3,
        "target_size": 6, "n_distractors": 2}
SPACE = {"base": {"widths": [4, 8], "depths": [1, 1], "stem": {"kind": "2d", "t_kernel": 1,
                                                               "width": 4}},
         "choices": {"stem": {"kind": ["2d", "3d"], "t_kernel": [3]},
                     "*": {"kind": ["2d", "3d"], "t_kernel": [3]}}}


def write_study(folder: Path, *, num_samples: int = 4, epochs: int = 2) -> Path:
    """A random search in ``folder/my_study.yaml``, its space in ``folder/spaces/tiny.yaml``."""
    (folder / "spaces").mkdir(parents=True, exist_ok=True)
    (folder / "spaces" / "tiny.yaml").write_text(yaml.safe_dump(SPACE))
    study = {"study": {"design": "space", "sampler": "random", "seeds": [0],
                       "num_samples": num_samples, "space": {"file": "spaces/tiny.yaml"}},
             "data": TINY, "train": {"epochs": epochs, "batch_size": 8, "warmup_epochs": 0}}
    path = folder / "my_study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_cfg_reads_the_study_and_its_space_relative_to_the_file(tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    path = write_study(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    assert main([f"study={path}", "study.num_samples=2", "--cfg"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["study"]["name"] == "my_study"  # the file's stem
    assert cfg["study"]["num_samples"] == 2  # the command line wins over the file
    assert cfg["study"]["space"]["base"]["widths"] == [4, 8]
    assert cfg["study"]["space"]["name"] == "tiny"
    assert cfg["data"]["clip_len"] == 4
    # a relative path, from the current directory
    assert main(["study=mine/my_study.yaml", "--dry-run"]) == 0


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    ("study: [", "not valid YAML"),
    ("- a list", "a YAML mapping is needed"),
    ("data: {clip_len: 4}", "needs a top-level 'study:' mapping"),
    ("study: {design: space, space: {file: missing.yaml}}", "study.space.file: "),
    ("study: {design: placement, uniform: [4d]}", "study.uniform: unknown conv kind"),
])
def test_a_bad_study_file_is_one_line_naming_it(content: str | None, expected: str,
                                                tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    monkeypatch.chdir(tmp_path)
    assert main([f"study={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert err.count("\n") == 1, err
    if "study.uniform" not in expected:
        assert str(tmp_path) in err  # the file is named
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.yaml"] if content else [])


@pytest.mark.slow
def test_my_study_runs_with_readable_names_families_fidelity_and_latency(runner) -> None:
    path = write_study(runner.cwd.parent / "elsewhere")
    out = runner.run(f"study={path.resolve()}")
    assert out.returncode == 0, out.stderr[-3000:]
    rows = query(runner.db, "SELECT t.label, t.family, a.latency_ms, a.spec_json FROM trials t "
                 "JOIN archs a ON a.arch_id = t.arch_id JOIN studies s ON s.id = t.study_id "
                 "WHERE s.name = 'my_study' AND t.state = 'COMPLETE'")
    assert len(rows) >= 2
    for label, family, latency_ms, spec_json in rows:
        assert re.fullmatch(r"(2d|3d):s0(-s\d)?( \| (2d|3d):s\d(-s\d)?)*", label), label
        assert family in {"2D", "bottom-heavy", "top-heavy", "uniform 3D", "mixed"}, family
        assert latency_ms is not None and latency_ms > 0  # timed on the trial's device
        assert json.loads(spec_json)["stages"][0]["width"] == 4  # the space file's widths
    results = query(runner.db, "SELECT count(*) FROM results WHERE name = 'latency_ms'")
    assert results[0][0] >= len(rows)  # each trial keeps its own measurement
    table = out.stdout.split("Best per placement family")[1].split("Pareto")[0]
    assert {family for _, family, _, _ in rows} <= set(re.findall(
        r"^(2D|bottom-heavy|top-heavy|uniform 3D|mixed) ", table, re.M))
    assert "search " not in table
    assert "Early ranking check" in out.stdout
    assert re.search(r"Ranking at epoch 1 .* Spearman ρ -?\d\.\d\d .*Kendall τ", out.stdout) \
        or "Early ranking check: not enough" in out.stdout
