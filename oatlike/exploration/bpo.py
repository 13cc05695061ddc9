"""BPO — Xu et al. 2024, "BPO: Staying Close to the Behavior LLM Creates Better Online LLM Alignment"
(EMNLP 2024, arXiv 2406.12168; code ``xu1998hz/BPO``; ALGORITHMS.md §5).

The trust region of online DAP is centred on the behaviour model π_β that collected the pairs, not on the
SFT model: any DAP loss with ``π_ref := π_β``::

    every T/F steps (an annotation phase; T/F = ``sync_every``, the code's ``sampling_update_step``):
        π_β ← current model        (the sampler and the reference: one refresh, same weights)
    each step: pairs ← 2 samples from π_β;  L = L_DAP(π_θ; π_ref = π_β)

``sync_every=1`` is on-policy (the code's ``run.sh``), ``sync_every=0`` never refreshes (F = 1, offline
DAP against the SFT model). Reference log-probs are cached with each pair when it enters the buffer, so
every pair keeps the reference of the π_β that sampled it. For stability the policy is an ensemble of
``ensemble_size`` LoRA adapters on one frozen base, each stepped separately with its own optimizer on the
same batch and behaviour log-probs (:class:`~oatlike.learner.ensemble.LoraEnsembleLearner`); the model
that samples, serves as reference and is evaluated is their uniform merge, by one of two rules
(:func:`merge_lora_delta`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from oatlike.config import BPOExploreConfig, ExploreConfig
from oatlike.exploration.base import Explorer, Selection, random_pairs
from oatlike.models.loading import base_model_names, split_lora_state_dict
from oatlike.types import Rollout

MERGE_RULES = ("linear", "delta_mean")


def merge_lora_delta(
    factors: list[tuple[torch.Tensor, torch.Tensor]], scalings: list[float], rule: str
) -> torch.Tensor:
    """``ΔW`` of K LoRA adapters ``(A_k [r, in], B_k [out, r])`` merged with weights 1/K.

    ``linear`` is PEFT's ``add_weighted_adapter(combination_type="linear")``, which merges *factors*:
    ``A_m = Σ_k √(s_k/K)·A_k``, ``B_m = Σ_k √(s_k/K)·B_k``, ``ΔW = B_m·A_m`` (scaling 1), cross terms
    ``B_k·A_j`` included — what BPO's code runs. ``delta_mean`` averages the deltas exactly:
    ``ΔW = (1/K)·Σ_k s_k·B_k·A_k``.
    """
    count = len(factors)
    if rule == "delta_mean":
        return (
            sum((s * b.float() @ a.float() for (a, b), s in zip(factors, scalings, strict=True)), torch.tensor(0.0))
            / count
        )
    if rule == "linear":
        weights = [math.sqrt(s / count) for s in scalings]
        a_merged = sum(w * a.float() for (a, _), w in zip(factors, weights, strict=True))
        b_merged = sum(w * b.float() for (_, b), w in zip(factors, weights, strict=True))
        return b_merged @ a_merged  # type: ignore[operator]
    raise ValueError(f"unknown LoRA merge rule {rule!r}; choose one of {MERGE_RULES}")


def merge_lora_ensemble(
    state_dict: dict[str, torch.Tensor], scalings: dict[str, float], rule: str
) -> dict[str, torch.Tensor]:
    """The plain model's weights with the adapters named in ``scalings`` merged into each adapted layer."""
    merged, factors = split_lora_state_dict(state_dict)
    adapters = list(scalings)
    for module, by_adapter in factors.items():
        base = merged.pop(f"{module}.base_layer.weight")
        pairs = [(by_adapter[name]["A"], by_adapter[name]["B"]) for name in adapters]
        delta = merge_lora_delta(pairs, [scalings[name] for name in adapters], rule)
        merged[f"{module}.weight"] = (base.float() + delta).to(base.dtype)
    return base_model_names(merged)


class BPOExplorer(Explorer):
    """Two samples from π_β, a random pair; π_ref ← π_β at every sync of the sampler."""

    name = "bpo"

    def __init__(self, ensemble_size: int = 1, merge: str = "linear") -> None:
        super().__init__()
        self.ensemble_size = ensemble_size
        self.merge = merge

    @classmethod
    def from_config(cls, config: ExploreConfig, beta: float, seed: int) -> Explorer:
        assert isinstance(config, BPOExploreConfig)
        return cls(config.ensemble_size, config.merge)

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        return Selection(random_pairs(len(rollout), len(rollout.candidates[0]), rng))

    def reference_refresh_due(self, step: int, synced: bool) -> bool:
        return synced
