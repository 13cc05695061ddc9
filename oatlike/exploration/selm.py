"""SELM — Zhang et al. 2024, "Self-Exploring Language Models" (arXiv 2405.19332; ALGORITHMS.md §3.1).

Optimism through the loss: on top of DPO, lower the likelihood of the reference model's own (greedy)
response ``y``, pushing mass toward responses π_ref does not produce yet::

    ℓ_SELM(x, y_w, y_l, y) = ℓ_DAP(x, y_w, y_l)  +  α·β·( s_θ(y|x) − s_ref(y|x) )

(the released trainer's ``optimistic_dpo_loss``, code ``shenao-zhang/SELM``; ``s_ref(y)`` only shifts the
value). The gradient of the term is ``α·β·∇s_θ(y)``. The released code asserts the sigmoid (DPO) loss;
the term only needs the reference, so any DAP loss with a reference model takes it here.
"""

from __future__ import annotations

import torch

from oatlike.config import ExploreConfig, SELMExploreConfig
from oatlike.exploration.base import BonusInputs, Explorer
from oatlike.exploration.optimism import OwnResponseExplorer


def selm_bonus(policy_own: torch.Tensor, reference_own: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``[B]`` SELM's optimism term ``α·β·(s_θ(y) − s_ref(y))`` on the reference's own response ``y``."""
    return alpha * beta * (policy_own - reference_own)


class SELMExplorer(OwnResponseExplorer):
    """The pair from the policy's samples; the optimism term on π_ref's greedy response."""

    name = "selm"

    def __init__(self, alpha: float, beta: float, selection: str = "passive", reference_refresh_every: int = 0):
        super().__init__(selection, reference_refresh_every)
        self.alpha, self.beta = alpha, beta

    @classmethod
    def from_config(cls, config: ExploreConfig, beta: float, seed: int) -> Explorer:
        assert isinstance(config, SELMExploreConfig)
        return cls(config.alpha, beta, config.selection, config.reference_refresh_every)

    def bonus(self, inputs: BonusInputs) -> torch.Tensor:
        assert inputs.policy_own is not None and inputs.reference_own is not None
        term = selm_bonus(inputs.policy_own, inputs.reference_own, self.alpha, self.beta)
        self.log(own_logps=float(inputs.policy_own.detach().mean()), bonus=float(term.detach().mean()))
        return term
