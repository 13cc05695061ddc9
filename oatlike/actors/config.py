"""Configs of the actors: how candidates are sampled (``actor.*``) and the pool of them (``actors.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oatlike.schema import check, check_at_least


@dataclass
class ActorsConfig:
    """The pool of actors under ``runner=ray`` (the local runner has one actor in its own process)."""

    num: int = 1
    """Actors, each a Ray actor with its own engine and oracle client; the step's prompts are split among them."""
    num_cpus: float = 1.0
    """CPUs reserved for each actor (fractions allowed)."""
    num_gpus: float = 0.0
    """GPUs reserved for each actor (fractions allowed; vLLM with tensor parallelism needs whole GPUs)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each actor needs (e.g. ``{node_b: 1}`` to pin actors to nodes that offer it)."""
    max_restarts: int = 3
    """Times Ray restarts an actor whose process died; its pairs are re-requested from the restarted actor."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "num")
        check(self.num_cpus >= 0 and self.num_gpus >= 0, "num_cpus", "CPU and GPU reservations must be >= 0")
        check_at_least(self, 0, "max_restarts")


@dataclass
class ActorConfig:
    """Sampling of candidate responses."""

    prompts_per_step: int = 32
    """Prompts M sampled per step; each yields one labelled pair."""
    num_samples: int = 2
    """Candidates K generated per prompt (K >= 2)."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    top_k: int = 0
    """Top-k sampling (0: off)."""
    max_new_tokens: int = 32
    """Most tokens generated per response."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "prompts_per_step")
        check(self.num_samples >= 2, "num_samples", f"must be >= 2 to form a pair, got {self.num_samples}")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        check_at_least(self, 0, "top_k")
        check_at_least(self, 1, "max_new_tokens")
