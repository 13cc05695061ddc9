"""runner=ray on this machine: Ray actors, DeepSpeed learner ranks over gloo, weight sync, faults, vLLM.
(Every preset under ray sync and async with 2 ranks under ZeRO-3: tests/runners/test_matrix.py.)

The in-process tests share one private Ray instance (started by the runner's own ``ensure_ray``); each
run kills the Ray actors it started when it closes.
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
from typing import Any

import psutil
import pytest
import ray
import torch
from helpers import make_config, read_metrics, step_records

from oatlike.builder import Builder
from oatlike.experiment import build_loop, run
from oatlike.runners.ray import RayRoles, ray_roles
from oatlike.runners.ray_cluster import ensure_ray

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def private_ray(tmp_path_factory, cache_dir):
    config = make_config(tmp_path_factory.mktemp("ray"), "runner=ray", "ray.num_cpus=4")
    ensure_ray(config, cache_dir)
    yield
    ray.shutdown()


def test_the_private_rays_workers_run_at_the_drivers_priority():
    """Ray's default starts its workers at nice 15, behind every other process of a busy machine (its
    actors then took minutes to start beside the test suite's other workers, past the start-up deadline)."""
    niceness = ray.remote(num_cpus=0)(lambda: os.nice(0))  # a lambda: sent by value, not imported
    assert ray.get(niceness.remote()) == os.nice(0) == 0


def policy_weights(worker: Any, reference: bool = False) -> dict[str, torch.Tensor]:
    """The weights a worker's policy engine (or reference engine) or learner holds, read in its process."""

    def read(instance: Any) -> dict[str, torch.Tensor]:
        if hasattr(instance, "learner"):
            return instance.learner.weights()
        engine = instance.actor.reference_engine if reference else instance.actor.engine
        return {k: v.detach().clone() for k, v in engine.model.state_dict().items()}

    return ray.get(worker.__ray_call__.remote(read))


def greedy_answers(worker: Any, prompt_ids: list[list[int]]) -> list[list[int]]:
    """Greedy answers of an actor's policy engine, or of the learner's policy through rank 0's evaluator."""
    from oatlike.engines.base import SamplingParams

    def answer(instance: Any) -> list[list[int]]:
        engine = instance.actor.engine if hasattr(instance, "actor") else instance.evaluator.engine
        if not hasattr(instance, "actor"):
            engine.load_weights(instance.learner.weights(), instance.learner.version)
        groups = engine.generate(prompt_ids, SamplingParams(greedy=True, max_new_tokens=8))
        return [group[0].token_ids for group in groups]

    return ray.get(worker.__ray_call__.remote(answer))


def roles_of(tmp_path: Path, *overrides: str) -> tuple[RayRoles, Builder]:
    builder = Builder(make_config(tmp_path, "runner=ray", *overrides), progress=False)
    roles = ray_roles(builder, tmp_path)
    assert isinstance(roles, RayRoles)
    return roles, builder


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


def test_after_a_sync_actors_hold_the_learners_weights_bitwise(tmp_path):
    roles, builder = roles_of(tmp_path, "actors.num=2", "learner.lr=1e-3")
    try:
        actors, learner = roles.ray_actors, roles.learner
        batch, _ = actors.collect(actors.submit(builder.prompt_sets[0].prompts[:32]))
        learner.learn(batch)
        trained = policy_weights(learner.ranks[0])  # type: ignore[attr-defined]
        before = policy_weights(actors.workers[0])
        assert any(not torch.equal(trained[k], before[k]) for k in trained)  # the step changed the policy
        metrics = roles.sync.push("policy")
        assert metrics["misc/weights_version"] == 1 and metrics["misc/sync_probe_max_gap"] == 0.0
        for actor in actors.workers:
            weights = policy_weights(actor)
            assert weights.keys() == trained.keys()
            assert all(weights[k].dtype == torch.float32 and torch.equal(weights[k], trained[k]) for k in trained)
        prompts = [list(p.token_ids) for p in builder.prompt_sets[1].prompts[:32]]
        expected = greedy_answers(learner.ranks[0], prompts)  # type: ignore[attr-defined]
        assert all(greedy_answers(actor, prompts) == expected for actor in actors.workers)
        assert actors.policy_version == 1
        assert {info["weights_version"] for info in ray.get([a.info.remote() for a in actors.workers])} == {1}
    finally:
        roles.close()


