"""``runner=ray``: the loop's three roles on Ray actors, on a private local Ray or a cluster.

::

    driver (this process)                 Ray actors (oatlike.runners.ray_workers)
    ─────────────────────                 ─────────────────────────────────────────
    the loop (oatlike.loop)               ActorWorker × actors.num     engine + explorer + oracle client
    RayActorPool: prompts split           LearnerWorker × learner.num  one DeepSpeed world; rank 0 evaluates
    RayLearnerGroup: batch sharded        sync group: learner rank 0 → every actor (its own TCPStore)
    RayWeightSync: versions, the probe

Faults: an actor whose process dies is restarted by Ray (``actors.max_restarts``); the pool waits for it,
has the weight sync bring it back (a new sync group, the current policy and π_ref), and asks it again for
the pairs it was working on. Queries are counted from the batches that arrive, so a dead actor's lost
work is neither lost nor counted twice. Cluster start-up and placement: :mod:`oatlike.runners.ray_cluster`;
workers that are not placed and built within ``ray.startup_timeout_seconds`` stop the run in one line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.builder import Builder
from oatlike.errors import OatlikeError
from oatlike.roles import ActorPool, Collected, LearnerGroup, Roles
from oatlike.runners.ray_cluster import (
    check_cluster,
    ensure_ray,
    merge_actor_metrics,
    merge_learner_metrics,
    placement,
)
from oatlike.runners.ray_cluster import ray_get as _get
from oatlike.runners.ray_sync import RayWeightSync
from oatlike.runners.ray_workers import ActorWorker, LearnerWorker
from oatlike.types import PreferenceBatch, Prompt

NOT_PLACED = "Ray could not place them (other work holds the cluster's resources: see `ray status`)"
"""Why workers may not have started: what the checks of :func:`~oatlike.runners.ray_cluster.check_cluster`
cannot see (resources that other work holds now)."""


@dataclass(frozen=True)
class StartupDeadline:
    """When every worker must be placed and built: ``ray.startup_timeout_seconds`` after the run created
    the first (Ray would wait without end for workers it cannot place)."""

    seconds: float
    at: float
    """``time.monotonic()`` at the deadline."""

    @classmethod
    def after(cls, seconds: float) -> StartupDeadline:
        return cls(seconds, time.monotonic() + seconds)

    def wait(self, refs: list[Any], names: list[str], why: str) -> None:
        """Wait until every worker's call in ``refs`` came back (done or failed), at most until the
        deadline; those still out are named (``names``) in one line with ``why`` they may be."""
        import ray

        _, pending = ray.wait(refs, num_returns=len(refs), timeout=max(0.0, self.at - time.monotonic()))
        if pending:
            late = [name for name, ref in zip(names, refs, strict=True) if ref in pending]
            listed = ", ".join(late) if len(late) <= 4 else f"{', '.join(late[:3])} and {len(late) - 3} more"
            raise OatlikeError(
                f"ray.startup_timeout_seconds: {listed} did not start within {self.seconds:g} s: {why}; "
                "raise ray.startup_timeout_seconds if they are only slow"
            )


def _kill(workers: list[Any]) -> None:
    import ray

    for worker in workers:
        with contextlib.suppress(Exception):  # already dead
            ray.kill(worker)


class RayActorPool(ActorPool):
    """``actors.num`` :class:`ActorWorker` s; each step's pairs are split among them."""

    def __init__(self, builder: Builder, notify: Callable[[str], None]) -> None:
        import ray

        cfg = builder.config
        options: dict[str, Any] = {
            "num_cpus": cfg.actors.num_cpus,
            "num_gpus": cfg.actors.num_gpus,
            "resources": dict(cfg.actors.resources),
            "max_restarts": cfg.actors.max_restarts,
            "max_task_retries": 0,
            "scheduling_strategy": "SPREAD",
        }
        remote = ray.remote(ActorWorker).options(**options)
        self.workers: list[Any] = [remote.remote(cfg, index, cfg.actors.num_cpus) for index in range(cfg.actors.num)]
        self.infos: list[dict[str, Any]] = []
        self.prompts_per_pair = cfg.explore.prompt_pool_size(1)
        self.max_restarts, self.timeout = cfg.actors.max_restarts, cfg.weight_sync.timeout_seconds
        self.notify = notify
        self.versions = {"policy": 0, "reference": 0}
        self.restarts = 0
        self.on_restart: Callable[[], None] = lambda: None
        """Set by the weight sync: bring every actor back to the current weights after one restarted."""

    def wait_until_built(self, deadline: StartupDeadline) -> None:
        """Wait for every actor to be constructed (engines built; they start while the learner does)."""
        refs = [worker.info.remote() for worker in self.workers]
        names = [f"actor {index}" for index in range(len(refs))]
        deadline.wait(refs, names, f"{NOT_PLACED}, or they are still building their engines")
        self.infos = _get(refs)

    @property
    def needs_reference_weights(self) -> bool:
        """Whether the actors hold a reference engine (otherwise a π_ref refresh only changes a version)."""
        return any(info["has_reference_engine"] for info in self.infos)

    def submit(self, prompts: list[Prompt]) -> list[tuple[int, list[Prompt], Any]]:
        """Contiguous chunks whose sizes are whole numbers of pairs (APL keeps one prompt in a pool of N)."""
        pairs = np.array_split(np.arange(len(prompts) // self.prompts_per_pair), len(self.workers))
        bounds = np.cumsum([0, *(len(p) * self.prompts_per_pair for p in pairs)])
        chunks = [prompts[start:end] for start, end in itertools.pairwise(bounds)]
        return [(index, chunk, self.workers[index].step.remote(chunk)) for index, chunk in enumerate(chunks) if chunk]

    def collect(self, ticket: list[tuple[int, list[Prompt], Any]]) -> Collected:
        from ray.exceptions import RayActorError

        parts = []
        for index, chunk, ref in ticket:
            try:
                parts.append(_get(ref))
            except RayActorError as error:
                parts.append(self._recover(index, chunk, error))
        batch = PreferenceBatch.concat([b for b, _ in parts])
        metrics = merge_actor_metrics([m for _, m in parts], [len(b) for b, _ in parts])
        metrics["misc/actor_restarts"] = self.restarts
        return batch, metrics

    def _recover(self, index: int, chunk: list[Prompt], error: Exception, attempt: int = 1) -> Collected:
        """Wait for Ray to restart actor ``index``, bring it up to date, and request its pairs again."""
        from ray.exceptions import RayActorError

        self.restarts += 1
        self.notify(f"actor {index} died ({type(error).__name__}); waiting for Ray to restart it")
        if attempt > self.max_restarts:
            raise OatlikeError(f"actor {index} keeps dying (actors.max_restarts={self.max_restarts})")
        self._wait_until_restarted(index)
        self.on_restart()
        try:
            return _get(self.workers[index].step.remote(chunk))
        except RayActorError as again:
            return self._recover(index, chunk, again, attempt + 1)

    def await_restarts(self) -> list[int]:
        """The actors that died (a failed broadcast or probe reached one), each waited for while Ray restarts it."""
        from ray.exceptions import GetTimeoutError, RayActorError

        died = []
        for index, worker in enumerate(self.workers):
            try:
                _get(worker.info.remote(), timeout=30)
            except (RayActorError, GetTimeoutError) as error:
                self.restarts += 1
                self.notify(f"actor {index} died ({type(error).__name__}); waiting for Ray to restart it")
                self._wait_until_restarted(index)
                died.append(index)
        return died

    def _wait_until_restarted(self, index: int) -> None:
        """Poll actor ``index`` while Ray restarts it (``ActorUnavailableError``); ``ActorDiedError`` is final."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.infos[index] = _get(self.workers[index].info.remote(), timeout=30)
                return
            except (ActorUnavailableError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise OatlikeError(f"actor {index} did not come back within weight_sync.timeout_seconds") from None
                time.sleep(1.0)
            except ActorDiedError:
                raise OatlikeError(
                    f"actor {index} died and was not restarted (actors.max_restarts={self.max_restarts})"
                ) from None

    @property
    def policy_version(self) -> int:
        return self.versions["policy"]

    @property
    def reference_version(self) -> int:
        return self.versions["reference"]

    def state_dict(self) -> dict[str, Any]:
        return {"actors": _get([worker.state_dict.remote() for worker in self.workers])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _get([w.load_state_dict.remote(s) for w, s in zip(self.workers, state["actors"], strict=True)])

    def close(self) -> None:
        _kill(self.workers)
        self.workers = []


class RayLearnerGroup(LearnerGroup):
    """``learner.num`` :class:`LearnerWorker` ranks forming one DeepSpeed world; rank 0 evaluates. Every
    rank is placed and its learner built by ``deadline``, or a one-line error names the ranks that were not
    (and every rank is killed)."""

    def __init__(self, builder: Builder, deadline: StartupDeadline) -> None:
        import ray

        cfg = builder.config
        options: dict[str, Any] = {
            "num_cpus": cfg.learner.num_cpus,
            "num_gpus": cfg.learner.num_gpus,
            "resources": dict(cfg.learner.resources),
            "max_restarts": 0,
        }
        remote = ray.remote(LearnerWorker).options(**options)
        self.ranks: list[Any] = [
            remote.remote(cfg, rank, cfg.learner.num, cfg.learner.num_cpus) for rank in range(cfg.learner.num)
        ]
        names = [f"learner rank {rank}" for rank in range(cfg.learner.num)]
        try:
            deadline.wait([rank.info.remote() for rank in self.ranks], names, NOT_PLACED)
            host, port = _get(self.ranks[0].rendezvous_address.remote())
            setup = [rank.setup.remote(host, port) for rank in self.ranks]  # all at once: one DeepSpeed world
            deadline.wait(setup, names, "they are still building their learners (model, DeepSpeed)")
            self.spec = self._wait(setup)[0]
        except BaseException:
            self.close()
            raise
        self._version = self._reference_version = 0

    def all(self, method: str, *args: Any) -> list[Any]:
        """Call ``method`` on every rank at once (collective under ZeRO-3) and wait for all; a rank that died
        is a one-line error (a DeepSpeed world cannot lose a rank)."""
        return self._wait([getattr(rank, method).remote(*args) for rank in self.ranks])

    def _wait(self, refs: list[Any]) -> list[Any]:
        from ray.exceptions import RayActorError

        results = []
        for rank, ref in enumerate(refs):
            try:
                results.append(_get(ref))
            except RayActorError as error:
                raise OatlikeError(
                    f"learner rank {rank} died ({type(error).__name__}); a DeepSpeed world cannot go on without it"
                ) from None
        return results

    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        if len(batch) % len(self.ranks):
            raise ValueError(f"{len(batch)} pairs cannot be shared equally by {len(self.ranks)} learner ranks")
        size = len(batch) // len(self.ranks)
        shards = [batch.select(list(range(r * size, (r + 1) * size))) for r in range(len(self.ranks))]
        results = self._wait([rank.learn.remote(shard) for rank, shard in zip(self.ranks, shards, strict=True)])
        self._version += 1
        return merge_learner_metrics(results)

    @property
    def version(self) -> int:
        return self._version

    @property
    def reference_version(self) -> int:
        return self._reference_version

    def refresh_reference(self) -> None:
        self.all("refresh_reference")
        self._reference_version = self._version

    def evaluate(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = self.all("evaluate")[0]
        assert result is not None
        return result

    def save(self, folder: str) -> None:
        self.all("save", folder)

    def state_dict(self) -> dict[str, Any]:
        ranks = self.all("state_dict")
        for rank in ranks[1:]:  # every rank holds the same full weights (ZeRO-3 gathers them): keep one copy
            rank["module"] = None
        return {"ranks": ranks, "version": self._version, "reference_version": self._reference_version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        module = state["ranks"][0]["module"]
        ranks = [{**rank, "module": module if rank["module"] is None else rank["module"]} for rank in state["ranks"]]
        _get([rank.load_state_dict.remote(s) for rank, s in zip(self.ranks, ranks, strict=True)])
        self._version, self._reference_version = state["version"], state["reference_version"]

    def close(self) -> None:
        _kill(self.ranks)
        self.ranks = []


def ray_roles(builder: Builder, run_dir: Path, notify: Callable[[str], None] = print) -> Roles:
    """The roles of ``runner=ray``: Ray started (or joined), learner ranks and actors placed and synced;
    where everything runs is written to ``run_dir/ray.json``."""
    config = builder.config
    owns_ray = ensure_ray(config, builder.cache_dir)
    actors: RayActorPool | None = None
    learner: RayLearnerGroup | None = None
    try:
        check_cluster(config, builder.policy_path, owns_ray)  # what cannot fit: one line, before any worker
        deadline = StartupDeadline.after(config.ray.startup_timeout_seconds)
        actors = RayActorPool(builder, notify)  # the actors' processes start while the learner ranks are built
        learner = RayLearnerGroup(builder, deadline)
        actors.wait_until_built(deadline)
        sync = RayWeightSync(builder, actors, learner)
        (run_dir / "ray.json").write_text(json.dumps(placement(actors.workers, learner.ranks), indent=2))
        roles = RayRoles(actors, learner, sync, owns_ray)
    except BaseException:
        for role in (actors, learner):
            if role is not None:
                role.close()
        if owns_ray:
            import ray

            ray.shutdown()
        raise
    return roles


class RayRoles(Roles):
    """The Ray roles; closing them also stops the Ray this run started."""

    def __init__(self, actors: RayActorPool, learner: RayLearnerGroup, sync: RayWeightSync, owns_ray: bool) -> None:
        super().__init__(actors, learner, sync)
        self.owns_ray = owns_ray
        self.ray_actors, self.ray_sync = actors, sync

    def summary(self) -> dict[str, Any]:
        return {"actor_restarts": self.ray_actors.restarts, "forced_syncs": self.ray_sync.forced_syncs}

    def close(self) -> None:
        import ray

        super().close()
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
            self.owns_ray = False
