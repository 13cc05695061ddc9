"""runner=ray on this machine: Ray actors, DeepSpeed learner ranks over gloo, weight sync, faults, vLLM.

The in-process tests share one private Ray instance (started by the runner's own ``start_ray``); each
runner kills the Ray actors it started when it closes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray
import torch
from helpers import make_config, read_metrics

from oatlike.runners import run
from oatlike.runners.local import LocalRunner
from oatlike.runners.ray_runner import RayRunner, start_ray

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def private_ray(tmp_path_factory, cache_dir):
    config = make_config(tmp_path_factory.mktemp("ray"), "runner=ray", "ray.num_cpus=4")
    start_ray(config, cache_dir)
    yield
    ray.shutdown()


def step_records(run_dir: Path) -> list[dict]:
    return [r for r in read_metrics(run_dir) if "train/loss" in r]


def test_two_hf_actors_and_a_learner_produce_the_metrics_of_the_local_runner(tmp_path):
    local = tmp_path / "local"
    run(make_config(local, "steps=2", "eval.every=0"), local)
    remote = tmp_path / "ray"
    summary = run(make_config(remote, "runner=ray", "actors.num=2", "steps=3", "eval.every=0"), remote)
    assert summary["steps"] == 3 and summary["oracle_queries"] == summary["pairs_trained"]
    assert set(step_records(local)[0]) <= set(step_records(remote)[0])  # plus sync and placement figures
    placement = json.loads((remote / "ray.json").read_text())
    assert len(placement["actors"]) == 2 and len(placement["learners"]) == 1
    assert {r["misc/sync_probe_max_gap"] for r in step_records(remote)} == {0.0}  # fp32: bitwise
    assert (remote / "checkpoints" / "final" / "model.safetensors").exists()
    assert [r["step"] for r in read_metrics(remote) if "eval/utility" in r] == [0, 3]


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_two_learner_ranks(tmp_path, zero_stage):
    overrides = ["runner=ray", "learner.num=2", f"learner.zero_stage={zero_stage}", "learner.grad_accum_steps=1"]
    summary = run(make_config(tmp_path, *overrides, "steps=2", "eval.every=2"), tmp_path)
    assert summary["steps"] == 2 and summary["oracle_queries"] == summary["pairs_trained"]
    records = step_records(tmp_path)
    assert all(r["train/pairs"] == 32 for r in records)  # 16 pairs on each rank
    assert all(r["misc/sync_probe_max_gap"] <= 1e-4 for r in records)
    assert len(json.loads((tmp_path / "ray.json").read_text())["learners"]) == 2


def test_after_a_sync_actors_hold_the_learners_weights_bitwise(tmp_path):
    runner = RayRunner(make_config(tmp_path, "runner=ray", "actors.num=2", "learner.lr=1e-3"), tmp_path)
    try:
        batch, _ = runner.finish_collect(runner.start_collect(runner.stream.next(32)))
        runner.learn(batch)
        learner = ray.get(runner.learners[0].engine_weights.remote())
        before = ray.get(runner.actors[0].engine_weights.remote())
        assert any(not torch.equal(learner[k], before[k]) for k in learner)  # the step changed the policy
        metrics = runner.sync()
        assert metrics["misc/weights_version"] == 1 and metrics["misc/sync_probe_max_gap"] == 0.0
        for actor in runner.actors:
            weights = ray.get(actor.engine_weights.remote())
            assert weights.keys() == learner.keys()
            assert all(weights[k].dtype == torch.float32 and torch.equal(weights[k], learner[k]) for k in learner)
        prompts = [list(p.token_ids) for p in runner.eval_prompts.prompts[:32]]
        reference = ray.get(runner.learners[0].greedy.remote(prompts, 8))
        for actor in runner.actors:
            assert ray.get(actor.greedy.remote(prompts, 8)) == reference
        assert {info["weights_version"] for info in ray.get([a.info.remote() for a in runner.actors])} == {1}
    finally:
        runner.close()


def test_explorers_run_on_ray_actors_and_reference_refreshes_reach_them(tmp_path):
    """SELM under runner=ray: the actors' reference engines write the own responses the learner's bonus
    needs, and π_ref ← π_θ reaches every actor's reference copy bitwise."""
    overrides = ["runner=ray", "actors.num=2", "algo=selm", "explore.reference_refresh_every=1", "learner.lr=1e-3"]
    runner = RayRunner(make_config(tmp_path, *overrides), tmp_path)
    try:
        batch, metrics = runner.finish_collect(runner.start_collect(runner.stream.next(32)))
        assert len(batch.extras["own_response_ids"]) == len(batch) == 32
        assert metrics["explorer/reference_generated"] > 0  # one greedy reference answer per prompt
        learned = runner.learn(batch)
        assert "explorer/bonus" in learned  # the learner ranks add the SELM term
        initial = ray.get(runner.actors[0].engine_weights.remote(reference=True))
        assert runner.explorer.reference_refresh_due(1, synced=False)
        assert runner.refresh_reference()["misc/reference_version"] == 1
        policy = ray.get(runner.learners[0].engine_weights.remote())
        assert any(not torch.equal(policy[k], initial[k]) for k in policy)
        for actor in runner.actors:
            reference = ray.get(actor.engine_weights.remote(reference=True))
            assert all(torch.equal(reference[k], policy[k]) for k in policy)
    finally:
        runner.close()


