"""Ray itself for ``runner=ray``: starting or joining a cluster, checking that the run fits in it, where the
workers landed, merging their metrics.

``ray.address=null`` starts a private local Ray (``address="local"``: never another process's cluster) and
the run stops it at the end or on Ctrl-C; ``ray.address=auto`` joins the cluster ``ray start`` made on this
machine; ``host:port`` any cluster. Actors are spread over the nodes (``SPREAD``); ``actors.resources`` /
``learner.resources`` pin them to nodes offering custom resources.

Ray waits without end for what cannot happen (an address where nothing answers, workers asking for more
than the cluster has), so the run checks first and stops with one line: a TCP connection to the cluster's
address before ``ray.init`` (:func:`reachable_address`), then, before any worker starts, the workers' CPU,
GPU and custom resource requests against the cluster's nodes (:func:`check_resources`) and, where every
node runs on this machine, an estimate of their memory against what it has available (:func:`check_memory`).
Workers that still do not start (resources held by other work, slow builds) are bounded by
``ray.startup_timeout_seconds`` (:mod:`oatlike.runners.ray`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.config import Config
from oatlike.errors import ConfigError, OatlikeError

log = logging.getLogger(__name__)

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

CONNECT_TIMEOUT_SECONDS = 5.0
"""How long the TCP connection to a cluster's address may take before the run says nothing answers there."""

RUNTIME_BYTES = 500_000_000
"""Memory of one worker process besides its copy of the policy: Python, torch, transformers, DeepSpeed and
Ray's core worker (a tiny-model actor or learner rank measured about 0.55 GB resident, 0.35 GB of it its own)."""

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
"""Weight files of a model folder, in order of preference (a folder may hold the same weights twice)."""

START_A_CLUSTER = (
    "start a cluster with `ray start --head` (then ray.address=auto on that machine, or the address it prints), "
    "or set ray.address=null for a private local Ray"
)


def ray_get(refs: Any, timeout: float | None = None) -> Any:
    """``ray.get`` (Ray imported only when a Ray runner runs)."""
    import ray

    return ray.get(refs, timeout=timeout)


WORKER_NICENESS_ENV = "RAY_worker_niceness"
"""Raylet's niceness of the worker processes it starts (Ray's default: 15)."""


def ensure_ray(config: Config, cache_dir: Path) -> bool:
    """Connect to (or start) Ray; returns whether this run started it (and so must stop it). A cluster's
    address is tried first (:func:`reachable_address`): ``ray.init`` would wait for it without end."""
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
        # Ray starts its workers at nice 15 (raylet's worker_niceness): on a busy machine the run's own actors
        # and learners would then wait behind every other process (start-ups of minutes, deadlines missed).
        # They are the run's work: at the driver's priority (a user's own RAY_worker_niceness wins).
        os.environ.setdefault(WORKER_NICENESS_ENV, "0")
        # num_cpus=None: Ray counts this machine's CPUs (cgroup limits included); more only when asked
        context = ray.init(
            address="local", num_cpus=config.ray.num_cpus, include_dashboard=config.ray.include_dashboard, **options
        )
    else:
        reachable_address(config.ray.address)
        try:
            context = ray.init(address=config.ray.address, **options)
        except ConnectionError as error:
            raise OatlikeError(f"ray.address: cannot reach a Ray cluster at {config.ray.address!r}: {error}") from None
    log_worker_logs(getattr(context, "address_info", {}).get("session_dir"), config.ray.address is not None)
    return True


def log_worker_logs(session_dir: str | None, cluster: bool) -> None:
    """Say in the run's log where the Ray workers' logs are: their output is not sent to the driver
    (``log_to_driver=False``), so a worker's traceback is in Ray's session folder (on a cluster, in the
    folder of that name on the worker's node)."""
    if session_dir is None:
        return
    where = " on each node of the cluster" if cluster else ""
    log.info("Ray workers' logs: %s%s", Path(session_dir) / "logs", where)


