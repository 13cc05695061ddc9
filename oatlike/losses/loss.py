"""DAP losses behind one small interface, chosen by name from the config (``loss=dpo``).

A :class:`DAPLoss` turns the per-sequence log-probs of a batch of pairs (:class:`PairLogps`) into
per-pair losses and logs the implicit rewards. ``needs_reference`` tells the learner whether it must
run the frozen reference model at all (SimPO and SLiC-HF do not). Each loss takes its own config
(:mod:`oatlike.losses.config`); the math is in :mod:`oatlike.losses.dap` (docs/algorithms.md §1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from oatlike.losses import dap
from oatlike.losses.config import (
    LOSSES,
    DPOLossConfig,
    IPOLossConfig,
    LossConfig,
    SimPOLossConfig,
    SLiCHFLossConfig,
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

    def __init__(self, config: LossConfig) -> None:
        self.name = config.name
        self.beta = config.beta
        self.needs_reference = config.needs_reference

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
    def __init__(self, config: DPOLossConfig) -> None:
        super().__init__(config)
        self.label_smoothing = config.label_smoothing

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.dpo_loss(logps.policy_chosen, logps.policy_rejected, rc, rr, self.beta, self.label_smoothing)


class RobustDPOLoss(DPOLoss):
    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.robust_dpo_loss(logps.policy_chosen, logps.policy_rejected, rc, rr, self.beta, self.label_smoothing)


class IPOLoss(DAPLoss):
    def __init__(self, config: IPOLossConfig) -> None:
        super().__init__(config)
        self.length_normalize = config.length_normalize

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
    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        rc, rr = logps.references()
        return dap.hinge_loss(logps.policy_chosen, logps.policy_rejected, rc, rr, self.beta)


class SLiCHFLoss(DAPLoss):
    def __init__(self, config: SLiCHFLossConfig) -> None:
        super().__init__(config)
        self.delta, self.sft_weight = config.delta, config.sft_weight

    def per_pair(self, logps: PairLogps) -> torch.Tensor:
        return dap.slic_hf_loss(logps.policy_chosen, logps.policy_rejected, self.delta, self.sft_weight)

    def rewards(self, logps: PairLogps) -> tuple[torch.Tensor, torch.Tensor]:
        return logps.policy_chosen.detach(), logps.policy_rejected.detach()


class SimPOLoss(DAPLoss):
    def __init__(self, config: SimPOLossConfig) -> None:
        super().__init__(config)
        self.gamma_beta_ratio = config.gamma_beta_ratio

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


def build_loss(config: LossConfig) -> DAPLoss:
    """The loss of ``config`` (its class found by ``config.name``)."""
    loss: DAPLoss = LOSSES.build(config)
    return loss