def test_async_mode_overlaps_generation_and_bounds_staleness(tmp_path):
    summary = run(make_config(tmp_path, "runner=ray", "runner.mode=async", "steps=5", "eval.every=0"), tmp_path)
    records = step_records(tmp_path)
    assert summary["steps"] == 5 and summary["oracle_queries"] == summary["pairs_trained"]
    assert [r["misc/staleness"] for r in records] == [0, 1, 1, 1, 1]  # step t+1 was generated during step t
    assert [r["actor/weights_version"] for r in records] == [0, 0, 1, 2, 3]


def test_a_killed_actor_is_restarted_and_nothing_is_lost_or_counted_twice(tmp_path):
    runner = RayRunner(make_config(tmp_path, "runner=ray", "actors.num=2", "steps=5", "eval.every=0"), tmp_path)
    victim = runner.placement["actors"][0]["pid"]
    submit, calls = runner.start_collect, []

    def submit_then_kill(prompts):
        handle = submit(prompts)
        calls.append(len(prompts))
        if len(calls) == 3:
            os.kill(victim, signal.SIGKILL)  # the actor process dies while its step is in flight
        return handle

    runner.start_collect = submit_then_kill  # type: ignore[method-assign]
    summary = runner.run()
    assert summary["steps"] == 5 and summary["actor_restarts"] >= 1
    assert summary["oracle_queries"] == summary["pairs_trained"]
    records = step_records(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r["train/pairs"] == 32 for r in records)  # every step trained on all its prompts
    assert sum(r["oracle/step_queries"] for r in records) == summary["oracle_queries"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (the cpu-vllm extra)")
def test_vllm_engine_end_to_end(tmp_path):
    overrides = ["runner=ray", "engine=vllm", "engine.dtype=float32", "steps=3", "eval.every=0"]
    summary = run(make_config(tmp_path, *overrides), tmp_path)
    assert summary["steps"] == 3 and summary["oracle_queries"] == summary["pairs_trained"]
    records = step_records(tmp_path)
    assert all(r["misc/sync_probe_max_gap"] < 1e-3 for r in records)
    assert all(r["actor/finished_fraction"] > 0.5 for r in records)  # the SFT model stops; vLLM saw the EOS


def test_local_and_ray_runners_share_the_loop():
    assert LocalRunner.run is RayRunner.run


def test_ctrl_c_stops_every_process_the_run_started(tmp_path):
    command = [
        sys.executable,
        "-m",
        "oatlike",
        "runner=ray",
        "steps=100000",
        "eval.every=0",
        "run_dir=run",
        "tracking.progress=false",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a suite started in the background (`make test &`) inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    started = []
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(step_records(tmp_path / "run")) >= 2:
            started = psutil.Process(process.pid).children(recursive=True)
            break
        time.sleep(0.5)
    assert started, "the run did not reach step 2"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "oatlike: error" not in stderr and "interrupted; what was collected is in" in stderr
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.info for p in alive]
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").exists()
