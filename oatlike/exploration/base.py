"""Exploration plug-ins (ALGORITHMS.md §6): how the online loop explores, at four optional hooks.

The loop is fixed; an :class:`Explorer` plugs into it where its paper says::

    actor    rollout ← explorer.generate(engines, prompts)   K candidates (+ reference responses)   SELM COPO XPO APL
             side    ← what explorer.needs asks for           oracle scores, log-probs, features    APL SEA
             pairs   ← explorer.select(rollout, scores)       (a) which pair the oracle sees        all
             labels  ← oracle, or the explorer's own model    model-generated pairs (Dyna)          SEA
             extras  ← explorer.pair_extras(rollout, pairs)   what the learner needs, in the batch  SELM COPO XPO
             explorer.update(rollout, pairs, batch)           (c) its own model learns (actor)      SEA's ENN
    learner  cached  ← one reference pass per pair            + own response's log-prob, features   SELM COPO
             explorer.learner_update(cached)                  (c) its own model learns (learner)    COPO's CFN
             loss    = DAP + explorer.bonus(inputs)           (b) a bonus term per pair             SELM XPO COPO
    runner   explorer.reference_refresh_due(step, synced)     (d) π_ref ← π_θ                       BPO, SELM/COPO

The builder makes one explorer per process that needs it (actor and learner each get their own instance,
also in the local runner), so explorers never share memory between the two sides: what the learner needs
from the actor travels in :class:`~oatlike.types.PreferenceBatch` (``extras``). Quantities an explorer
asks for through :class:`Need` are computed once, in passes that run anyway, and cached (reference-side
ones with the pair in the learner's buffer). Selection hooks run without gradients; bonuses never
back-propagate into an auxiliary model or the reference (ALGORITHMS.md §6, rules for the trainer).

Baselines here: passive (a random pair, online DPO / OAIF) and best/worst (by oracle scores).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from oatlike.engines.base import Engine, SamplingParams
from oatlike.losses import PairLogps
from oatlike.types import PreferenceBatch, Prompt, Rollout

if TYPE_CHECKING:
    from oatlike.config import ExploreConfig


class Need(enum.Enum):
    """What an explorer asks the framework to compute for it; each is computed once and cached."""

    ORACLE_SCORES = "oracle_scores"
    """Actor: the oracle's pointwise score of every candidate (K counted queries per prompt)."""
    REFERENCE_ENGINE = "reference_engine"
    """Actor: a second engine holding the reference policy (reference samples, greedy own responses)."""
    CANDIDATE_LOGPS = "candidate_logps"
    """Actor: ``s_θ(y_j)`` and ``s_ref(y_j)`` of every candidate (``rollout.extras`` ``policy_logps`` /
    ``reference_logps``, ``[M, K]``)."""
    CANDIDATE_FEATURES = "candidate_features"
    """Actor: ``φ(x, y_j)`` from a frozen backbone for every candidate (``rollout.extras["features"]``,
    ``[M, K, H]``)."""
    OWN_LOGPS = "own_logps"
    """Learner: ``s_θ(y)`` (in the training forward pass) and ``s_ref(y)`` (in the reference pass, cached) of
    the response in ``batch.extras["own_response_ids"]``."""
    OWN_FEATURES = "own_features"
    """Learner: the reference's last hidden state at that response's last token (reference pass, cached)."""


@dataclass
class Engines:
    """The actor's engines an explorer may generate with: the behaviour policy and, if asked for, the reference."""

    policy: Engine
    reference: Engine | None = None

    def require_reference(self, who: str) -> Engine:
        if self.reference is None:
            raise ValueError(f"the {who} explorer needs a reference engine (Need.REFERENCE_ENGINE)")
        return self.reference


@dataclass
class Selection:
    """The pair chosen for each of M prompts: ``pairs[i] = (a, b)``, candidate indices.

    ``model_preference[i]`` is the explorer's own probability that ``a`` beats ``b`` for a pair it labels
    itself without asking the oracle (SEA's model-generated pairs), NaN where the oracle decides; ``None``
    when the oracle labels every pair.
    """

    pairs: np.ndarray
    model_preference: np.ndarray | None = None


@dataclass
class BonusInputs:
    """What a loss bonus may use for a micro-batch of B pairs (the same micro-batch as the DAP loss).

    ``policy_own`` carries gradients; everything else is cached or detached.
    """

    logps: PairLogps
    """Chosen / rejected log-probs: policy (with gradients) and reference (cached)."""
    policy_own: torch.Tensor | None = None
    """``[B]`` ``s_θ(y)`` of the own response (:attr:`Need.OWN_LOGPS`)."""
    reference_own: torch.Tensor | None = None
    """``[B]`` ``s_ref(y)``, cached with the pair."""
    own_features: torch.Tensor | None = None
    """``[B, H]`` reference hidden state at the own response's last token (:attr:`Need.OWN_FEATURES`)."""
    extras: dict[str, list[Any]] = field(default_factory=dict)
    """The pairs' ``PreferenceBatch.extras`` (XPO: which side came from the reference)."""


