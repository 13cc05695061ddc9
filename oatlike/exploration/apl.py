"""APL — Muldrew et al. 2024, "Active Preference Learning for Large Language Models" (ICML 2024,
arXiv 2402.08114; docs/algorithms.md §4.1).

Acquisition in two stages (the paper's Algorithm 1, lines 7-10)::

    pool      ← ``prompt_pool_factor`` × M prompts, K samples each (with the sampler's log-probs)
    prompts   ← the M of highest predictive entropy  H(x) ≈ −(1/K)·Σ_j log π(y_j|x)
    pair      ← argmax_{i≠j} |r̂_i − r̂_j|,  r̂_j = s_θ(y_j) − s_ref(y_j)   (DPO's implicit reward, β dropped)

The paper asks for *high* predictive entropy; oat keeps the prompts with the largest mean log-prob, i.e.
the lowest entropy (``entropy_filter=lowest`` reproduces it). ``s_θ`` is the actor's behaviour policy
(the policy itself when ``sync_every=1``); both log-prob passes run once per candidate of a kept prompt.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from oatlike.engines.base import SamplingParams
from oatlike.exploration.base import ActorExplorer, Engines, Explorer, Need, Selection
from oatlike.exploration.config import APLExploreConfig
from oatlike.types import Prompt, Rollout


def predictive_entropy(sampler_logprobs: np.ndarray) -> np.ndarray:
    """``[M]`` entropy estimate of each prompt from ``[M, K]`` summed log-probs of its samples: ``−mean_j``."""
    return -sampler_logprobs.mean(axis=1)


def entropy_filter(entropies: np.ndarray, keep: int, order: str = "highest") -> np.ndarray:
    """Indices (ascending) of the ``keep`` prompts of highest (paper) or lowest (oat) entropy."""
    ranked = np.argsort(-entropies if order == "highest" else entropies, kind="stable")
    return np.sort(ranked[:keep])


def max_margin_pair(implicit_rewards: np.ndarray) -> tuple[int, int, float]:
    """``(i, j, margin)``: ``argmax_{i,j} |r̂_i − r̂_j| − 𝟙[i=j]``, the first maximum in row-major order."""
    margins = np.abs(implicit_rewards[:, None] - implicit_rewards[None, :]) - np.eye(len(implicit_rewards))
    i, j = np.unravel_index(int(margins.argmax()), margins.shape)
    return int(i), int(j), float(margins[i, j])


class APLActor(ActorExplorer):
    """Entropy-based prompt selection, then the pair of largest implicit-reward margin.

    The actor gets ``pool_factor`` prompts per pair it is to label and keeps ``len(prompts) // pool_factor``.
    """

    needs = frozenset({Need.REFERENCE_ENGINE, Need.CANDIDATE_LOGPS})

    def __init__(self, config: APLExploreConfig, seed: int) -> None:
        super().__init__(config, seed)
        self.pool_factor = config.pool_factor
        self.entropy_order = config.entropy_filter

    def generate(self, engines: Engines, prompts: list[Prompt], sampling: SamplingParams) -> Rollout:
        if len(prompts) % self.pool_factor:
            raise ValueError(f"APL got {len(prompts)} prompts, not a multiple of its pool factor {self.pool_factor}")
        with_logprobs = dataclasses.replace(sampling, logprobs=True)
        pool = super().generate(engines, prompts, with_logprobs)
        if self.entropy_order == "none":
            return pool
        entropies = predictive_entropy(np.array([[g.logprob for g in group] for group in pool.candidates]))
        kept = entropy_filter(entropies, len(prompts) // self.pool_factor, self.entropy_order)
        self.log(pool_entropy=float(entropies.mean()), kept_entropy=float(entropies[kept].mean()))
        self.log(pool_prompts=len(prompts), pool_generated=sum(len(g) for g in pool.candidates))
        return Rollout([prompts[i] for i in kept], [pool.candidates[i] for i in kept], pool.weights_version)

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        implicit_rewards = rollout.extras["policy_logps"] - rollout.extras["reference_logps"]
        chosen = [max_margin_pair(row) for row in implicit_rewards]
        self.log(
            selected_margin=float(np.mean([margin for _, _, margin in chosen])),
            mean_margin=float(np.abs(implicit_rewards[:, :, None] - implicit_rewards[:, None, :]).mean()),
        )
        return Selection(np.array([(i, j) for i, j, _ in chosen], dtype=np.int64))


APL = Explorer(APLActor)
