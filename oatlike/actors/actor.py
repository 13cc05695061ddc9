"""The actor: prompts in, labelled preference pairs out.

One :meth:`Actor.step` is the data-collection half of the online loop (ALGORITHMS.md §2)::

    candidates ← engine.generate(prompts, K samples)        behaviour policy at weights_version
    pairs      ← explorer.select(candidates [, scores])     which two to show the oracle
    P(a ≻ b)   ← oracle.compare(prompt, a, b)                one query per pair (identical pairs skipped)
    labels     ← Bernoulli(P) or P > 0.5                     chosen / rejected

The actor holds no state but its engine's weights (and their version), so a restarted actor is as good as
the one it replaces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from oatlike.engines.base import Engine, SamplingParams
from oatlike.exploration.base import Explorer
from oatlike.oracles.base import Oracle, draw_labels
from oatlike.types import PreferenceBatch, Prompt, Rollout

UtilityFn = Callable[[str, str], float]


class Actor:
    """Generates candidates with an engine, picks pairs with an explorer and labels them with an oracle."""

    def __init__(
        self,
        engine: Engine,
        oracle: Oracle,
        explorer: Explorer,
        sampling: SamplingParams,
        label_mode: str = "sampled",
        seed: int = 0,
        true_utility: UtilityFn | None = None,
    ) -> None:
        self.engine = engine
        self.oracle = oracle
        self.explorer = explorer
        self.sampling = sampling
        self.label_mode = label_mode
        self.rng = np.random.default_rng(seed)
        self.true_utility = true_utility

    def rollout(self, prompts: list[Prompt]) -> Rollout:
        """K candidates per prompt from the behaviour policy."""
        candidates = self.engine.generate([list(p.token_ids) for p in prompts], self.sampling)
        return Rollout(prompts, candidates, self.engine.weights_version)

    def step(self, prompts: list[Prompt]) -> tuple[PreferenceBatch, dict[str, Any]]:
        """Collect one labelled pair per prompt; returns the batch and ``actor/`` + ``oracle/`` metrics."""
        start = time.perf_counter()
        rollout = self.rollout(prompts)
        generate_seconds = time.perf_counter() - start
        queries_before = self.oracle.queries
        texts = [p.text for p in prompts]
        scores = None
        if self.explorer.needs_scores:
            flat = [(t, g.text) for t, group in zip(texts, rollout.candidates, strict=True) for g in group]
            scores = self.oracle.score([t for t, _ in flat], [r for _, r in flat]).reshape(len(prompts), -1)
        pairs = self.explorer.select(rollout, scores, self.rng)
        batch = self.label(rollout, pairs)
        metrics = self._metrics(rollout, pairs, batch, generate_seconds, self.oracle.queries - queries_before)
        metrics["actor/step_seconds"] = time.perf_counter() - start
        return batch, metrics

    def label(self, rollout: Rollout, pairs: np.ndarray) -> PreferenceBatch:
        """Ask the oracle about each selected pair (identical pairs are masked, not asked) and label it."""
        a = [group[i] for group, (i, _) in zip(rollout.candidates, pairs, strict=True)]
        b = [group[j] for group, (_, j) in zip(rollout.candidates, pairs, strict=True)]
        distinct = np.array([x.token_ids != y.token_ids for x, y in zip(a, b, strict=True)])
        probabilities = np.full(len(a), 0.5)
        asked = np.flatnonzero(distinct)
        probabilities[asked] = self.oracle.compare(
            [rollout.prompts[i].text for i in asked], [a[i].text for i in asked], [b[i].text for i in asked]
        )
        a_wins = draw_labels(probabilities, self.label_mode, self.rng)
        chosen = [x if win else y for x, y, win in zip(a, b, a_wins, strict=True)]
        rejected = [y if win else x for x, y, win in zip(a, b, a_wins, strict=True)]
        return PreferenceBatch(
            prompts=[p.text for p in rollout.prompts],
            prompt_ids=[list(p.token_ids) for p in rollout.prompts],
            chosen=[g.text for g in chosen],
            rejected=[g.text for g in rejected],
            chosen_ids=[g.token_ids for g in chosen],
            rejected_ids=[g.token_ids for g in rejected],
            preference_prob=[float(p if w else 1.0 - p) for p, w in zip(probabilities, a_wins, strict=True)],
            loss_mask=[bool(d) for d in distinct],
            weights_version=rollout.weights_version,
        )

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
        return metrics
