"""DAP losses behind one small interface, chosen by name from the config (``loss=dpo``).

A :class:`DAPLoss` turns the per-sequence log-probs of a batch of pairs (:class:`PairLogps`) into
per-pair losses and logs the implicit rewards. ``needs_reference`` tells the learner whether it must
run the frozen reference model at all (SimPO and SLiC-HF do not).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from oatlike.losses import dap
from oatlike.losses.logps import (
    PackedSequences,
    model_logps_and_features,
    model_sequence_logps,
    pack_sequences,
    sequence_logps,
)


@dataclass
class PairLogps:
    """Per-pair inputs of a DAP loss, all ``[B]``; reference entries are ``None`` for reference-free losses."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor | None
    reference_rejected: torch.Tensor | None
    chosen_lengths: torch.Tensor
    rejected_lengths: torch.Tensor

    def references(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reference_chosen is None or self.reference_rejected is None:
            raise ValueError("this loss needs reference log-probs but the batch has none")
        return self.reference_chosen, self.reference_rejected


class DAPLoss(ABC):
    """A direct-alignment loss: ``per_pair(logps) -> [B]`` plus its implicit rewards for logging."""

    name: str
    needs_reference: bool = True

    def __init__(self, beta: float) -> None:
        self.beta = beta

    @abstractmethod
    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        """``[B]`` loss of each pair (differentiable in the policy log-probs)."""

    def rewards(self, logps: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached implicit rewards of chosen and rejected: ``β·(s_θ − s_ref)``."""
        rc, rr = logps.references()
        return (
            self.beta * (logps.policy_chosen - rc).detach(),
            self.beta * (logps.policy_rejected - rr).detach(),
        )


class DPOLoss(DAPLoss):
    name = "dpo"

    def __init__(self, beta: float, label_smoothing: float = 0.0) -> None:
        super().__init__(beta)
        self.label_smoothing = label_smoothing

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.dpo_loss(logps.policy_chosen, logps.policy_rejected, rc, rr, self.beta, self.label_smoothing)


class RobustDPOLoss(DPOLoss):
    name = "rdpo"

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.robust_dpo_loss(logps.policy_chosen, logps.policy_rejected, rc, rr, self.beta, self.label_smoothing)


class IPOLoss(DAPLoss):
    name = "ipo"

    def __init__(self, beta: float, length_normalize: bool = True) -> None:
        super().__init__(beta)
        self.length_normalize = length_normalize

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.ipo_loss(
            logps.policy_chosen,
            logps.policy_rejected,
            rc,
            rr,
            logps.chosen_lengths,
            logps.rejected_lengths,
            self.beta,
            self.length_normalize,
        )


class HingeLoss(DAPLoss):
    name = "slic"

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.hinge_loss(logps.policy_chosen, logps.policy_rejected, rc, rr, self.beta)


class SLiCHFLoss(DAPLoss):
    name = "slic_hf"
    needs_reference = False

    def __init__(self, beta: float, delta: float = 1.0, sft_weight: float = 0.1) -> None:
        super().__init__(beta)
        self.delta, self.sft_weight = delta, sft_weight

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        return dap.slic_hf_loss(logps.policy_chosen, logps.policy_rejected, self.delta, self.sft_weight)

    def rewards(self, logps: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
        return logps.policy_chosen.detach(), logps.policy_rejected.detach()


class SimPOLoss(DAPLoss):
    name = "simpo"
    needs_reference = False

    def __init__(self, beta: float, gamma_beta_ratio: float = 0.5) -> None:
        super().__init__(beta)
        self.gamma_beta_ratio = gamma_beta_ratio

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        return dap.simpo_loss(
            logps.policy_chosen,
            logps.policy_rejected,
            logps.chosen_lengths,
            logps.rejected_lengths,
            self.beta,
            self.gamma_beta_ratio,
        )

    def rewards(self, logps: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
        """SimPO's reward ``(β/ℓ)·s_θ``."""
        return (
            (self.beta * logps.policy_chosen / logps.chosen_lengths).detach(),
            (self.beta * logps.policy_rejected / logps.rejected_lengths).detach(),
        )


LOSSES: dict[str, type[DAPLoss]] = {
    "dpo": DPOLoss,
    "cdpo": DPOLoss,
    "rdpo": RobustDPOLoss,
    "ipo": IPOLoss,
    "slic": HingeLoss,
    "slic_hf": SLiCHFLoss,
    "simpo": SimPOLoss,
}


def build_loss(name: str, **options: float | bool) -> DAPLoss:
    """The loss registered as ``name`` with its options (``beta`` and the loss's own knobs)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](**options)


__all__ = [
    "LOSSES",
    "DAPLoss",
    "PackedSequences",
    "PairLogps",
    "build_loss",
    "model_logps_and_features",
    "model_sequence_logps",
    "pack_sequences",
    "sequence_logps",
]
