"""Faults under runner=ray: an actor killed during the weight broadcast, a learner rank that dies."""

from __future__ import annotations

import json
import os
import signal

import pytest
import ray
from helpers import make_config, read_metrics, step_records

from oatlike.errors import OatlikeError
from oatlike.experiment import build_loop
from oatlike.runners.ray_cluster import ensure_ray

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def private_ray(tmp_path_factory, cache_dir):
    ensure_ray(make_config(tmp_path_factory.mktemp("ray"), "runner=ray", "ray.num_cpus=4"), cache_dir)
    yield
    ray.shutdown()


def test_an_actor_killed_during_the_weight_broadcast_is_restarted_and_synced(tmp_path):
    loop = build_loop(make_config(tmp_path, "runner=ray", "actors.num=2", "steps=4", "eval.every=0"), tmp_path)
    victim = json.loads((tmp_path / "ray.json").read_text())["actors"][1]["pid"]
    sync, pushes = loop.roles.sync, []
    push = sync.push

    def kill_then_push(weights, attempt=0):
        pushes.append(weights)
        if len(pushes) == 2:
            os.kill(victim, signal.SIGKILL)  # the actor dies as the broadcast of step 2 starts
        return push(weights, attempt)

    sync.push = kill_then_push  # type: ignore[method-assign]
    summary = loop.run()
    assert summary["steps"] == 4 and summary["actor_restarts"] >= 1
    records = step_records(tmp_path)
    assert all(r["train/pairs"] == 32 for r in records)
    assert all(r["misc/sync_probe_max_gap"] == 0.0 for r in records)  # the restarted actor holds the weights
    assert summary["oracle_queries"] == summary["pairs_trained"]


def test_a_learner_rank_that_dies_stops_the_run_in_one_line_keeping_the_metrics(tmp_path):
    overrides = ["runner=ray", "steps=6", "eval.every=0", "learner.checkpoint_every=2"]
    loop = build_loop(make_config(tmp_path, *overrides), tmp_path)
    rank = json.loads((tmp_path / "ray.json").read_text())["learners"][0]["pid"]
    learner, calls = loop.roles.learner, []
    learn = learner.learn

    def die_at_the_third_step(batch):
        calls.append(1)
        if len(calls) == 3:
            os.kill(rank, signal.SIGKILL)
        return learn(batch)

    learner.learn = die_at_the_third_step  # type: ignore[method-assign]
    with pytest.raises(OatlikeError) as stopped:
        loop.run()
    message = str(stopped.value)
    assert "learner rank 0 died" in message and "\n" not in message
    assert "continue from its full-state checkpoint step_000002 with resume=" in message
    assert [r["step"] for r in step_records(tmp_path)] == [1, 2]
    assert json.loads((tmp_path / "summary.json").read_text())["stop_reason"] == "error"
    assert read_metrics(tmp_path)[0]["misc/train_prompts"] > 0
