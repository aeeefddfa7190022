"""A study on a multi-node Ray cluster (``ray.cluster_utils.Cluster``: Ray nodes on this machine,
1 CPU each): trials run on every node and say which; a node killed mid-study loses nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A head and one worker node, 1 CPU each (nodes inherit this environment)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def _study_args(cluster: object, db: Path, *extra: str) -> list[str]:
    return ["hardware=cluster", f"hardware.address={cluster.address}",  # type: ignore[attr-defined]
            "hardware.cpus_per_trial=1", "hardware.gpus_per_trial=0", "hardware.device=cpu",
            "hardware.ship_code=false", f"storage=sqlite:///{db}", *extra]


def _trials(db: Path) -> list[tuple[str, str | None, dict]]:
    """(state, error, resources) of every trial row."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute("SELECT state, error, resources_json FROM trials").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()
    return [(state, error, json.loads(resources or "{}")) for state, error, resources in rows]


def test_trials_run_on_both_nodes_and_record_them(runner, cluster: object) -> None:
    db = runner.cwd / "cluster.db"
    # Trials long enough to overlap, so that each node gets one.
    out = runner.run(*_study_args(cluster, db), timeout=300, faults="epoch_sleep_s=2")
    assert out.returncode == 0, out.stderr[-3000:]
    trials = _trials(db)
    assert [state for state, _, _ in trials] == ["COMPLETE"] * 4
    node_ids = {node.node_id for node in cluster.list_all_nodes()}  # type: ignore[attr-defined]
    ran_on = {resources["node_id"] for _, _, resources in trials}
    assert ran_on == node_ids  # both nodes trained trials, and each row names its node
    for _, _, resources in trials:
        assert resources["hostname"] and resources["node_ip"] and resources["device"] == "cpu"
        assert resources["ray_address"] == cluster.address  # type: ignore[attr-defined]
        assert resources["gpu_count"] == 0 and resources["torch_version"]

    from analysis import load_trials

    df = load_trials(db, "smoke")
    assert set(df["node_id"]) == node_ids and df["node"].notna().all()
    assert set(df["device"]) == {"cpu"}


def test_a_node_killed_mid_study_loses_nothing(runner, cluster: object) -> None:
    """The worker node dies under a running trial: that trial is FAILED with a reason, the others
    complete (on the surviving nodes); rerunning the command completes the study."""
    doomed = cluster.add_node(num_cpus=1)  # type: ignore[attr-defined]
    cluster.wait_for_nodes()  # type: ignore[attr-defined]
    db = runner.cwd / "kill.db"
    # Two epochs, each ending in a pause: the first result names the node, the second epoch is
    # where the node dies.
    proc = runner.start(*_study_args(cluster, db, "train.epochs=2"), faults="epoch_sleep_s=2")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if any(state == "RUNNING" and resources.get("node_id") == doomed.node_id
               for state, _, resources in _trials(db)):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"no trial reported from the worker node: {proc.communicate()[1][-3000:]}")
    cluster.remove_node(doomed, allow_graceful=False)  # type: ignore[attr-defined]
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1), err[-3000:]  # 1: a trial FAILED (and the summary says so)
    trials = _trials(db)
    assert len(trials) == 4 and {state for state, _, _ in trials} <= {"COMPLETE", "FAILED"}
    on_doomed = [t for t in trials if t[2].get("node_id") == doomed.node_id]
    assert on_doomed and all(state == "FAILED" and error for state, error, _ in on_doomed), trials
    assert sum(state == "COMPLETE" for state, _, _ in trials) == 4 - len(on_doomed)
    rerun = runner.run(*_study_args(cluster, db, "train.epochs=2"), timeout=300)  # resumes
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert [state for state, _, _ in _trials(db)] == ["COMPLETE"] * 4
