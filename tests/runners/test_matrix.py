"""Every algorithm on every runner: each ``algo=`` preset for a few steps under ``runner=local``, ``runner=ray``
sync (one actor) and ``runner=ray`` async with 2 learner ranks and 3 actors, checking the loop's invariants.

Invariants, every run: the steps all ran, each on exactly ``actor.prompts_per_step`` pairs; the query count
is the sum of the steps' queries and, where no candidate is scored, the number of distinct pairs trained;
the behaviour policy's version follows the sync schedule (async: one step behind) and staleness stays
within its bound; a policy sync leaves the actors with the learner's weights (probe gap 0 in fp32); every
pair is judged against the π_ref version its actor held (and for BPO that is the behaviour policy itself);
an explorer logs what it adds.
"""

from __future__ import annotations

import pytest
import ray
from helpers import make_config, step_records

from oatlike.help import group_options
from oatlike.loop import run
from oatlike.runners.ray_cluster import ensure_ray

pytestmark = pytest.mark.slow

STEPS = 3
SMALL = [
    f"steps={STEPS}",
    "eval.every=0",
    "actor.prompts_per_step=16",
    "learner.micro_batch_size=8",
    "learner.grad_accum_steps=1",
    "data.max_eval_prompts=16",
    "weight_sync.probe_prompts=4",
]
RUNNERS = {
    "local": [],
    "ray-sync": ["runner=ray", "actors.num_cpus=0.5"],
    "ray-async-2ranks": [
        "runner=ray",
        "runner.mode=async",
        "actors.num=3",
        "actors.num_cpus=0.5",
        "learner.num=2",
        "learner.num_cpus=0.5",
    ],
}
REFRESHING = {"selm": ["explore.reference_refresh_every=1"], "copo": ["explore.reference_refresh_every=1"]}
"""SELM and COPO iterate π_ref every step here, so that refreshes meet async collection."""


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, cache_dir):
    ensure_ray(make_config(tmp_path_factory.mktemp("ray"), "runner=ray", "ray.num_cpus=4"), cache_dir)
    yield
    ray.shutdown()


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("algo", group_options("algo"))
def test_every_algorithm_on_every_runner(tmp_path, ray_cluster, algo, runner):
    overrides = [f"algo={algo}", *SMALL, *REFRESHING.get(algo, []), *RUNNERS[runner]]
    config = make_config(tmp_path, *overrides)
    summary = run(config, tmp_path)
    records = step_records(tmp_path)
    asynchronous = config.runner.mode == "async"

    assert summary["steps"] == STEPS and [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert all(r["train/pairs"] == 16 for r in records), [r["train/pairs"] for r in records]
    assert summary["oracle_queries"] == sum(r["oracle/step_queries"] for r in records)
    if not config.explore.scores_candidates:
        assert summary["oracle_queries"] == summary["pairs_trained"]
    behaviour = [r["misc/behaviour_version"] for r in records]
    assert behaviour == ([0, 0, 1] if asynchronous else [0, 1, 2]), behaviour
    assert all(0 <= r["misc/staleness"] <= config.runner.max_staleness for r in records)
    assert all(r["misc/sync_probe_max_gap"] == 0.0 for r in records), [r["misc/sync_probe_max_gap"] for r in records]
    if config.loss.needs_reference:
        judged = [r["train/reference_version"] for r in records]
        held = [r["misc/pair_reference_version"] for r in records]
        assert judged == held, (judged, held)
        if algo == "bpo":  # π_ref is the behaviour policy that sampled the pairs
            assert judged == behaviour, (judged, behaviour)
        if algo in REFRESHING:
            assert judged == ([0, 0, 1] if asynchronous else [0, 1, 2]), judged
    if config.explore.name != "passive":
        assert any(key.startswith("explorer/") for key in records[-1]), sorted(records[-1])
