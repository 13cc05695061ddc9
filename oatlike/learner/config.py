"""Config of the learner: optimisation through DeepSpeed (``learner.*``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from oatlike.schema import check, check_at_least, check_choice


@dataclass
class LearnerConfig:
    """Optimisation of the policy through DeepSpeed."""

    lr: float = 1e-4
    """Peak learning rate (AdamW)."""
    lr_scheduler: str = "constant"
    """Schedule after warm-up: constant, linear or cosine (decay over the run's optimizer steps)."""
    warmup_steps: int = 0
    """Optimizer steps of linear warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: off)."""
    micro_batch_size: int = 16
    """Pairs per forward/backward pass."""
    grad_accum_steps: int = 2
    """Micro-batches accumulated per optimizer step (train batch = micro_batch_size × grad_accum_steps)."""
    epochs: int = 1
    """Passes over the buffer after each new batch of pairs."""
    buffer_size: int | None = None
    """Most recent pairs kept for training (``null``: one step's pairs, i.e. purely on-policy)."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage (0-3)."""
    offload: bool = False
    """ZeRO-Offload of optimizer states to CPU (stage >= 1; uses DeepSpeed's CPU Adam)."""
    bf16: bool = False
    """Train in bfloat16 mixed precision."""
    cpu_shm_allreduce: bool = False
    """Build DeepSpeed's shared-memory all-reduce op on CPU (a ~35 s one-time compile; helps only > 1 rank)."""
    checkpoint_every: int = 0
    """Save a full-state checkpoint (everything to continue the run exactly, ``resume=``) every N steps; 0: only
    at the end and when the run is stopped (SIGTERM, Ctrl-C, a failed oracle)."""
    keep_checkpoints: int = 2
    """Full-state checkpoints kept (the newest; 0: all)."""
    num: int = 1
    """Learner ranks forming one DeepSpeed world (``runner=ray``); each trains on its share of every batch."""
    num_cpus: float = 1.0
    """CPUs reserved for each learner rank under ``runner=ray``."""
    num_gpus: float = 0.0
    """GPUs reserved for each learner rank under ``runner=ray`` (NCCL when > 0, gloo otherwise)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each learner rank needs (e.g. ``{node_a: 1}``)."""

    @property
    def train_batch_size(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps

    def __post_init__(self) -> None:
        check_at_least(self, 0, "lr")
        check_choice(self.lr_scheduler, ("constant", "linear", "cosine"), "lr_scheduler")
        check_at_least(self, 0, "warmup_steps", "max_grad_norm")
        check_at_least(self, 1, "micro_batch_size", "grad_accum_steps", "epochs")
        check(self.zero_stage in (0, 1, 2, 3), "zero_stage", f"must be 0, 1, 2 or 3, got {self.zero_stage}")
        check(not self.offload or self.zero_stage >= 1, "offload", "needs learner.zero_stage >= 1")
        check_at_least(self, 0, "checkpoint_every", "keep_checkpoints")
        for key in ("lr", "weight_decay", "max_grad_norm"):
            value = getattr(self, key)
            check(math.isfinite(value), key, f"must be a finite number, got {value}")
        check_at_least(self, 1, "num")
        check(self.num_cpus >= 0 and self.num_gpus >= 0, "num_cpus", "CPU and GPU reservations must be >= 0")
