"""XPO — Xie et al. 2024, "Exploratory Preference Optimization" (arXiv 2405.21046; docs/algorithms.md §3.2).

A one-line change to online DPO: each prompt gets one response ``y`` from the policy and one ``ỹ`` from the
sampling policy π_samp (π_ref, as TRL and oat use), the oracle labels the pair, and the loss adds an
exploration term on the reference sample::

    ℓ_XPO = ℓ_DAP(x, y_w, y_l)  +  α·s_θ(ỹ|x)        ỹ = whichever of y_w, y_l came from π_ref

(TRL ``trl/experimental/xpo/xpo_trainer.py`` ``_compute_losses``; oat ``XPOLearner.learning_step``).
Minimising ``α·s_θ(ỹ)`` pushes probability away from reference samples. ``s_θ(ỹ)`` is the chosen or
rejected log-prob the DAP loss computes anyway: XPO costs one reference sample per prompt and nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from oatlike.engines.base import SamplingParams
from oatlike.exploration.base import ActorExplorer, BonusInputs, Engines, Explorer, LearnerExplorer, Need, Selection
from oatlike.exploration.config import XPOExploreConfig
from oatlike.losses.config import LossConfig
from oatlike.types import CHOSEN_FROM_REFERENCE, Prompt, Rollout

FROM_REFERENCE = "from_reference"
"""``rollout.extras`` key: ``[M][2]`` whether each candidate was sampled from π_ref."""


def xpo_bonus(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, chosen_from_reference: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``[B]`` XPO's exploration term ``α·s_θ(ỹ)``, ỹ the side of each pair sampled from π_ref."""
    return alpha * torch.where(chosen_from_reference, policy_chosen, policy_rejected)


class XPOActor(ActorExplorer):
    """One sample from the policy, one from the reference, and which side of the pair came from which."""

    needs = frozenset({Need.REFERENCE_ENGINE})

    def generate(self, engines: Engines, prompts: list[Prompt], sampling: SamplingParams) -> Rollout:
        prompt_ids = [list(p.token_ids) for p in prompts]
        one = dataclasses.replace(sampling, n=1)
        policy = engines.policy.generate(prompt_ids, one)
        reference = engines.require_reference(self.name).generate(prompt_ids, one)
        candidates = [[p[0], r[0]] for p, r in zip(policy, reference, strict=True)]
        rollout = Rollout(prompts, candidates, engines.policy.weights_version)
        rollout.extras[FROM_REFERENCE] = [[False, True] for _ in prompts]
        self.log(reference_generated=len(prompts))
        return rollout

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        return Selection(np.tile(np.array([0, 1]), (len(rollout), 1)))

    def pair_extras(self, rollout: Rollout, chosen_first: np.ndarray) -> dict[str, list[Any]]:
        sources = rollout.extras[FROM_REFERENCE]
        return {CHOSEN_FROM_REFERENCE: [bool(sources[i][c]) for i, (c, _) in enumerate(chosen_first)]}


class XPOLearner(LearnerExplorer):
    """The exploration term on the reference sample of each pair."""

    def __init__(self, config: XPOExploreConfig, loss: LossConfig, seed: int) -> None:
        super().__init__(config, loss, seed)
        self.alpha = config.alpha

    def bonus(self, inputs: BonusInputs) -> torch.Tensor:
        logps = inputs.logps
        from_reference = torch.tensor(inputs.extras[CHOSEN_FROM_REFERENCE], device=logps.policy_chosen.device)
        term = xpo_bonus(logps.policy_chosen, logps.policy_rejected, from_reference, self.alpha)
        self.log(reference_chosen_fraction=float(from_reference.float().mean()), bonus=float(term.detach().mean()))
        return term


XPO = Explorer(XPOActor, XPOLearner)
