"""``tracking=mlflow`` / ``tracking=tensorboard``: Ray Tune's logger callbacks, end to end,
read back from a local MLflow file store and from TensorBoard event files."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from search.run import main
from tests.search.polling import query

EPOCHS = 2


def _db_curves(db: Path) -> dict[tuple[str, int], list[float]]:
    """(label, seed) -> val/acc1 per epoch, from the results database."""
    out: dict[tuple[str, int], list[float]] = {}
    for label, seed, value in query(db, "SELECT t.label, t.seed, e.value FROM trials t JOIN "
                                    "epoch_metrics e ON e.trial_id = t.id WHERE e.name = "
                                    "'val/acc1' ORDER BY t.id, e.epoch"):
        out.setdefault((label, seed), []).append(value)
    return out


@pytest.mark.parametrize(("kind", "module"), [("mlflow", "mlflow"),
                                              ("tensorboard", "tensorboardX")])
def test_a_missing_extra_is_one_line(kind: str, module: str, tmp_path: Path, monkeypatch,
                                     capsys) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like
    monkeypatch.chdir(tmp_path)
    assert main(["study=smoke", f"tracking={kind}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: tracking: {kind} needs the {module} package: " \
                  f"pip install 'vidarch[{kind}]'\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_mlflow_gets_one_run_per_trial_with_every_epoch(runner, tmp_path: Path,
                                                        monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    # MLflow 3 reads a file store only when asked to (the driver asks for a file:// URI)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")

    store = tmp_path / "mlruns"
    out = runner.run("tracking=mlflow", f"tracking_uri=file://{store}", f"train.epochs={EPOCHS}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"MLflow: mlflow ui --backend-store-uri file://{store}" in out.stdout
    client = MlflowClient(tracking_uri=f"file://{store}")
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    curves = _db_curves(runner.db)
    assert len(runs) == len(curves) == 4
    for run in runs:
        key = (run.data.params["label"], int(run.data.params["seed"]))
        history = client.get_metric_history(run.info.run_id, "val/acc1")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == \
            pytest.approx(curves[key])
        assert run.data.metrics["latency_ms"] > 0
        assert run.data.tags["vidarch.study"] == "smoke"


def _events(path: Path) -> list[object]:
    """The records of a TensorBoard event file (TFRecord framing: length, its CRC, the
    serialized ``Event``, its CRC), parsed with tensorboardX's own protobuf classes."""
    from tensorboardX.proto.event_pb2 import Event

    data = path.read_bytes()
    events, at = [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        events.append(Event.FromString(data[at + 12:at + 12 + length]))
        at += 12 + length + 4
    return events


@pytest.mark.slow
def test_tensorboard_event_files_hold_every_epoch(runner) -> None:
    out = runner.run("tracking=tensorboard", f"train.epochs={EPOCHS}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"TensorBoard: tensorboard --logdir {runner.checkpoints}" in out.stdout
    files = sorted(runner.checkpoints.rglob("events.out.tfevents.*"))
    curves = _db_curves(runner.db)
    assert len(files) == len(curves) == 4
    found = []
    for path in files:
        values = [(e.step, v.simple_value) for e in _events(path) for v in e.summary.value
                  if v.tag == "ray/tune/val/acc1"]
        assert [s for s, _ in values] == list(range(1, EPOCHS + 1))
        found.append([round(v, 6) for _, v in values])  # TensorBoard keeps float32
    assert sorted(found) == sorted([round(v, 6) for v in c] for c in curves.values())
