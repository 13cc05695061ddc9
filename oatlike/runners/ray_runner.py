"""The Ray runner: the same loop as ``runner=local``, with actors and learner ranks as Ray actors.

::

    driver (this process)                 Ray actors
    ─────────────────────                 ──────────
    the loop (runners/base.py)            ActorWorker × actors.num     engine + explorer + oracle client
    prompts → split among the actors      LearnerWorker × learner.num  one DeepSpeed world; rank 0 evaluates
    oracle-query count, metrics, files    sync group: learner rank 0 → every actor (its own TCPStore)

The only module that talks to Ray. ``ray.address=null`` starts a private local Ray (``address="local"``:
never another process's cluster) and stops it at the end or on Ctrl-C; ``ray.address=auto`` joins the
cluster ``ray start`` made on this machine; ``host:port`` any cluster. Actors are spread over the nodes
(``SPREAD``); ``actors.resources`` / ``learner.resources`` pin them to nodes offering custom resources.

Faults: an actor whose process dies is restarted by Ray (``actors.max_restarts``); the pairs it was
working on are requested again from the restarted actor, after it rejoins the sync group and receives the
current weights. Queries are counted from the batches that arrive, so a dead actor's lost work is neither
lost nor counted twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.config import Config
from oatlike.errors import OatlikeError
from oatlike.runners.base import Collected, Runner
from oatlike.runners.ray_workers import ActorWorker, LearnerWorker
from oatlike.types import PreferenceBatch, Prompt

log = logging.getLogger(__name__)

# Environment the workers need, passed through Ray's runtime environment when set here.
FORWARDED_ENV = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_HOME",
    "DS_ACCELERATOR",
    "TORCH_EXTENSIONS_DIR",
    "VLLM_CPU_KVCACHE_SPACE",
    "WANDB_MODE",
)


class SyncError(OatlikeError):
    """After a weight sync the actors' policy differs from the learner's."""


def start_ray(config: Config, cache_dir: Path) -> bool:
    """Connect to (or start) Ray; returns whether this run started it (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
    env.update(OATLIKE_CACHE_DIR=str(cache_dir), TOKENIZERS_PARALLELISM="false", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    options: dict[str, Any] = {
        "namespace": config.ray.namespace,
        "runtime_env": {"env_vars": env},
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if config.ray.address is None:
        os.environ.pop("RAY_ADDRESS", None)  # a private Ray: never attach to another run's cluster
        needed = config.actors.num * config.actors.num_cpus + config.learner.num * config.learner.num_cpus
        num_cpus = config.ray.num_cpus or max(os.cpu_count() or 1, int(np.ceil(needed)))
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=config.ray.include_dashboard, **options)
    else:
        try:
            ray.init(address=config.ray.address, **options)
        except ConnectionError as error:
            raise OatlikeError(f"ray.address: cannot reach a Ray cluster at {config.ray.address!r}: {error}") from None
    return True


def merge_actor_metrics(results: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """One step's metrics from the actors' parts: counts add up, times take the slowest, rates average."""
    merged: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results if key in r]
        if key == "oracle/queries":
            continue  # per-actor running totals: the runner counts the run's queries itself
        if key in ("actor/identical_pairs", "actor/tokens_per_second") or (
            key.startswith("oracle/") and key != "oracle/latency_seconds"  # each actor's oracle counters
        ):
            merged[key] = sum(values)
        elif key.endswith("_seconds"):
            merged[key] = max(values)
        elif key == "actor/weights_version":
            merged[key] = min(values)
        else:
            merged[key] = float(np.average(values, weights=sizes[: len(values)]))
    return merged


def merge_learner_metrics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's metrics from every rank: pair counts add up, times take the slowest, the rest average."""
    merged: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results if key in r]
        if key in ("train/pairs", "train/buffer_pairs"):
            merged[key] = sum(values)
        elif key.endswith("_seconds"):
            merged[key] = max(values)
        elif key in ("train/optimizer_steps", "train/lr"):
            merged[key] = values[0]
        else:
            merged[key] = float(np.mean(values))
    return merged


class RayRunner(Runner):
    """Runs the experiment of ``config`` on Ray and writes it to ``run_dir``."""

    def __init__(self, config: Config, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        self.owns_ray = False
        self.actors: list[Any] = []
        self.learners: list[Any] = []
        self.restarts = self.forced_syncs = self.sync_generation = 0
        self._version = self._actor_version = self._reference_version = 0
        try:
            self.owns_ray = start_ray(config, self.builder.cache_dir)
            self._start_workers()
            self.spec = self._all_learners("weight_spec")[0]
            self._build_sync_group()
            self.probe_batch = self._probe_batch()
            self._broadcast(version=0)  # the actors start from the learner's exact weights
            self.placement = self._placement()
            (run_dir / "ray.json").write_text(json.dumps(self.placement, indent=2))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------ start-up

    def _start_workers(self) -> None:
        import ray

        cfg = self.config
        learner_options = {
            "num_cpus": cfg.learner.num_cpus,
            "num_gpus": cfg.learner.num_gpus,
            "resources": dict(cfg.learner.resources),
            "max_restarts": 0,
        }
        learner_class = ray.remote(LearnerWorker).options(**learner_options)
        self.learners = [
            learner_class.remote(cfg, rank, cfg.learner.num, cfg.learner.num_cpus) for rank in range(cfg.learner.num)
        ]
        actor_options = {
            "num_cpus": cfg.actors.num_cpus,
            "num_gpus": cfg.actors.num_gpus,
            "resources": dict(cfg.actors.resources),
            "max_restarts": cfg.actors.max_restarts,
            "max_task_retries": 0,
            "scheduling_strategy": "SPREAD",
        }
        actor_class = ray.remote(ActorWorker).options(**actor_options)
        self.actors = [actor_class.remote(cfg, index, cfg.actors.num_cpus) for index in range(cfg.actors.num)]
        host, port = ray.get(self.learners[0].rendezvous_address.remote())
        self._all_learners("setup", host, port)
        ray.get([actor.info.remote() for actor in self.actors])  # constructed (engines built)

    def _all_learners(self, method: str, *args: Any) -> list[Any]:
        """Call ``method`` on every rank at once (collective under ZeRO-3) and wait for all."""
        import ray

        return ray.get([getattr(learner, method).remote(*args) for learner in self.learners])

    def _build_sync_group(self) -> None:
        """(Re)build the sync group: learner rank 0 hosts it, every actor joins (a fresh store each time)."""
        import ray

        self.sync_generation += 1
        host, port = ray.get(self.learners[0].rendezvous_address.remote())
        world, name = 1 + len(self.actors), f"wsync-{self.sync_generation}"
        timeout = self.config.weight_sync.timeout_seconds
        refs = [self.learners[0].join_sync_group.remote(host, port, world, name, timeout)]
        refs += [
            actor.join_sync_group.remote(host, port, index + 1, world, name, timeout, self.spec)
            for index, actor in enumerate(self.actors)
        ]
        ray.get(refs)

    def _probe_batch(self) -> tuple[list[list[int]], list[list[int]]]:
        """Fixed (prompt, response) pairs: evaluation prompts with their references (or just EOS)."""
        tokenizer = self.builder.tokenizer
        prompts = self.eval_prompts.prompts[: self.config.weight_sync.probe_prompts]
        responses = [
            (tokenizer(p.reference, add_special_tokens=False).input_ids if p.reference else [])
            + [tokenizer.eos_token_id]
            for p in prompts
        ]
        return [list(p.token_ids) for p in prompts], responses

    def _placement(self) -> dict[str, Any]:
        import ray

        return {
            "actors": ray.get([actor.info.remote() for actor in self.actors]),
            "learners": self._all_learners("info"),
            "nodes": [node["NodeID"] for node in ray.nodes() if node.get("Alive")],
        }

    # --------------------------------------------------------------------------------------- the loop's parts

    def start_collect(self, prompts: list[Prompt]) -> list[tuple[int, list[Prompt], Any]]:
        chunks = [list(c) for c in np.array_split(np.array(prompts, dtype=object), len(self.actors))]
        return [(index, chunk, self.actors[index].step.remote(chunk)) for index, chunk in enumerate(chunks) if chunk]

    def finish_collect(self, handle: list[tuple[int, list[Prompt], Any]]) -> Collected:
        import ray
        from ray.exceptions import RayActorError

        parts = []
        for index, chunk, ref in handle:
            try:
                parts.append(ray.get(ref))
            except RayActorError as error:
                parts.append(self._recover(index, chunk, error))
        batch = PreferenceBatch.concat([b for b, _ in parts])
        metrics = merge_actor_metrics([m for _, m in parts], [len(b) for b, _ in parts])
        metrics["misc/actor_restarts"] = self.restarts
        return batch, metrics

    def _recover(self, index: int, chunk: list[Prompt], error: Exception, attempt: int = 1) -> Collected:
        """Wait for Ray to restart actor ``index``, bring it up to date, and request its pairs again."""
        import ray
        from ray.exceptions import RayActorError

        self.restarts += 1
        self.tracker.message(f"actor {index} died ({type(error).__name__}); waiting for Ray to restart it")
        if attempt > self.config.actors.max_restarts:
            raise OatlikeError(f"actor {index} keeps dying (actors.max_restarts={self.config.actors.max_restarts})")
        self._wait_until_restarted(index)
        self._build_sync_group()
        if self.config.sync_every:  # the restarted actor holds the initial weights; bring every actor up to date
            self._broadcast(self._version)
            self.forced_syncs += 1
        if self._reference_version:  # and its reference copy, if π_ref was refreshed since the start
            self._broadcast(self._reference_version, "reference")
        try:
            return ray.get(self.actors[index].step.remote(chunk))
        except RayActorError as again:
            return self._recover(index, chunk, again, attempt + 1)

    def _wait_until_restarted(self, index: int) -> None:
        """Poll actor ``index`` while Ray restarts it (``ActorUnavailableError``); ``ActorDiedError`` is final."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

        deadline = time.monotonic() + self.config.weight_sync.timeout_seconds
        while True:
            try:
                ray.get(self.actors[index].info.remote(), timeout=30)
                return
            except (ActorUnavailableError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise OatlikeError(f"actor {index} did not come back within weight_sync.timeout_seconds") from None
                time.sleep(1.0)
            except ActorDiedError:
                raise OatlikeError(
                    f"actor {index} died and was not restarted (actors.max_restarts={self.config.actors.max_restarts})"
                ) from None

    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        import ray

        size = len(batch) // len(self.learners)
        shards = [batch.select(list(range(r * size, (r + 1) * size))) for r in range(len(self.learners))]
        results = ray.get([learner.learn.remote(shard) for learner, shard in zip(self.learners, shards, strict=True)])
        self._version += 1
        return merge_learner_metrics(results)

    def _broadcast(self, version: int, which: str = "policy") -> dict[str, float]:
        """Send the learner's weights to every actor: the policy, or (``which`` ≠ ``policy``) π_ref."""
        import ray

        bucket_mb, reference = self.config.weight_sync.bucket_mb, which != "policy"
        learner_refs = [learner.broadcast_weights.remote(bucket_mb, which) for learner in self.learners]
        actor_refs = [actor.receive_weights.remote(version, bucket_mb, reference) for actor in self.actors]
        stats = ray.get(learner_refs)[0]
        ray.get(actor_refs)
        if reference:
            self._reference_version = version
        else:
            self._actor_version = version
        return stats

    def refresh_reference(self) -> dict[str, Any]:
        start = time.perf_counter()
        self._broadcast(self._version, "refresh_reference")
        return {"misc/reference_version": self._version, "misc/reference_sync_seconds": time.perf_counter() - start}

    def sync(self) -> dict[str, Any]:
        start = time.perf_counter()
        stats = self._broadcast(self._version)
        metrics = {
            "misc/sync_seconds": time.perf_counter() - start,
            "misc/sync_gather_seconds": stats["gather_seconds"],
            "misc/sync_broadcast_seconds": stats["broadcast_seconds"],
            "misc/sync_mb": stats["bytes"] / 2**20,
            "misc/weights_version": self._version,
        }
        metrics.update(self._probe())
        return metrics

    def _probe(self) -> dict[str, Any]:
        """Compare the learner's and every actor's log-probs on the probe batch."""
        import ray

        prompt_ids, response_ids = self.probe_batch
        if not prompt_ids:
            return {}
        learner = self._all_learners("probe", prompt_ids, response_ids)[0]
        actors = ray.get([actor.probe.remote(prompt_ids, response_ids) for actor in self.actors])
        gap = max(abs(a - b) for logps in actors for a, b in zip(logps, learner, strict=True))
        tolerance = self.config.weight_sync.probe_tolerance
        if gap > tolerance:
            raise SyncError(
                f"after the sync to version {self._version} an actor's log-probs differ from the learner's by "
                f"{gap:.3g} > weight_sync.probe_tolerance={tolerance} (engines computing in lower precision "
                "need a larger tolerance)"
            )
        return {"misc/sync_probe_max_gap": gap}

    def evaluate(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = self._all_learners("evaluate", step)[0]
        assert result is not None
        return result

    def save_checkpoint(self, name: str) -> Path:
        folder = self.run_dir / "checkpoints" / name
        self._all_learners("save", str(folder))
        return folder

    @property
    def learner_version(self) -> int:
        return self._version

    @property
    def actor_version(self) -> int:
        return self._actor_version

    def extra_summary(self) -> dict[str, Any]:
        return {"actor_restarts": self.restarts, "forced_syncs": self.forced_syncs}

    def close(self) -> None:
        """Kill the run's Ray actors; stop Ray if this run started it."""
        import ray

        if not ray.is_initialized():
            return
        for worker in [*self.actors, *self.learners]:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(worker)
        self.actors, self.learners = [], []
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False


def run_ray(config: Config, run_dir: Path) -> dict[str, Any]:
    """Run ``config`` on Ray."""
    return RayRunner(config, run_dir).run()
