"""What SELM and COPO share on the actor side: the reference model's own (greedy) response to each prompt.

Both papers' Algorithm 1 (docs/algorithms.md §2.2) generates, per prompt, one greedy response ``y`` from
π_ref (the previous iteration's model) and puts an exploration term on it, while the DAP loss trains on a
pair ranked by the annotator. Online, the pair is chosen among the K policy samples (``selection``: a
random pair, or the oracle's best and worst), ``y`` comes from the actor's reference engine, and π_ref is
refreshed every ``reference_refresh_every`` steps (an iteration; 0 keeps the SFT model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oatlike.engines.base import SamplingParams
from oatlike.exploration.base import ActorExplorer, Engines, Need, Selection, best_worst_pairs, random_pairs
from oatlike.exploration.config import OwnResponseExploreConfig
from oatlike.types import OWN_RESPONSE_IDS, Prompt, Rollout

OWN_RESPONSES = "own_responses"
"""``rollout.extras`` key: the reference's greedy response per prompt (a :class:`~oatlike.types.Generation`)."""


class OwnResponseActor(ActorExplorer):
    """The actor side of SELM and COPO: a pair from the policy's samples plus π_ref's greedy own response."""

    needs = frozenset({Need.REFERENCE_ENGINE})

    def __init__(self, config: OwnResponseExploreConfig, seed: int) -> None:
        super().__init__(config, seed)
        self.selection = config.selection

    def generate(self, engines: Engines, prompts: list[Prompt], sampling: SamplingParams) -> Rollout:
        rollout = super().generate(engines, prompts, sampling)
        greedy = SamplingParams(n=1, greedy=True, max_new_tokens=sampling.max_new_tokens)
        own = engines.require_reference(self.name).generate([list(p.token_ids) for p in prompts], greedy)
        rollout.extras[OWN_RESPONSES] = [group[0] for group in own]
        self.log(reference_generated=len(prompts))
        return rollout

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        if self.selection == "best_worst":
            if scores is None:
                raise ValueError(f"{self.name} with selection=best_worst needs the oracle's scores")
            return Selection(best_worst_pairs(scores, rng))
        return Selection(random_pairs(len(rollout), len(rollout.candidates[0]), rng))

    def pair_extras(self, rollout: Rollout, chosen_first: np.ndarray) -> dict[str, list[Any]]:
        return {OWN_RESPONSE_IDS: [list(g.token_ids) for g in rollout.extras[OWN_RESPONSES]]}
