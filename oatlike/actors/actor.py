"""The actor: prompts in, labelled preference pairs out.

One :meth:`Actor.step` is the data-collection half of the online loop (docs/algorithms.md §2, §6)::

    candidates ← explorer.generate(engines, prompts)       K samples of the behaviour policy (+ reference ones)
    side info  ← what explorer.needs asks for               oracle scores, candidate log-probs, features
    pairs      ← explorer.select(candidates, scores)        which two to show the oracle
    P(a ≻ b)   ← oracle.compare(prompt, a, b)                one query per pair (identical pairs skipped;
                                                             pairs the explorer labels itself never asked)
    labels     ← Bernoulli(P) or P > 0.5                     chosen / rejected
    explorer.update(pairs, labels)                           its own model learns (SEA's reward ensemble)

The actor's state (:meth:`Actor.state_dict`) is its random streams, its oracle's counters and its
explorer's model; its engines' weights come from the learner (a weight sync), with their versions: the
batch records the policy version that sampled it and the reference version its explorer used, so the
learner judges every pair against the reference of the policy that generated it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from oatlike.engines.base import Engine, SamplingParams
from oatlike.exploration.base import ActorExplorer, Engines, Need
from oatlike.exploration.features import FeatureBackbone
from oatlike.oracles.base import Oracle, draw_labels
from oatlike.types import PreferenceBatch, Prompt, Rollout

UtilityFn = Callable[[str, str], float]


def pair_regret(utilities: np.ndarray, best: np.ndarray, pairs: np.ndarray) -> float:
    """The explore-and-exploit (cumulative) regret of one step's duels, docs/algorithms.md §7:
    ``Σ_i (2·u*_i − u(a_i) − u(b_i)) / 2`` over the prompts ``i`` of the step, where ``(a_i, b_i)`` is the pair
    played (``pairs[i]`` indexes the candidates ``utilities[i]``) and ``u*_i`` the prompt's best utility
    ``best[i]``. Every pair played counts, also one of two identical responses (no query is spent on it,
    but the arm was played)."""
    served = np.take_along_axis(utilities, pairs, axis=1)
    return float((best[:, None] - served).sum() / 2)


class Actor:
    """Generates candidates with an engine, picks pairs with an explorer and labels them with an oracle."""

    def __init__(
        self,
        engine: Engine,
        oracle: Oracle,
        explorer: ActorExplorer,
        sampling: SamplingParams,
        label_mode: str = "sampled",
        seed: int = 0,
        true_utility: UtilityFn | None = None,
        best_utility: Callable[[str], float] | None = None,
        reference_engine: Engine | None = None,
        backbone: FeatureBackbone | None = None,
    ) -> None:
        self.engine = engine
        self.oracle = oracle
        self.explorer = explorer
        self.sampling = sampling
        self.label_mode = label_mode
        self.rng = np.random.default_rng(seed)
        self.true_utility = true_utility
        self.best_utility = best_utility
        """A prompt's best utility u* (a built-in task's), for the regret of the pairs played."""
        self.reference_engine = reference_engine
        """A frozen (or refreshed) copy of the reference policy, when the explorer needs one."""
        self.backbone = backbone
        """The frozen feature backbone, when the explorer needs candidate features."""
        self.reference_version = 0
        """Version of π_ref the actor holds (0: the initial policy), also without a reference engine."""

    @property
    def policy_version(self) -> int:
        """Version of the behaviour policy's weights (the learner step they come from)."""
        return self.engine.weights_version

    def rollout(self, prompts: list[Prompt]) -> Rollout:
        """K candidates per prompt from the behaviour policy (and what the explorer generates besides)."""
        return self.explorer.generate(Engines(self.engine, self.reference_engine), prompts, self.sampling)

    def step(self, prompts: list[Prompt]) -> tuple[PreferenceBatch, dict[str, Any]]:
        """Collect one labelled pair per prompt the explorer keeps; returns the batch and ``actor/``,
        ``oracle/`` and ``explorer/`` metrics."""
        start = time.perf_counter()
        rollout = self.rollout(prompts)  # K candidates (+ reference responses)
        generate_seconds = time.perf_counter() - start
        queries_before = self.oracle.queries
        scores = self.side_information(rollout)  # what the explorer asked for
        selection = self.explorer.select(rollout, scores, self.rng)  # (a) which pair the oracle sees
        batch, chosen_first = self.label(rollout, selection.pairs, selection.model_preference)
        batch.extras.update(self.explorer.pair_extras(rollout, chosen_first))  # what the learner needs
        self.explorer.update(rollout, chosen_first, batch)  # (c) the explorer's own model learns
        queries = self.oracle.queries - queries_before
        metrics = self._metrics(rollout, selection.pairs, batch, generate_seconds, queries)
        metrics.update(self.explorer.collect_metrics())
        metrics["actor/step_seconds"] = time.perf_counter() - start
        return batch, metrics

    def side_information(self, rollout: Rollout) -> np.ndarray | None:
        """What the explorer's needs ask for, computed once: candidate log-probs and features go into
        ``rollout.extras``; the oracle's ``[M, K]`` scores (K counted queries per prompt) are returned."""
        needs = self.explorer.needs
        groups = rollout.candidates
        if Need.CANDIDATE_LOGPS in needs:
            prompt_ids = [list(p.token_ids) for p, group in zip(rollout.prompts, groups, strict=True) for _ in group]
            response_ids = [list(g.token_ids) for group in groups for g in group]
            if self.reference_engine is None:
                raise ValueError("candidate log-probs need the actor's reference engine")
            for key, engine in (("policy_logps", self.engine), ("reference_logps", self.reference_engine)):
                rollout.extras[key] = engine.score(prompt_ids, response_ids).logps.reshape(len(rollout), -1)
            self.explorer.log(scored_sequences=2 * len(response_ids))
        if Need.CANDIDATE_FEATURES in needs:
            if self.backbone is None:
                raise ValueError("candidate features need the actor's feature backbone")
            rollout.extras["features"] = self.backbone.features(rollout)
            self.explorer.log(featurized_sequences=sum(len(group) for group in groups))
        if Need.ORACLE_SCORES not in needs:
            return None
        flat = [(p.text, g.text) for p, group in zip(rollout.prompts, groups, strict=True) for g in group]
        return self.oracle.score([t for t, _ in flat], [r for _, r in flat]).reshape(len(rollout), -1)

    def load_reference_weights(self, state_dict: dict[str, Any] | None, version: int) -> None:
        """π_ref ← π_θ (BPO, iterative SELM / COPO): load the weights into the reference engine, when the
        actor has one (otherwise ``state_dict`` may be ``None``), and record the version."""
        if self.reference_engine is not None:
            if state_dict is None:
                raise ValueError("the actor's reference engine needs the reference weights, not only a version")
            self.reference_engine.load_weights(state_dict, version)
        self.reference_version = version

    def state_dict(self) -> dict[str, Any]:
        """The actor's random streams (labels, selection; torch's, which sampling draws from), its oracle's
        counters and its explorer's state; the engines' weights (and their versions) come from a weight sync."""
        return {
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "oracle": self.oracle.state_dict(),
            "explorer": self.explorer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.oracle.load_state_dict(state["oracle"])
        self.explorer.load_state_dict(state["explorer"])

    def label(
        self, rollout: Rollout, pairs: np.ndarray, model_preference: np.ndarray | None = None
    ) -> tuple[PreferenceBatch, np.ndarray]:
        """Ask the oracle about each selected pair (identical pairs are masked, not asked; pairs with a
        ``model_preference`` take the explorer's own prediction instead) and label it.

        Returns the batch and ``[M, 2]`` (chosen, rejected) candidate indices.
        """
        a = [group[i] for group, (i, _) in zip(rollout.candidates, pairs, strict=True)]
        b = [group[j] for group, (_, j) in zip(rollout.candidates, pairs, strict=True)]
        distinct = np.array([x.token_ids != y.token_ids for x, y in zip(a, b, strict=True)])
        by_model = distinct & ~np.isnan(model_preference) if model_preference is not None else np.zeros_like(distinct)
        probabilities = np.full(len(a), 0.5)
        asked = np.flatnonzero(distinct & ~by_model)
        probabilities[asked] = self.oracle.compare(
            [rollout.prompts[i].text for i in asked], [a[i].text for i in asked], [b[i].text for i in asked]
        )
        a_wins = draw_labels(probabilities, self.label_mode, self.rng)
        if model_preference is not None:
            probabilities[by_model] = model_preference[by_model]
            a_wins[by_model] = model_preference[by_model] >= 0.5  # the explorer's own label is its prediction
        chosen = [x if win else y for x, y, win in zip(a, b, a_wins, strict=True)]
        rejected = [y if win else x for x, y, win in zip(a, b, a_wins, strict=True)]
        chosen_first = np.where(a_wins[:, None], pairs, pairs[:, ::-1])
        return PreferenceBatch(
            prompts=[p.text for p in rollout.prompts],
            prompt_ids=[list(p.token_ids) for p in rollout.prompts],
            chosen=[g.text for g in chosen],
            rejected=[g.text for g in rejected],
            chosen_ids=[g.token_ids for g in chosen],
            rejected_ids=[g.token_ids for g in rejected],
            preference_prob=[float(p if w else 1.0 - p) for p, w in zip(probabilities, a_wins, strict=True)],
            loss_mask=[bool(d) for d in distinct],
            behaviour_versions=[rollout.weights_version] * len(a),
            reference_versions=[self.reference_version] * len(a),
        ), chosen_first

    def _metrics(
        self,
        rollout: Rollout,
        pairs: np.ndarray,
        batch: PreferenceBatch,
        generate_seconds: float,
        queries: int,
    ) -> dict[str, Any]:
        generations = [g for group in rollout.candidates for g in group]
        num_tokens = sum(len(g.token_ids) for g in generations)
        metrics: dict[str, Any] = {
            "actor/generate_seconds": generate_seconds,
            "actor/tokens_per_second": num_tokens / max(generate_seconds, 1e-9),
            "actor/response_length": num_tokens / len(generations),
            "actor/finished_fraction": float(np.mean([g.finished for g in generations])),
            "actor/identical_pairs": len(batch) - sum(batch.loss_mask),
            "actor/weights_version": rollout.weights_version,
            "oracle/step_queries": queries,
            "oracle/queries": self.oracle.queries,
            "oracle/seconds": self.oracle.seconds,
        }
        metrics.update({f"oracle/{name}": value for name, value in self.oracle.metrics().items()})
        if self.true_utility is not None:
            utilities = np.array(
                [
                    [self.true_utility(p.text, g.text) for g in group]
                    for p, group in zip(rollout.prompts, rollout.candidates, strict=True)
                ]
            )
            served = np.take_along_axis(utilities, pairs, axis=1)
            metrics["actor/utility"] = float(utilities.mean())
            metrics["actor/served_utility"] = float(served.mean())
            metrics["actor/best_of_k_utility"] = float(utilities.max(axis=1).mean())
            if self.best_utility is not None:
                best = np.array([self.best_utility(p.text) for p in rollout.prompts])
                metrics["regret/step"] = pair_regret(utilities, best, pairs)
        return metrics
