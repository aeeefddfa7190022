"""Cost: fvcore MACs/params against torchvision's published figures, the analytic estimate
against fvcore for every preset and kind, the FlopCounterMode cross-check, and silence."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from arch_space.cost import (
    CostReport,
    estimate_macs,
    estimate_params,
    estimate_per_layer,
    measure_cost,
)
from arch_space.presets import list_presets, per_stage, preset
from arch_space.spec import BLOCK_KINDS

# torchvision.models.video: Kinetics-400 weights' metadata, input 1x3x16x112x112.
PUBLISHED = {
    "r3d_18": (33_371_472, 40.697),
    "mc3_18": (11_695_440, 43.343),
    "r2plus1d_18": (31_505_325, 40.519),
}
TINY = (8, 16, 16)


ROOT = Path(__file__).resolve().parents[2]  # the checkout: subprocesses import from it
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def references() -> dict[str, CostReport]:
    """The three reference networks measured once at 16x112x112 (a few seconds each)."""
    return {name: measure_cost(preset(name), (16, 112, 112)) for name in PUBLISHED}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_matches_torchvision_published_figures(references, name):
    params, gmacs = PUBLISHED[name]
    report = references[name]
    assert report.params == params
    assert round(report.macs / 1e9, 3) == gmacs
    assert report.clip == (16, 112, 112) and report.batch == 1


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_flops_cross_checked_with_torch_flop_counter(references, name):
    report = references[name]
    assert report.flops == 2 * report.macs
    assert abs(report.flop_counter_flops - report.flops) <= 0.01 * report.flops


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_estimate_equals_fvcore_on_references(references, name):
    spec = preset(name)
    report = references[name]
    assert estimate_macs(spec, (16, 112, 112)) == report.macs
    assert estimate_params(spec) == report.params
    assert estimate_per_layer(spec, (16, 112, 112)) == report.per_layer


def test_macs_leave_batch_norm_out_but_report_it(references):
    by_op = references["r3d_18"].macs_by_op
    assert by_op["batch_norm"] > 0  # fvcore counts it ...
    assert references["r3d_18"].macs == by_op["conv"] + by_op["linear"]  # ... macs do not


def test_per_layer_rows_follow_spec_paths(references):
    report = references["r2plus1d_18"]
    layers = [row["layer"] for row in report.per_layer]
    assert layers == ["stem", *(p for p, _ in preset("r2plus1d_18").block_paths()), "fc"]
    assert {row["kind"] for row in report.per_layer} == {"2plus1d", "linear"}
    assert sum(row["macs"] for row in report.per_layer) == report.macs
    assert sum(row["params"] for row in report.per_layer) == report.params
    assert all(set(row) == {"layer", "kind", "macs", "params"} for row in report.per_layer)


@pytest.mark.parametrize("name", list_presets())
def test_estimate_equals_fvcore_for_every_preset(name):
    spec = preset(name, clip_len=TINY[0], crop_size=TINY[1], num_classes=10)
    report = measure_cost(spec)
    assert estimate_macs(spec) == report.macs
    assert estimate_params(spec) == report.params
    assert estimate_per_layer(spec) == report.per_layer


@pytest.mark.parametrize("block_type", ["basic", "bottleneck"])
@pytest.mark.parametrize("mid_rule", ["torchvision", "paper"])
def test_estimate_equals_fvcore_for_every_kind(block_type, mid_rule):
    kinds = list(BLOCK_KINDS)  # one block of each kind, strided blocks of several kinds
    spec = per_stage([kinds[:2], kinds[2:4], kinds[4:] + kinds[:1]], "2plus1d",
                     widths=(8, 16, 24), depths=(2, 2, 2), block_type=block_type,
                     mid_rule=mid_rule, t_kernel=5, t_pad_mode="replicate", num_classes=7,
                     clip_len=6, crop_size=20)
    report = measure_cost(spec, (6, 20, 20))
    assert estimate_macs(spec, (6, 20, 20)) == report.macs
    assert estimate_params(spec) == report.params
    assert abs(report.flop_counter_flops - report.flops) <= 0.01 * report.flops


def test_clip_and_batch():
    spec = preset("r3d_18", num_classes=10)
    small = measure_cost(spec, TINY)
    double = measure_cost(spec, TINY, batch=2)
    assert small.clip == TINY
    assert double.macs == 2 * small.macs and double.params == small.params
    assert small.macs == estimate_macs(spec, TINY)
    wide = measure_cost(spec, (8, 16, 24))  # non-square frames: measured as given
    assert wide.clip == (8, 16, 24) and wide.macs == estimate_macs(spec, (8, 16, 24))
    # R2D's whole-clip stem follows the measured clip length
    assert measure_cost(preset("r2d", num_classes=10), (6, 16, 16)).macs == \
        estimate_macs(preset("r2d", num_classes=10, clip_len=6, crop_size=16))


def test_latency_and_to_dict():
    spec = preset("mc3_18", num_classes=10)
    timed = measure_cost(spec, TINY, latency_runs=2)
    assert timed.latency_ms is not None and timed.latency_ms > 0
    assert measure_cost(spec, TINY).latency_ms is None
    data = json.loads(json.dumps(timed.to_dict()))
    assert data["macs"] == timed.macs and data["clip"] == list(TINY)
    assert data["per_layer"][0] == {"layer": "stem", "kind": "3d",
                                    "macs": timed.per_layer[0]["macs"],
                                    "params": timed.per_layer[0]["params"]}
    with pytest.raises(ValueError, match="latency_runs"):
        measure_cost(spec, TINY, latency_runs=-1)


def test_no_fvcore_noise_in_process(capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measure_cost(preset("r2plus1d_18", num_classes=10), TINY)
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not caught


def test_no_fvcore_noise_in_a_fresh_interpreter():
    # A fresh process imports fvcore for the first time (its torch.jit.script warning) and has
    # no pytest filters: nothing may reach stdout or stderr.
    code = ("from arch_space.cost import measure_cost\n"
            "from arch_space.presets import preset\n"
            "measure_cost(preset('r2plus1d_18', num_classes=10), (8, 32, 32))\n")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_estimates_need_no_torch():
    code = ("import sys\n"
            "from arch_space.cost import estimate_macs, estimate_params\n"
            "from arch_space.presets import preset\n"
            "assert estimate_macs(preset('r3d_18')) == 40696553472\n"
            "assert estimate_params(preset('r3d_18')) == 33371472\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_measure_latency_times_a_trained_model_without_touching_its_state():
    """A trial times its network before training: mode and the global random stream untouched."""
    import torch

    from arch_space import build_network
    from arch_space.cost import measure_latency

    spec = preset("mc3", num_classes=5, clip_len=4, crop_size=32)
    model = build_network(spec).train()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    latency = measure_latency(model, spec, runs=2)
    assert latency > 0
    assert model.training
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ValueError, match="runs"):
        measure_latency(model, spec, runs=0)
