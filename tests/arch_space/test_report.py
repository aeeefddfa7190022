"""The cost report command: table, per-layer rows, one-line errors, no fvcore noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arch_space.cost import estimate_macs
from arch_space.presets import list_presets, preset
from arch_space.report import main

ROOT = Path(__file__).resolve().parents[2]  # the checkout: subprocesses import from it
def _rows(out: str) -> dict[str, list[str]]:
    """Table rows keyed by preset name (lines after the dashed rule, up to a blank line)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows = {}
    for line in lines[start:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def test_table_for_named_presets(capsys):
    assert main(["r3d_18", "mc3_18", "--clip", "8x32x32", "--classes", "10", "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "name" in out and "GMACs" in out and "GFLOPs" in out and "latency_ms" in out
    rows = _rows(out)
    assert list(rows) == ["r3d_18", "mc3_18"]
    spec = preset("mc3_18", num_classes=10, clip_len=8, crop_size=32)
    _name, arch_id, params, gmacs, gflops, _acts, latency = rows["mc3_18"]
    assert arch_id == spec.arch_id
    assert float(gmacs) == round(estimate_macs(spec) / 1e9, 3)
    assert float(gflops) == pytest.approx(2 * float(gmacs), abs=0.002)
    assert int(params.replace(",", "")) > 0 and latency == "-"


def test_latency_and_per_layer(capsys):
    assert main(["r2plus1d_18", "--clip", "8x16x16", "--latency", "2", "--per-layer",
                 "--threads", "1"]) == 0
    out, _ = capsys.readouterr()
    assert float(_rows(out)["r2plus1d_18"][-1]) > 0
    for layer in ("stem", "stage1.block1", "stage4.block2", "fc"):
        assert f"\n{layer} " in out


@pytest.mark.parametrize("argv, needle", [
    (["r3d_19"], "PRESET: unknown preset 'r3d_19'"),
    ([], "PRESET: name at least one preset"),
    (["r3d_18", "--clip", "16xax112"], "--clip"),
    (["r3d_18", "--clip", "16x0x112"], "--clip"),
    (["r3d_18", "--clip", "16x112x96"], "--clip: crops are square"),
    (["r3d_18", "--clip", "2x112x112"], "--clip: 2x112x112 does not fit preset 'r3d_18'"),
    (["r3d_18", "--latency", "-1"], "--latency: must be >= 0"),
])
def test_bad_arguments_give_one_line_and_status_2(capsys, argv, needle):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert needle in err


def test_all_presets(capsys):
    assert main(["--all", "--clip", "8x16x16", "--classes", "5", "--threads", "1"]) == 0
    assert list(_rows(capsys.readouterr().out)) == list_presets()


def test_command_line_prints_no_fvcore_noise():
    done = subprocess.run([sys.executable, "-W", "default", "-m", "arch_space.report",
                           "r2plus1d_18", "--clip", "8x16x16", "--threads", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Unsupported" not in done.stdout and "Warning" not in done.stdout
    assert "r2plus1d_18" in done.stdout


@pytest.mark.slow
def test_reference_table_matches_torchvision(capsys):
    assert main(["r3d_18", "mc3_18", "r2plus1d_18", "--clip", "16x112x112", "--threads", "1"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [rows[n][2:4] for n in ("r3d_18", "mc3_18", "r2plus1d_18")] == [
        ["33,371,472", "40.697"], ["11,695,440", "43.343"], ["31,505,325", "40.519"]]
