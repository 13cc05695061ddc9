"""``runner=local``: the loop's three roles in this process (debugging, tests, laptops).

The actor samples with its own copy of the policy and the evaluator with another, both fed with the
learner's weights through the same ``load_weights`` path, and probed, as under ``runner=ray``: every
distributed bug has a one-process repro.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from oatlike.actors.actor import Actor
from oatlike.builder import Builder
from oatlike.eval.evaluator import Evaluator
from oatlike.learner.learner import Learner
from oatlike.roles import ActorPool, Collected, LearnerGroup, Roles, Weights, WeightSync, check_probe
from oatlike.types import PreferenceBatch, Prompt

log = logging.getLogger(__name__)


class LocalActorPool(ActorPool):
    """One actor, collecting as soon as it is asked."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    def submit(self, prompts: list[Prompt]) -> Collected:
        return self.actor.step(prompts)

    def collect(self, ticket: Collected) -> Collected:
        return ticket

    @property
    def policy_version(self) -> int:
        return self.actor.policy_version

    @property
    def reference_version(self) -> int:
        return self.actor.reference_version

    def state_dict(self) -> dict[str, Any]:
        return {"actors": [self.actor.state_dict()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        (actor,) = state["actors"]
        self.actor.load_state_dict(actor)


class LocalLearnerGroup(LearnerGroup):
    """One learner and the evaluator."""

    def __init__(self, learner: Learner, evaluator: Evaluator, builder: Builder) -> None:
        self.learner, self.evaluator, self.builder = learner, evaluator, builder

    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        return self.learner.learn(batch)

    @property
    def version(self) -> int:
        return self.learner.version

    @property
    def reference_version(self) -> int:
        return self.learner.reference_version

    def refresh_reference(self) -> None:
        self.learner.refresh_reference()

    def evaluate(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return self.evaluator.evaluate(self.learner.weights(), self.learner.version)

    def save(self, folder: str) -> None:
        self.learner.save(Path(folder), self.builder.tokenizer)

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": [self.learner.state_dict()], "evaluator": self.evaluator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        (rank,) = state["ranks"]
        self.learner.load_state_dict(rank)
        self.evaluator.load_state_dict(state["evaluator"])


class LocalWeightSync(WeightSync):
    """Hands the learner's tensors to the actor's engines; probes the policy after each sync."""

    def __init__(
        self, learner: Learner, actor: Actor, probe: tuple[list[list[int]], list[list[int]]], tolerance: float
    ):
        self.learner, self.actor, self.probe, self.tolerance = learner, actor, probe, tolerance

    def push(self, weights: Weights) -> dict[str, Any]:
        start = time.perf_counter()
        if weights == "reference":
            reference = self.learner.reference_weights() if self.actor.reference_engine is not None else None
            self.actor.load_reference_weights(reference, self.learner.reference_version)
            return {"misc/reference_version": self.learner.reference_version}
        self.actor.engine.load_weights(self.learner.weight_views(), self.learner.version)
        metrics: dict[str, Any] = {
            "misc/sync_seconds": time.perf_counter() - start,
            "misc/weights_version": self.learner.version,
        }
        learner = self.learner.probe_logps(*self.probe)
        actor = self.actor.engine.score(*self.probe).logps.tolist()
        metrics.update(check_probe(learner, [actor], self.tolerance, self.learner.version))
        return metrics


def probe_pairs(builder: Builder) -> tuple[list[list[int]], list[list[int]]]:
    """Fixed (prompt, response) pairs for the sync probe: evaluation prompts with their references (or EOS)."""
    tokenizer = builder.tokenizer
    prompts = builder.prompt_sets[1].prompts[: builder.config.weight_sync.probe_prompts]
    responses = [
        (tokenizer(p.reference, add_special_tokens=False).input_ids if p.reference else []) + [tokenizer.eos_token_id]
        for p in prompts
    ]
    return [list(p.token_ids) for p in prompts], responses


LOCAL_THREADS_CAP = 2
"""Most torch threads ``runner.threads=null`` gives the run's process (docs/benchmarks.md, "Threads")."""


def local_threads(threads: int | None) -> int:
    """The torch thread count of a ``runner=local`` run: ``threads`` as given; else ``OMP_NUM_THREADS`` if
    set (the user's choice, which torch read at start-up); else one per core this process may use, up to
    :data:`LOCAL_THREADS_CAP`."""
    if threads is not None:
        return threads
    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, LOCAL_THREADS_CAP))


def local_roles(builder: Builder, run_dir: Path, notify: Any = print) -> Roles:
    """The roles of ``runner=local``, built in this process (with :func:`local_threads` torch threads)."""
    threads = local_threads(getattr(builder.config.runner, "threads", None))
    torch.set_num_threads(threads)
    log.info("runner=local: %d torch threads", threads)
    torch.manual_seed(builder.config.seed)
    actor, learner = builder.actor(), builder.learner()
    sync = LocalWeightSync(learner, actor, probe_pairs(builder), builder.config.weight_sync.probe_tolerance)
    return Roles(LocalActorPool(actor), LocalLearnerGroup(learner, builder.evaluator(), builder), sync)