def test_explorers_run_on_ray_actors_and_reference_refreshes_reach_them(tmp_path):
    """SELM under runner=ray: the actors' reference engines write the own responses the learner's bonus
    needs, and π_ref ← π_θ reaches every actor's reference copy bitwise."""
    overrides = ["actors.num=2", "algo=selm", "explore.reference_refresh_every=1", "learner.lr=1e-3"]
    roles, builder = roles_of(tmp_path, *overrides)
    try:
        actors, learner = roles.ray_actors, roles.learner
        batch, metrics = actors.collect(actors.submit(builder.prompt_sets[0].prompts[:32]))
        assert len(batch.extras["own_response_ids"]) == len(batch) == 32
        assert metrics["explorer/reference_generated"] > 0  # one greedy reference answer per prompt
        assert "explorer/bonus" in learner.learn(batch)  # the learner ranks add the SELM term
        initial = policy_weights(actors.workers[0], reference=True)
        assert builder.config.explore.reference_refresh_due(1, synced=False)
        learner.refresh_reference()
        assert roles.sync.push("reference")["misc/reference_version"] == 1
        policy = policy_weights(learner.ranks[0])  # type: ignore[attr-defined]
        assert any(not torch.equal(policy[k], initial[k]) for k in policy)
        for actor in actors.workers:
            reference = policy_weights(actor, reference=True)
            assert all(torch.equal(reference[k], policy[k]) for k in policy)
        assert actors.versions["reference"] == 1
    finally:
        roles.close()


def test_a_killed_actor_is_restarted_and_nothing_is_lost_or_counted_twice(tmp_path):
    loop = build_loop(make_config(tmp_path, "runner=ray", "actors.num=2", "steps=5", "eval.every=0"), tmp_path)
    victim = json.loads((tmp_path / "ray.json").read_text())["actors"][0]["pid"]
    actors = loop.roles.actors
    submit, calls = actors.submit, []

    def submit_then_kill(prompts):
        ticket = submit(prompts)
        calls.append(len(prompts))
        if len(calls) == 3:
            os.kill(victim, signal.SIGKILL)  # the actor process dies while its step is in flight
        return ticket

    actors.submit = submit_then_kill  # type: ignore[method-assign]
    summary = loop.run()
    assert summary["steps"] == 5 and summary["actor_restarts"] >= 1 and summary["forced_syncs"] >= 1
    assert summary["oracle_queries"] == summary["pairs_trained"]
    records = step_records(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r["train/pairs"] == 32 for r in records)  # every step trained on all its prompts
    assert sum(r["oracle/step_queries"] for r in records) == summary["oracle_queries"]
    assert all(r["misc/sync_probe_max_gap"] == 0.0 for r in records)  # the restarted actor got the weights


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (the cpu-vllm extra)")
def test_vllm_engine_end_to_end(tmp_path):
    overrides = ["runner=ray", "engine=vllm", "engine.dtype=float32", "steps=3", "eval.every=0"]
    summary = run(make_config(tmp_path, *overrides), tmp_path)
    assert summary["steps"] == 3 and summary["oracle_queries"] == summary["pairs_trained"]
    records = step_records(tmp_path)
    assert all(r["misc/sync_probe_max_gap"] < 1e-3 for r in records)
    assert all(r["actor/finished_fraction"] > 0.5 for r in records)  # the SFT model stops; vLLM saw the EOS


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
    assert "oatlike: error" not in stderr and "oatlike: interrupted after step" in stderr
    assert "continue with resume=" in stderr  # a full-state checkpoint of the last step was saved
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.info for p in alive]
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").exists()
