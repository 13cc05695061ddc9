"""``runner=ray``'s weight sync: learner rank 0 broadcasts the policy (or π_ref) to every actor over a process
group of its own (its own TCPStore, never DeepSpeed's group), then the probe compares the learner's and each
actor's log-probs. An actor that dies during a sync is restarted and the sync redone (:mod:`oatlike.runners.ray`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from oatlike.roles import Weights, WeightSync, check_probe
from oatlike.runners.local import probe_pairs
from oatlike.runners.ray_cluster import ray_get as _get

if TYPE_CHECKING:
    from oatlike.builder import Builder
    from oatlike.runners.ray import RayActorPool, RayLearnerGroup


class RayWeightSync(WeightSync):
    """Learner rank 0 → every actor over a process group of its own (its own TCPStore, never DeepSpeed's)."""

    def __init__(self, builder: Builder, actors: RayActorPool, learner: RayLearnerGroup) -> None:
        self.config = builder.config.weight_sync
        self.actors, self.learner = actors, learner
        self.probe = probe_pairs(builder)
        self.generation = 0
        self.forced_syncs = 0
        self.rejoin()
        self._broadcast("policy", 0)  # the actors start from the learner's exact weights, not their own
        actors.on_restart = self.restore

    def rejoin(self) -> None:
        """(Re)build the sync group: learner rank 0 hosts it, every actor joins (a fresh store each time)."""
        self.generation += 1
        host, port = _get(self.learner.ranks[0].rendezvous_address.remote())
        world, name, timeout = 1 + len(self.actors.workers), f"wsync-{self.generation}", self.config.timeout_seconds
        refs = [self.learner.ranks[0].join_sync_group.remote(host, port, world, name, timeout)]
        refs += [
            actor.join_sync_group.remote(host, port, index + 1, world, name, timeout, self.learner.spec)
            for index, actor in enumerate(self.actors.workers)
        ]
        _get(refs)

    def restore(self) -> None:
        """After an actor restarted (with the initial weights): a new group, then every actor at the current
        policy (a forced sync, ``misc/forced_syncs``) and π_ref, wherever they moved from the initial ones."""
        self.rejoin()
        if self.actors.versions["policy"]:
            self._broadcast("policy", self.learner.version)
            self.forced_syncs += 1
        if self.actors.versions["reference"]:
            self._push_reference(self.actors.versions["reference"])

    def push(self, weights: Weights, attempt: int = 0) -> dict[str, Any]:
        """The sync (see :class:`WeightSync`); an actor that dies during it is restarted and the sync redone."""
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return self._push(weights)
        except (RayActorError, RayTaskError):
            if attempt >= self.actors.max_restarts or not self.actors.await_restarts():
                raise
            self.restore()  # a new group, the restarted actors brought up to the others' weights
            return self.push(weights, attempt + 1)

    def _push(self, weights: Weights) -> dict[str, Any]:
        start = time.perf_counter()
        if weights == "reference":
            self._push_reference(self.learner.reference_version)
            return {
                "misc/reference_version": self.learner.reference_version,
                "misc/reference_sync_seconds": time.perf_counter() - start,
            }
        stats = self._broadcast("policy", self.learner.version)
        metrics: dict[str, Any] = {
            "misc/sync_seconds": time.perf_counter() - start,
            "misc/sync_gather_seconds": stats["gather_seconds"],
            "misc/sync_broadcast_seconds": stats["broadcast_seconds"],
            "misc/sync_mb": stats["bytes"] / 2**20,
            "misc/weights_version": self.learner.version,
            "misc/forced_syncs": self.forced_syncs,
        }
        learner = self.learner.all("probe", *self.probe)[0]
        actors = _get([actor.probe.remote(*self.probe) for actor in self.actors.workers])
        metrics.update(check_probe(learner, actors, self.config.probe_tolerance, self.learner.version))
        return metrics

    def _push_reference(self, version: int) -> None:
        """π_ref to the actors' reference engines, or only its version where they hold none (BPO)."""
        if self.actors.needs_reference_weights:
            self._broadcast("reference", version)
        else:
            _get([actor.set_reference_version.remote(version) for actor in self.actors.workers])
            self.actors.versions["reference"] = version

    def _broadcast(self, weights: Weights, version: int) -> dict[str, float]:
        bucket_mb = self.config.bucket_mb
        learner_refs = [rank.broadcast_weights.remote(weights, bucket_mb) for rank in self.learner.ranks]
        actor_refs = [actor.receive_weights.remote(weights, version, bucket_mb) for actor in self.actors.workers]
        stats: dict[str, float] = _get(learner_refs)[0]
        _get(actor_refs)
        self.actors.versions[weights] = version
        return stats
