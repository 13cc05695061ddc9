"""SELM — Zhang et al. 2024, "Self-Exploring Language Models" (arXiv 2405.19332; docs/algorithms.md §3.1).

Optimism through the loss: on top of DPO, lower the likelihood of the reference model's own (greedy)
response ``y``, pushing mass toward responses π_ref does not produce yet::

    ℓ_SELM(x, y_w, y_l, y) = ℓ_DAP(x, y_w, y_l)  +  α·β·( s_θ(y|x) − s_ref(y|x) )

(the released trainer's ``optimistic_dpo_loss``, code ``shenao-zhang/SELM``; ``s_ref(y)`` only shifts the
value). The gradient of the term is ``α·β·∇s_θ(y)``. The released code asserts the sigmoid (DPO) loss;
the term only needs the reference, so any DAP loss with a reference model takes it here. The actor side
(π_ref's greedy response) is :class:`~oatlike.exploration.optimism.OwnResponseActor`.
"""

from __future__ import annotations

import torch

from oatlike.exploration.base import BonusInputs, Explorer, LearnerExplorer, Need
from oatlike.exploration.config import SELMExploreConfig
from oatlike.exploration.optimism import OwnResponseActor
from oatlike.losses.config import LossConfig


def selm_bonus(policy_own: torch.Tensor, reference_own: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``[B]`` SELM's optimism term ``α·β·(s_θ(y) − s_ref(y))`` on the reference's own response ``y``."""
    return alpha * beta * (policy_own - reference_own)


class SELMLearner(LearnerExplorer):
    """The optimism term on π_ref's greedy response."""

    needs = frozenset({Need.OWN_LOGPS})

    def __init__(self, config: SELMExploreConfig, loss: LossConfig, seed: int) -> None:
        super().__init__(config, loss, seed)
        self.alpha, self.beta = config.alpha, loss.beta

    def bonus(self, inputs: BonusInputs) -> torch.Tensor:
        assert inputs.policy_own is not None and inputs.reference_own is not None
        term = selm_bonus(inputs.policy_own, inputs.reference_own, self.alpha, self.beta)
        self.log(own_logps=float(inputs.policy_own.detach().mean()), bonus=float(term.detach().mean()))
        return term


SELM = Explorer(OwnResponseActor, SELMLearner)
