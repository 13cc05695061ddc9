"""The processes of ``runner=ray``: an :class:`ActorWorker` per actor, a :class:`LearnerWorker` per rank.

They are plain classes; :mod:`oatlike.runners.ray` turns them into Ray actors. Each builds its components
with the same :class:`~oatlike.builder.Builder` the local runner uses, in its own process, so what runs
here is exactly what runs in one process.

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
from oatlike.roles import Collected, Weights
from oatlike.seeding import stable_seed
from oatlike.sync.group import SyncGroup, TensorSpec, weight_spec
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
        return {
            **node_info(),
            "index": self.index,
            "weights_version": self.actor.policy_version,
            "has_reference_engine": self.actor.reference_engine is not None,
        }

    def step(self, prompts: list[Prompt]) -> Collected:
        return self.actor.step(prompts)

    def join_sync_group(
        self, host: str, port: int, rank: int, world_size: int, name: str, timeout: int, spec: list[TensorSpec]
    ) -> None:
        self.sync_group = SyncGroup(host, port, rank, world_size, timeout, self.builder.device, name)
        self.spec = spec

    def receive_weights(self, weights: Weights, version: int, bucket_mb: int) -> float:
        """Receive the learner's broadcast and load it into the policy engine (or the reference copy);
        returns the seconds it took."""
        assert self.sync_group is not None, "join_sync_group first"
        start = time.perf_counter()
        engine = self.actor.reference_engine if weights == "reference" else self.actor.engine
        into = engine.weight_storage() if engine is not None else None  # straight into the engine's weights
        received = self.sync_group.receive(self.spec, bucket_mb, into)
        if weights == "reference":
            self.actor.load_reference_weights(received, version)
        else:
            self.actor.engine.load_weights(received, version)
        return time.perf_counter() - start

    def set_reference_version(self, version: int) -> None:
        """π_ref was refreshed on the learner; this actor holds no copy of it, only the version."""
        self.actor.load_reference_weights(None, version)

    def probe(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        return self.actor.engine.score(prompt_ids, response_ids).logps.tolist()

    def state_dict(self) -> dict[str, Any]:
        return self.actor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state)


class LearnerWorker:
    """One learner rank. Built in two phases: placement first, then :meth:`setup` once rank 0's address is known."""

    def __init__(self, config: Config, rank: int, world_size: int, num_cpus: float) -> None:
        _setup_process(num_cpus)
        torch.manual_seed(config.seed)
        self.rank, self.world_size = rank, world_size
        self.builder = Builder(config, progress=False)
        self.sync_group: SyncGroup | None = None
        self.spec: list[TensorSpec] = []

    def info(self) -> dict[str, Any]:
        return {**node_info(), "rank": self.rank}

    def rendezvous_address(self) -> tuple[str, int]:
        """An address on this node where a group can meet (a free port)."""
        return node_info()["ip"], free_port()

    def setup(self, master_addr: str, master_port: int) -> list[TensorSpec]:
        """Build the learner (every rank at once: they form the DeepSpeed world); returns the layout of the
        weights it exports (gathering them is collective under ZeRO-3)."""
        self.learner = self.builder.learner(World(self.rank, self.world_size, master_addr, master_port))
        self.evaluator = self.builder.evaluator() if self.rank == 0 else None
        self.spec = weight_spec(self.learner.weights())
        return self.spec

    def learn(self, shard: PreferenceBatch) -> dict[str, Any]:
        return self.learner.learn(shard)

    def join_sync_group(self, host: str, port: int, world_size: int, name: str, timeout: int) -> None:
        """Rank 0 hosts the sync group's store and is its rank 0."""
        self.sync_group = SyncGroup(host, port, 0, world_size, timeout, self.builder.device, name)

    def refresh_reference(self) -> None:
        self.learner.refresh_reference()

    def broadcast_weights(self, weights: Weights, bucket_mb: int) -> dict[str, float]:
        """Gather the policy (every rank; or π_ref's newest version) and broadcast it to the actors (rank 0)."""
        start = time.perf_counter()
        tensors = self.learner.weight_views() if weights == "policy" else self.learner.reference_weights()
        gathered = time.perf_counter()
        sent = 0
        if self.rank == 0:
            assert self.sync_group is not None, "join_sync_group first"
            assert tensors is not None, "π_ref is sent only once it was refreshed"
            sent = self.sync_group.broadcast(tensors, self.spec, bucket_mb)
        return {
            "gather_seconds": gathered - start,
            "broadcast_seconds": time.perf_counter() - gathered,
            "bytes": float(sent),
        }

    def probe(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        return self.learner.probe_logps(prompt_ids, response_ids)

    def evaluate(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        weights = self.learner.weights()  # every rank: collective under ZeRO-3
        if self.evaluator is None:
            return None
        return self.evaluator.evaluate(weights, self.learner.version)

    def save(self, folder: str) -> None:
        self.learner.save(Path(folder), self.builder.tokenizer)

    def state_dict(self) -> dict[str, Any]:
        evaluator = None if self.evaluator is None else self.evaluator.state_dict()
        return {**self.learner.state_dict(), "evaluator": evaluator}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)
        if self.evaluator is not None and state["evaluator"] is not None:
            self.evaluator.load_state_dict(state["evaluator"])
