"""Exploration plug-ins: which pair of the K candidates of each prompt goes to the oracle.

The actor's step is generate → **select** → query → learn. An :class:`Explorer` implements ``select``;
one that sets ``needs_scores`` receives the oracle's pointwise scores of every candidate (K queries per
prompt, counted by the oracle). Baselines: passive (a random pair) and best/worst.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from oatlike.types import Rollout


class Explorer(ABC):
    """Chooses the pair of candidates to label for each prompt of a rollout."""

    name: str
    needs_scores: bool = False

    @abstractmethod
    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """``[M, 2]`` candidate indices (a, b) per prompt; ``scores`` is ``[M, K]`` when ``needs_scores``."""


class PassiveExplorer(Explorer):
    """A uniformly random pair of distinct candidates (online DPO / OAIF)."""

    name = "passive"

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        num_candidates = len(rollout.candidates[0])
        return np.stack([rng.choice(num_candidates, size=2, replace=False) for _ in rollout.candidates])


class BestWorstExplorer(Explorer):
    """The candidates with the highest and the lowest oracle score (ties: a random distinct pair)."""

    name = "best_worst"
    needs_scores = True

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        if scores is None:
            raise ValueError("best_worst selection needs the oracle's scores of every candidate")
        pairs = []
        for row in scores:
            best, worst = int(np.argmax(row)), int(np.argmin(row))
            if best == worst:
                best, worst = (int(i) for i in rng.choice(len(row), size=2, replace=False))
            pairs.append((best, worst))
        return np.array(pairs, dtype=np.int64)
