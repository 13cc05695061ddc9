"""A two-node Ray cluster on this machine: a head node and a second node on loopback, each with its own
resources; the CLI joins it with ray.address and places actors and the learner on different nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"head_node": 4}})
    worker = cluster.add_node(num_cpus=2, resources={"worker_node": 4})
    cluster.wait_for_nodes()
    try:
        yield cluster, cluster.head_node.node_id, worker.node_id
    finally:
        cluster.shutdown()


def test_run_spreads_actors_and_learner_over_two_nodes(tmp_path, two_nodes):
    cluster, head_id, worker_id = two_nodes
    command = [
        sys.executable,
        "-m",
        "oatlike",
        "runner=ray",
        f"ray.address={cluster.address}",
        "actors.num=2",
        "actors.resources={worker_node:1}",
        "learner.resources={head_node:1}",
        "steps=3",
        "eval.every=0",
        "run_dir=run",
        "tracking.progress=false",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    placement = json.loads((tmp_path / "run" / "ray.json").read_text())
    assert sorted(placement["nodes"]) == sorted([head_id, worker_id])
    assert {a["node_id"] for a in placement["actors"]} == {worker_id}
    assert {learner["node_id"] for learner in placement["learners"]} == {head_id}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["oracle_queries"] == summary["pairs_trained"]
    # the run's actors are gone; the cluster it joined is not
    assert all(node.remaining_processes_alive() for node in cluster.list_all_nodes())
    # the driver's log says where the workers' logs are (their output is not sent to the driver)
    logs = Path(cluster.head_node.get_session_dir_path()) / "logs"
    assert f"Ray workers' logs: {logs} on each node of the cluster" in (tmp_path / "run" / "oatlike.log").read_text()