def reachable_address(address: str) -> str:
    """The ``host:port`` that ``ray.init(address=address)`` connects to, once a TCP connection to it
    succeeded within :data:`CONNECT_TIMEOUT_SECONDS`; ``auto`` is the cluster ``ray start`` recorded on
    this machine (else a running one Ray finds there). Otherwise a one-line :class:`ConfigError`."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    if address.startswith("ray://"):  # Ray Client: its server's address, as given
        target = address.removeprefix("ray://")
    else:
        try:
            target = canonicalize_bootstrap_address_or_die(address)  # 127.0.0.1 becomes this node's IP, as in Ray
        except ConnectionError:
            raise ConfigError(
                "ray.address",
                f"{address} found no running Ray cluster on this machine (none recorded by `ray start`, "
                f"no Ray processes); {START_A_CLUSTER}",
            ) from None
        except ValueError:  # not host:port: said below
            target = address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            "ray.address",
            f"{address!r} is not host:port; give the address `ray start --head` printed, auto, "
            "or null for a private local Ray",
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as error:
        tried = target if target == address else f"{target} (where {address} leads)"
        reason = error.strerror or str(error) or type(error).__name__
        raise ConfigError(
            "ray.address",
            f"no Ray cluster answers at {tried}: a TCP connection failed ({reason}); {START_A_CLUSTER}",
        ) from None
    return target


@dataclass(frozen=True)
class Workers:
    """One kind of worker the run places: how many, and what each asks Ray for (``CPU``, ``GPU``, custom)."""

    section: str
    """The config section that sets them: ``actors`` or ``learner``."""
    noun: str
    num: int
    request: dict[str, float]

    def key(self, resource: str) -> str:
        """The config key of one request: ``actors.num_cpus``, ``learner.num_gpus``, ``actors.resources.node_b``."""
        named = {"CPU": "num_cpus", "GPU": "num_gpus"}
        return f"{self.section}.{named[resource]}" if resource in named else f"{self.section}.resources.{resource}"

    def count(self, num: int | None = None) -> str:
        """``64 actors``, ``1 learner rank``."""
        num = self.num if num is None else num
        return f"{num} {self.noun}{'' if num == 1 else 's'}"


def workers_of(config: Config) -> list[Workers]:
    """The actors and the learner ranks of ``config`` and their Ray resource requests."""
    actors, learner = config.actors, config.learner
    return [
        Workers("actors", "actor", actors.num, {"CPU": actors.num_cpus, "GPU": actors.num_gpus, **actors.resources}),
        Workers(
            "learner",
            "learner rank",
            learner.num,
            {"CPU": learner.num_cpus, "GPU": learner.num_gpus, **learner.resources},
        ),
    ]


@dataclass(frozen=True)
class Cluster:
    """The Ray the run is on, as the checks see it."""

    name: str
    """How messages name it: ``the private local Ray``, ``the Ray cluster at host:port``."""
    nodes: list[dict[str, float]]
    """Each live node's total resources (what Ray can place there, whatever runs there now)."""
    private: bool = False
    """A private local Ray this run started, whose CPUs ``ray.num_cpus`` sets (``num_cpus``)."""
    num_cpus: int | None = None


def _amount(value: float, resource: str) -> str:
    """``65 CPUs``, ``1 GPU``, ``2 node_b``."""
    return f"{value:g} {resource}{'s' if resource in ('CPU', 'GPU') and value != 1 else ''}"


def check_resources(workers: list[Workers], cluster: Cluster) -> None:
    """Refuse, in one line naming the keys and the numbers, workers that ``cluster`` cannot hold: in all
    (the sum of the fractional requests against the nodes' total), or of one kind on its own (how many of
    them fit on each node, as Ray places whole workers). Bin-packing both kinds together is left to Ray
    (bounded by ``ray.startup_timeout_seconds``)."""
    resources = sorted({r for w in workers for r, amount in w.request.items() if amount > 0})
    for resource in resources:
        asking = [w for w in workers if w.request.get(resource, 0) > 0]
        need = sum(w.num * w.request[resource] for w in asking)
        have = sum(node.get(resource, 0.0) for node in cluster.nodes)
        if need > have + 1e-9:
            lead = max(asking, key=lambda w: w.num * w.request[resource])
            terms = " and ".join(f"{w.count()} ({w.key(resource)}={w.request[resource]:g} each)" for w in asking)
            verb = "needs" if len(asking) == 1 and asking[0].num == 1 else "need"
            raise ConfigError(
                f"{lead.section}.num",
                f"{terms} {verb} {_amount(need, resource)}, but {cluster.name} has {_amount(have, resource)}"
                f"{_origin(resource, cluster)}; {_fix(lead, resource, need, cluster)}",
            )
    for kind in workers:
        asked = {r: amount for r, amount in kind.request.items() if amount > 0}
        if not asked:
            continue
        fits = sum(min(math.floor(node.get(r, 0.0) / a + 1e-9) for r, a in asked.items()) for node in cluster.nodes)
        if fits < kind.num:
            wanted = " and ".join(_amount(amount, r) for r, amount in asked.items())
            sizes = "; ".join(" and ".join(_amount(node.get(r, 0.0), r) for r in asked) for node in cluster.nodes)
            keys = ", ".join(kind.key(r) for r in asked)
            raise ConfigError(
                f"{kind.section}.num",
                f"{kind.count()} need {wanted} each, but the nodes of {cluster.name} ({sizes}) hold only "
                f"{kind.count(fits)}; lower {kind.section}.num or what each asks for ({keys}), or add nodes",
            )


