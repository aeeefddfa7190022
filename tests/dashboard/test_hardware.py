"""The trial detail page says where a trial ran (the hardware its first result reported)."""

from __future__ import annotations

from pathlib import Path

from analysis.synthetic import bottom_vs_top_trials, write_trials
from search.results.schema import TrialRow
from search.results.store import merge_resources, open_engine, session_scope

RECORD = {"node_ip": "10.0.0.7", "hostname": "gpu-node-3", "node_id": "ab12cd34",
          "device": "cuda:0", "device_name": "NVIDIA H200", "gpu_model": "NVIDIA H200",
          "gpu_count": 1, "cpu_model": "x86", "torch_version": "2.13.0", "cuda_version": "13.0",
          "cudnn_version": "91000"}


def test_trial_detail_shows_node_device_and_versions(app, tmp_path: Path) -> None:
    path = tmp_path / "hw.db"
    engine = open_engine(f"sqlite:///{path}", create=True)
    write_trials(engine, "bottom_vs_top", bottom_vs_top_trials(seeds=(0,))[:2])
    with session_scope(engine) as s:
        for row in s.query(TrialRow).all():
            merge_resources(s, row.id, RECORD)
            merge_resources(s, row.id, {"cpus": 4})  # merged, not replaced
    with session_scope(engine) as s:
        assert all('"gpu_model": "NVIDIA H200"' in r.resources_json and '"cpus": 4' in
                   r.resources_json for r in s.query(TrialRow).all())
    engine.dispose()
    at = app(path, "views/trial.py")
    assert not at.exception and not at.error
    facts = at.dataframe[0].value["value"].to_dict()
    assert facts["node"] == "gpu-node-3" and facts["node IP"] == "10.0.0.7"
    assert facts["GPU"] == "NVIDIA H200" and facts["GPUs"] == "1"
    assert facts["device"] == "cuda:0" and facts["CUDA"] == "13.0" and facts["torch"] == "2.13.0"
