"""Ray itself for ``runner=ray``: starting or joining a cluster, where the workers landed, merging their metrics.

``ray.address=null`` starts a private local Ray (``address="local"``: never another process's cluster) and
the run stops it at the end or on Ctrl-C; ``ray.address=auto`` joins the cluster ``ray start`` made on this
machine; ``host:port`` any cluster. Actors are spread over the nodes (``SPREAD``); ``actors.resources`` /
``learner.resources`` pin them to nodes offering custom resources.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.config import Config
from oatlike.errors import OatlikeError

FORWARDED_ENV = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_HOME",
    "DS_ACCELERATOR",
    "TORCH_EXTENSIONS_DIR",
    "VLLM_CPU_KVCACHE_SPACE",
    "WANDB_MODE",
)
"""Environment the workers need, passed through Ray's runtime environment when set here."""


def ensure_ray(config: Config, cache_dir: Path) -> bool:
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


def placement(actors: list[Any], learners: list[Any]) -> dict[str, Any]:
    """Where every worker runs (node, IP, pid) and the cluster's live nodes (``ray.json``)."""
    import ray

    return {
        "actors": ray.get([actor.info.remote() for actor in actors]),
        "learners": ray.get([learner.info.remote() for learner in learners]),
        "nodes": [node["NodeID"] for node in ray.nodes() if node.get("Alive")],
    }


def merge_actor_metrics(results: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """One step's metrics from the actors' parts: counts add up, times take the slowest, rates average."""
    merged: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results if key in r]
        if key == "oracle/queries":
            continue  # per-actor running totals: the loop counts the run's queries itself
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
