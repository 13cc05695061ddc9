"""The processes of ``runner=ray``: an :class:`ActorWorker` per actor, a :class:`LearnerWorker` per rank.

They are plain classes; :mod:`oatlike.runners.ray_runner` turns them into Ray actors. Each builds its
components with the same :class:`~oatlike.builder.Builder` the local runner uses, in its own process, so
what runs here is exactly what runs in one process.

Learner ranks form one DeepSpeed world. Whatever gathers ZeRO-3 partitions (exporting weights, a forward
pass, saving) is collective, so the driver calls those methods on every rank at once; rank 0 then does
the rank-0 part (broadcast to the actors, evaluate, write the checkpoint).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from oatlike.builder import Builder
from oatlike.config import Config
from oatlike.learner.ds import World, free_port
from oatlike.sync import SyncGroup, TensorSpec, weight_spec
from oatlike.tasks.base import stable_seed
from oatlike.types import PreferenceBatch, Prompt


def _setup_process(num_cpus: float) -> None:
    """Threads to match the CPUs Ray reserved; no per-file progress bars."""
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(max(1, int(num_cpus)))
    hf_logging.disable_progress_bar()


def node_info() -> dict[str, Any]:
    """Where this process runs: Ray node id, IP and pid."""
    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
    }


class ActorWorker:
    """One actor: engine + explorer + oracle client, receiving weights over the sync group."""

    def __init__(self, config: Config, index: int, num_cpus: float) -> None:
        _setup_process(num_cpus)
        torch.manual_seed(stable_seed(config.seed, "actor-sampling", index))
        self.builder = Builder(config, progress=False)
        self.actor = self.builder.actor(index)
        self.index = index
        self.sync_group: SyncGroup | None = None
        self.spec: list[TensorSpec] = []

    def info(self) -> dict[str, Any]:
        return {**node_info(), "weights_version": self.actor.engine.weights_version, "index": self.index}

    def step(self, prompts: list[Prompt]) -> tuple[PreferenceBatch, dict[str, Any]]:
        return self.actor.step(prompts)

    def join_sync_group(
        self, host: str, port: int, rank: int, world_size: int, name: str, timeout: int, spec: list[TensorSpec]
    ) -> None:
        self.sync_group = SyncGroup(host, port, rank, world_size, timeout, self.builder.device, name)
        self.spec = spec

    def receive_weights(self, version: int, bucket_mb: int, reference: bool = False) -> float:
        """Receive weights from the learner and load them into the policy engine (or, with ``reference``,
        the explorer's reference copy); returns the seconds it took."""
        assert self.sync_group is not None, "join_sync_group first"
        start = time.perf_counter()
        weights = self.sync_group.receive(self.spec, bucket_mb)
        if reference:
            self.actor.load_reference_weights(weights, version)
        else:
            self.actor.engine.load_weights(weights, version)
        return time.perf_counter() - start

    def probe(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        return self.actor.engine.score(prompt_ids, response_ids).logps.tolist()

    def greedy(self, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        from oatlike.engines import SamplingParams

        params = SamplingParams(greedy=True, max_new_tokens=max_new_tokens)
        return [group[0].token_ids for group in self.actor.engine.generate(prompt_ids, params)]

    def engine_weights(self, reference: bool = False) -> dict[str, torch.Tensor] | None:
        """The policy engine's (or the reference engine's) weights; ``None`` where they are not exposed."""
        model = getattr(self.actor.reference_engine if reference else self.actor.engine, "model", None)
        return {k: v.detach().clone() for k, v in model.state_dict().items()} if model is not None else None


class LearnerWorker:
    """One learner rank. Built in two phases: placement first, then :meth:`setup` once rank 0's address is known."""

    def __init__(self, config: Config, rank: int, world_size: int, num_cpus: float) -> None:
        _setup_process(num_cpus)
        torch.manual_seed(config.seed)
        self.config = config
        self.rank, self.world_size = rank, world_size
        self.builder = Builder(config, progress=False)
        self.sync_group: SyncGroup | None = None
        self.spec: list[TensorSpec] = []

    def info(self) -> dict[str, Any]:
        return {**node_info(), "rank": self.rank}

    def rendezvous_address(self) -> tuple[str, int]:
        """An address on this node where a group can meet (a free port)."""
        return node_info()["ip"], free_port()

    def setup(self, master_addr: str, master_port: int) -> None:
        """Build the learner; every rank at once (they form the DeepSpeed world)."""
        world = World(self.rank, self.world_size, master_addr, master_port)
        self.learner = self.builder.learner(world)
        self.evaluator = self.builder.evaluator(out_dir=None) if self.rank == 0 else None

    def learn(self, shard: PreferenceBatch) -> dict[str, Any]:
        return self.learner.learn(shard)

    def weight_spec(self) -> list[TensorSpec]:
        """The layout of the exported weights (collective under ZeRO-3)."""
        self.spec = weight_spec(self.learner.weights())
        return self.spec

    def join_sync_group(self, host: str, port: int, world_size: int, name: str, timeout: int) -> None:
        """Rank 0 hosts the sync group's store and is its rank 0."""
        self.sync_group = SyncGroup(host, port, 0, world_size, timeout, self.builder.device, name)

    def broadcast_weights(self, bucket_mb: int, which: str = "policy") -> dict[str, float]:
        """Gather the weights (every rank) and broadcast them to the actors (rank 0). ``which``: ``policy``,
        ``refresh_reference`` (π_ref ← π_θ, then send them) or ``reference`` (π_ref as last refreshed)."""
        start = time.perf_counter()
        if which == "refresh_reference":
            weights = self.learner.refresh_reference()
        elif which == "reference":
            weights = self.learner.reference_weights() or self.learner.weights()
        else:
            weights = self.learner.weights()
        gathered = time.perf_counter()
        sent = 0
        if self.rank == 0:
            assert self.sync_group is not None, "join_sync_group first"
            sent = self.sync_group.broadcast(weights, self.spec, bucket_mb)
        return {
            "gather_seconds": gathered - start,
            "broadcast_seconds": time.perf_counter() - gathered,
            "bytes": float(sent),
        }

    def probe(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        return self.learner.sequence_logps(prompt_ids, response_ids)

    def evaluate(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        weights = self.learner.weights()
        if self.evaluator is None:
            return None
        metrics = self.evaluator.evaluate(step, weights, self.learner.version)
        return metrics, self.evaluator.last_records

    def save(self, folder: str) -> None:
        self.learner.save(Path(folder), self.builder.tokenizer)

    def engine_weights(self) -> dict[str, torch.Tensor]:
        return self.learner.weights()

    def greedy(self, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]] | None:
        """Greedy answers of the learner's policy (rank 0, through its evaluation engine)."""
        weights = self.learner.weights()
        if self.evaluator is None:
            return None
        from oatlike.engines import SamplingParams

        self.evaluator.engine.load_weights(weights, self.learner.version)
        params = SamplingParams(greedy=True, max_new_tokens=max_new_tokens)
        return [group[0].token_ids for group in self.evaluator.engine.generate(prompt_ids, params)]
