"""Configs of the runners (``runner=local|ray``) and of the Ray cluster (``ray.*``)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from oatlike.schema import Registry, check, check_at_least, check_choice

RUNNERS = Registry("runner")
"""The runners by name: their schema and a factory of the loop's roles."""


@dataclass
class RunnerConfig:
    """Where the components run."""

    name: str = MISSING
    """Runner: local (every component in this process) or ray (actors and learner ranks as Ray actors)."""
    mode: str = "sync"
    """sync: collect, then learn (on-policy); async: actors generate step t+1 while the learner trains on t."""
    max_staleness: int = 1
    """async: most learner versions a batch may lag behind the policy it trains (the runner waits beyond)."""

    def __post_init__(self) -> None:
        check_choice(self.mode, ("sync", "async"), "mode")
        check_at_least(self, 0, "max_staleness")


@RUNNERS.register("local", "oatlike.runners.local:local_roles")
@dataclass
class LocalRunnerConfig(RunnerConfig):
    """Every component in this process: actor, oracle, learner, evaluator (debugging, tests, laptops)."""

    name: str = "local"
    threads: int | None = None
    """torch threads of the run's process (intra-op); null: OMP_NUM_THREADS if set, else one per core up to 2
    (docs/benchmarks.md: more threads than free cores slow the tiny models down). Ray's
    workers take actors.num_cpus / learner.num_cpus instead."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threads is not None:
            check_at_least(self, 1, "threads")


@RUNNERS.register("ray", "oatlike.runners.ray:ray_roles")
@dataclass
class RayRunnerConfig(RunnerConfig):
    """Actors and learner ranks as Ray actors, on a private local Ray (``ray.address=null``), the cluster
    that ``ray start`` made on this machine (``ray.address=auto``), or any cluster (``ray.address=host:port``);
    ``mode=async`` lets the actors generate step t+1 while the learner trains on step t."""

    name: str = "ray"


@dataclass
class RayConfig:
    """The Ray cluster of ``runner=ray``."""

    address: str | None = None
    """Cluster to join: null starts a private local Ray; auto joins the one ``ray start`` made; or host:port."""
    num_cpus: int | None = None
    """Logical CPUs of a private local Ray (null: this machine's CPUs; more oversubscribes them)."""
    include_dashboard: bool = False
    """Start Ray's dashboard with a private local Ray (costs about 1 GB of memory)."""
    namespace: str = "oatlike"
    """Ray namespace of the run's actors."""
    startup_timeout_seconds: float = 300.0
    """Seconds the actors and learner ranks have to be placed and built (models loaded, DeepSpeed set up);
    past it the run stops naming those that did not start (raise it for big models or a busy cluster)."""

    def __post_init__(self) -> None:
        if self.num_cpus is not None:
            check_at_least(self, 1, "num_cpus")
        timeout = self.startup_timeout_seconds
        check(timeout > 0, "startup_timeout_seconds", f"must be > 0, got {timeout}")
