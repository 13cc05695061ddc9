"""Exploration plug-ins (docs/algorithms.md §6): how the online loop explores, split by where it runs.

An :class:`Explorer` is two small classes, one per side of the loop, which never share memory (what the
learner needs from the actor travels in :attr:`PreferenceBatch.extras <oatlike.types.PreferenceBatch>`)::

    ActorExplorer (in each actor)
        rollout ← generate(engines, prompts)         K candidates (+ reference responses)   SELM COPO XPO APL
        side    ← what ``needs`` asks for             oracle scores, log-probs, features     APL SEA best_worst
        pairs   ← select(rollout, scores)            (a) which pair the oracle sees          all
        labels  ← the oracle, or the explorer's own   model-generated pairs (Dyna)           SEA
        extras  ← pair_extras(rollout, pairs)        what the learner needs, in the batch    SELM COPO XPO
        update(rollout, pairs, batch)                (c) its own model learns                SEA's ENN
    LearnerExplorer (in each learner rank)
        cached  ← one reference pass per pair        + own response's log-prob, features     SELM COPO
        learner_update(cached)                       (c) its own model learns                COPO's CFN
        loss    = DAP + bonus(inputs)                (b) a term per pair                     SELM XPO COPO
        adapter_ensemble                             the policy as K LoRA adapters           BPO

The schedule — how many prompts make a step, whether the oracle scores every candidate, when π_ref takes
the policy's weights (d) — is a fact of the config (:class:`~oatlike.exploration.config.ExploreConfig`),
which the loop reads in the driver. Quantities a side asks for through :class:`Need` are computed once,
in passes that run anyway, and cached (reference-side ones with the pair in the learner's buffer).
Selection runs without gradients; bonuses never back-propagate into an auxiliary model or the reference.

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
from oatlike.losses.loss import PairLogps
from oatlike.types import PreferenceBatch, Prompt, Rollout

if TYPE_CHECKING:
    from oatlike.exploration.config import ExploreConfig
    from oatlike.losses.config import LossConfig


class Need(enum.Enum):
    """What an explorer side asks the framework to compute for it; each is computed once and cached."""

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
    the response in ``batch.extras[OWN_RESPONSE_IDS]``."""
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


@dataclass(frozen=True)
class AdapterEnsemble:
    """The policy as ``size`` LoRA adapters on one frozen base, each with its own optimizer, merged by
    ``merge`` (``linear`` or ``delta_mean``, :func:`~oatlike.models.lora.merge_lora_ensemble`) to sample."""

    size: int
    merge: str


class ExplorerMetrics:
    """What an explorer side adds, logged as ``explorer/<key>``: the mean of the values since the last step."""

    def __init__(self) -> None:
        self._metric_sums: dict[str, float] = {}
        self._metric_counts: dict[str, int] = {}

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

    def state_dict(self) -> dict[str, Any]:
        """Everything the side has learnt or drawn (its model, data, optimizer, RNG); empty when stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class ActorExplorer(ExplorerMetrics, ABC):
    """The actor side: which candidates exist, which pair the oracle sees, what the learner gets."""

    needs: frozenset[Need] = frozenset()

    def __init__(self, config: ExploreConfig, seed: int) -> None:
        super().__init__()
        self.name = config.name
        if config.scores_candidates:
            self.needs = self.needs | {Need.ORACLE_SCORES}

    def generate(self, engines: Engines, prompts: list[Prompt], sampling: SamplingParams) -> Rollout:
        """K candidates per prompt from the behaviour policy (override to add reference responses)."""
        candidates = engines.policy.generate([list(p.token_ids) for p in prompts], sampling)
        return Rollout(prompts, candidates, engines.policy.weights_version)

    @abstractmethod
    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        """(a) The pair of each prompt; ``scores`` is ``[M, K]`` oracle scores when ``Need.ORACLE_SCORES``."""

    def pair_extras(self, rollout: Rollout, chosen_first: np.ndarray) -> dict[str, list[Any]]:
        """Per-pair lists the learner needs (``chosen_first[i]`` = (chosen, rejected) candidate indices)."""
        return {}

    def update(self, rollout: Rollout, chosen_first: np.ndarray, batch: PreferenceBatch) -> None:
        """(c) Learn the explorer's own model from the newly labelled pairs."""


class LearnerExplorer(ExplorerMetrics):
    """The learner side: a loss bonus, its own model, the shape of the policy. The default adds nothing."""

    needs: frozenset[Need] = frozenset()
    feature_position: str = "eos"
    """Where :attr:`Need.OWN_FEATURES` reads the hidden state: ``eos`` (last non-padding token) or ``last``
    (position −1 of the right-padded batch)."""
    adapter_ensemble: AdapterEnsemble | None = None
    """Train the policy as an ensemble of LoRA adapters (BPO); ``None``: one policy."""

    def __init__(self, config: ExploreConfig | None = None, loss: LossConfig | None = None, seed: int = 0) -> None:
        """``config`` ``None``: no explorer on this side (a learner built on its own)."""
        super().__init__()
        self.name = config.name if config is not None else "passive"

    def learner_update(self, cached: dict[str, torch.Tensor], reference_version: int) -> None:
        """(c) Learn the explorer's own model from the new pairs' cached reference quantities."""

    def bonus(self, inputs: BonusInputs) -> torch.Tensor | None:
        """(b) ``[B]`` term added to each pair's DAP loss (differentiable in θ), or ``None``."""
        return None


@dataclass(frozen=True)
class Explorer:
    """An explorer: the class of each side (the registry's implementation of ``explore=<name>``)."""

    actor: type[ActorExplorer]
    learner: type[LearnerExplorer] = LearnerExplorer


def _explorer(config: ExploreConfig) -> Explorer:
    from oatlike.exploration.config import EXPLORERS

    explorer: Explorer = EXPLORERS.get(config.name, "explore.name").implementation()
    return explorer


def build_actor_explorer(config: ExploreConfig, seed: int) -> ActorExplorer:
    """The actor side of ``explore=<config.name>`` (``seed``: this actor's)."""
    return _explorer(config).actor(config, seed)


def build_learner_explorer(config: ExploreConfig, loss: LossConfig, seed: int) -> LearnerExplorer:
    """The learner side of ``explore=<config.name>`` (``loss``: the base loss it adds to)."""
    return _explorer(config).learner(config, loss, seed)


class PassiveActor(ActorExplorer):
    """A uniformly random pair of distinct candidates (online DPO / OAIF)."""

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        return Selection(random_pairs(len(rollout), len(rollout.candidates[0]), rng))


class BestWorstActor(ActorExplorer):
    """The candidates with the highest and the lowest oracle score (ties: a random distinct pair)."""

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        if scores is None:
            raise ValueError("best_worst selection needs the oracle's scores of every candidate")
        return Selection(best_worst_pairs(scores, rng))


PASSIVE = Explorer(PassiveActor)
BEST_WORST = Explorer(BestWorstActor)


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