def _origin(resource: str, cluster: Cluster) -> str:
    """Where a private local Ray's CPUs come from."""
    if resource != "CPU" or not cluster.private:
        return ""
    return f" (ray.num_cpus={cluster.num_cpus})" if cluster.num_cpus else " (this machine's, ray.num_cpus=null)"


def _fix(lead: Workers, resource: str, need: float, cluster: Cluster) -> str:
    """How to make ``resource`` suffice, for the kind of worker that asks for most of it."""
    if resource == "CPU":
        fewer = f"lower {lead.section}.num, reserve a fraction of a CPU each ({lead.key('CPU')}=0.5)"
        if cluster.private:
            more = "raise ray.num_cpus" if cluster.num_cpus else "set ray.num_cpus"
            return f"{fewer}, or {more} to {math.ceil(need)} to oversubscribe this machine"
        return f"{fewer}, or add nodes to the cluster"
    if resource == "GPU":
        return (
            f"lower {lead.section}.num or {lead.key('GPU')} (fractions share a GPU; 0 runs on the CPU), "
            "or use a cluster with more GPUs (ray.address)"
        )
    offer = "a private local Ray offers no custom resources: join a cluster" if cluster.private else "add nodes"
    return (
        f"{offer} whose nodes offer {resource} (`ray start --resources='{{\"{resource}\": N}}'`), "
        f"or drop it from {lead.section}.resources"
    )


def _size(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.1f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.0f} MB"


def model_bytes(policy: str) -> int:
    """Bytes of the policy's weight files: a local folder, or a hub model in the local Hugging Face cache
    (0 when it is in neither: then only the runtime counts)."""
    folder = Path(policy).expanduser()
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(policy, local_files_only=True))
        except (OSError, ValueError):  # not in the cache, or not a hub name
            return 0
    for pattern in WEIGHT_PATTERNS:
        files = list(folder.glob(pattern))
        if files:
            return sum(file.stat().st_size for file in files)
    return 0


def check_memory(workers: list[Workers], model: int, available: int) -> None:
    """Refuse, in one line, workers that clearly do not fit in ``available`` bytes of memory: each process
    holds at least its copy of the policy (``model`` bytes, as stored) plus :data:`RUNTIME_BYTES` (a lower
    bound: learner ranks also hold π_ref, gradients and optimizer states; actors may hold π_ref or an
    oracle model)."""
    need = sum(w.num for w in workers) * (model + RUNTIME_BYTES)
    if need > available:
        lead = max(workers, key=lambda w: w.num)
        raise ConfigError(
            f"{lead.section}.num",
            f"{' and '.join(w.count() for w in workers)} need about {_size(need)} of memory (each its copy "
            f"of the {_size(model)} policy plus ~{_size(RUNTIME_BYTES)} of Python, torch and Ray), but this "
            f"machine has {_size(available)} available; lower {lead.section}.num, or spread the run over "
            "a cluster's nodes (ray.address)",
        )


def check_cluster(config: Config, policy: str, owns_ray: bool) -> None:
    """Refuse, before any worker starts, a run that the Ray this process is on cannot hold: the workers'
    resource requests against its nodes (:func:`check_resources`), and, where every node runs on this
    machine, their memory against what it has available (:func:`check_memory`; ``policy``: the policy's
    folder or hub name)."""
    import psutil
    import ray

    alive = [node for node in ray.nodes() if node.get("Alive")]
    address = config.ray.address
    if owns_ray and address is None:
        name = "the private local Ray"
    elif owns_ray:
        name = f"the Ray cluster at {address}"
    else:
        name = "the Ray this process is connected to"
    private = owns_ray and address is None
    workers = workers_of(config)
    check_resources(workers, Cluster(name, [node["Resources"] for node in alive], private, config.ray.num_cpus))
    here = ray.util.get_node_ip_address()
    if all(node["NodeManagerAddress"] == here for node in alive):
        check_memory(workers, model_bytes(policy), psutil.virtual_memory().available)


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
        if key in ("actor/identical_pairs", "actor/tokens_per_second", "regret/step") or (
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
