"""Config of the weight sync from the learner to the actors (``weight_sync.*``)."""

from __future__ import annotations

from dataclasses import dataclass

from oatlike.schema import check, check_at_least


@dataclass
class WeightSyncConfig:
    """Versioned weight sync from learner rank 0 to the actors over a dedicated process group."""

    bucket_mb: int = 256
    """Tensors are flattened into buckets of at most this many MiB per broadcast."""
    timeout_seconds: int = 300
    """Rendezvous and broadcast timeout of the sync group."""
    probe_prompts: int = 8
    """Evaluation prompts whose reference answers probe learner and actor log-probs after each sync (0: off)."""
    probe_tolerance: float = 1e-3
    """Largest allowed |learner − actor| summed log-prob on the probe; more is an error (raise it for bf16)."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "bucket_mb", "timeout_seconds")
        check_at_least(self, 0, "probe_prompts")
        check(self.probe_tolerance > 0, "probe_tolerance", f"must be > 0, got {self.probe_tolerance}")