class Explorer(ABC):
    """An exploration strategy: how pairs are chosen and labelled, and what it adds to the loss."""

    name: str
    needs: frozenset[Need] = frozenset()
    feature_position: str = "eos"
    """Where :attr:`Need.OWN_FEATURES` reads the hidden state: ``eos`` (last non-padding token) or ``last``
    (position −1 of the right-padded batch)."""

    def __init__(self) -> None:
        self._metric_sums: dict[str, float] = {}
        self._metric_counts: dict[str, int] = {}

    @classmethod
    def from_config(cls, config: ExploreConfig, beta: float, seed: int) -> Explorer:
        """The explorer for ``config``; ``beta`` is the loss's β, ``seed`` the run's (per process)."""
        return cls()

    @property
    def needs_scores(self) -> bool:
        """Whether the actor must score every candidate with the oracle before :meth:`select`."""
        return Need.ORACLE_SCORES in self.needs

    def log(self, **values: float) -> None:
        """Record what the explorer adds (extra passes, its model's loss, selection statistics)."""
        for key, value in values.items():
            self._metric_sums[key] = self._metric_sums.get(key, 0.0) + float(value)
            self._metric_counts[key] = self._metric_counts.get(key, 0) + 1

    def collect_metrics(self) -> dict[str, float]:
        """The mean of each value logged since the last call, as ``explorer/<key>`` metrics."""
        metrics = {f"explorer/{k}": v / self._metric_counts[k] for k, v in self._metric_sums.items()}
        self._metric_sums, self._metric_counts = {}, {}
        return metrics

    # ------------------------------------------------------------------------------------- actor side

    def prompt_pool_size(self, num_pairs: int) -> int:
        """Prompts the actor needs to label ``num_pairs`` pairs (APL oversamples and keeps the best)."""
        return num_pairs

    def generate(self, engines: Engines, prompts: list[Prompt], sampling: SamplingParams) -> Rollout:
        """K candidates per prompt from the behaviour policy (override to add reference responses)."""
        candidates = engines.policy.generate([list(p.token_ids) for p in prompts], sampling)
        return Rollout(prompts, candidates, engines.policy.weights_version)

    @abstractmethod
    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        """(a) The pair of each prompt; ``scores`` is ``[M, K]`` oracle scores when :attr:`needs_scores`."""

    def pair_extras(self, rollout: Rollout, chosen_first: np.ndarray) -> dict[str, list[Any]]:
        """Per-pair lists the learner needs (``chosen_first[i]`` = (chosen, rejected) candidate indices)."""
        return {}

    def update(self, rollout: Rollout, chosen_first: np.ndarray, batch: PreferenceBatch) -> None:  # noqa: B027
        """(c) Learn the explorer's own model from the newly labelled pairs (actor side)."""

    # ----------------------------------------------------------------------------------- learner side

    def learner_update(self, cached: dict[str, torch.Tensor], reference_version: int) -> None:  # noqa: B027
        """(c) Learn the explorer's own model from the new pairs' cached reference quantities (learner side)."""

    def bonus(self, inputs: BonusInputs) -> torch.Tensor | None:
        """(b) ``[B]`` term added to each pair's DAP loss (differentiable in θ), or ``None``."""
        return None

    def reference_refresh_due(self, step: int, synced: bool) -> bool:
        """(d) Whether π_ref (learner and actor copies) takes the policy's weights after ``step``."""
        return False


class PassiveExplorer(Explorer):
    """A uniformly random pair of distinct candidates (online DPO / OAIF)."""

    name = "passive"

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        return Selection(random_pairs(len(rollout), len(rollout.candidates[0]), rng))


class BestWorstExplorer(Explorer):
    """The candidates with the highest and the lowest oracle score (ties: a random distinct pair)."""

    name = "best_worst"
    needs = frozenset({Need.ORACLE_SCORES})

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        if scores is None:
            raise ValueError("best_worst selection needs the oracle's scores of every candidate")
        return Selection(best_worst_pairs(scores, rng))


def random_pairs(num_prompts: int, num_candidates: int, rng: np.random.Generator) -> np.ndarray:
    """``[M, 2]`` uniformly random pairs of distinct candidate indices."""
    return np.stack([rng.choice(num_candidates, size=2, replace=False) for _ in range(num_prompts)])


def best_worst_pairs(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[M, 2]`` (argmax, argmin) of each row of ``scores`` ``[M, K]``; all-equal rows get a random pair."""
    pairs = []
    for row in scores:
        best, worst = int(np.argmax(row)), int(np.argmin(row))
        if best == worst:
            best, worst = (int(i) for i in rng.choice(len(row), size=2, replace=False))
        pairs.append((best, worst))
    return np.array(pairs, dtype=np.int64)
