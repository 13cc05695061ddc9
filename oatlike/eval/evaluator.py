"""Evaluation: the policy's greedy answers on held-out prompts.

Metrics (``eval/``): ``win_rate`` — mean probability, under the evaluation oracle, that the answer beats the
prompt's reference answer (ties count one half); ``utility`` and ``regret`` (best utility minus the
answer's) on built-in tasks; ``response_length`` in tokens and ``finished_fraction`` (answers that ended with
EOS). Evaluation queries are counted by the evaluation oracle, separately from training queries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oatlike.engines.base import Engine, SamplingParams
from oatlike.oracles.base import Oracle
from oatlike.tasks.base import Task
from oatlike.types import Prompt


class Evaluator:
    """Greedy answers on a fixed prompt set, judged against references and the true utility."""

    def __init__(
        self,
        engine: Engine,
        prompts: list[Prompt],
        max_new_tokens: int,
        oracle: Oracle | None = None,
        task: Task | None = None,
    ) -> None:
        self.engine = engine
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens
        self.oracle = oracle
        self.task = task
        self.references = [p.reference for p in prompts]
        self.has_references = all(r is not None for r in self.references)

    def evaluate(
        self, weights: Mapping[str, torch.Tensor] | None = None, version: int = 0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Load ``weights`` (if given) into the engine, answer greedily, score; returns ``eval/`` metrics and
        one record per prompt (prompt, answer, reference, utility, win probability)."""
        start = time.perf_counter()
        if weights is not None:
            self.engine.load_weights(weights, version)
        params = SamplingParams(n=1, greedy=True, max_new_tokens=self.max_new_tokens)
        answers = [group[0] for group in self.engine.generate([list(p.token_ids) for p in self.prompts], params)]
        texts = [p.text for p in self.prompts]
        records: list[dict[str, Any]] = [
            {"prompt": t, "answer": a.text, "reference": r}
            for t, a, r in zip(texts, answers, self.references, strict=True)
        ]
        metrics: dict[str, Any] = {
            "eval/response_length": float(np.mean([len(a.token_ids) for a in answers])),
            "eval/finished_fraction": float(np.mean([a.finished for a in answers])),
        }
        if self.task is not None:
            utilities = self._utilities(texts, [a.text for a in answers])
            best = self._utilities(texts, [self.task.best_response(t) for t in texts])
            metrics["eval/utility"] = float(utilities.mean())
            metrics["eval/regret"] = float((best - utilities).mean())
            metrics["eval/perfect_fraction"] = float(np.mean(utilities >= best))
            if self.has_references:
                metrics["eval/reference_utility"] = float(self._utilities(texts, self.references).mean())  # type: ignore[arg-type]
            for record, utility in zip(records, utilities, strict=True):
                record["utility"] = float(utility)
        if self.oracle is not None and self.has_references:
            probabilities = self.oracle.compare(texts, [a.text for a in answers], self.references)  # type: ignore[arg-type]
            metrics["eval/win_rate"] = float(probabilities.mean())
            metrics.update({f"eval/oracle_{name}": value for name, value in self.oracle.metrics().items()})
            for record, probability in zip(records, probabilities, strict=True):
                record["win_probability"] = float(probability)
        metrics["eval/seconds"] = time.perf_counter() - start
        return metrics, records

    def state_dict(self) -> dict[str, Any]:
        """The evaluation oracle's counters (``eval/oracle_*`` go on counting after a resume)."""
        return {"oracle": None if self.oracle is None else self.oracle.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.oracle is not None and state["oracle"] is not None:
            self.oracle.load_state_dict(state["oracle"])

    def _utilities(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        assert self.task is not None
        return np.array([self.task.utility(p, r) for p, r in zip(prompts, responses, strict=True)])


def save_generations(out_dir: Path, step: int, records: list[dict[str, Any]]) -> None:
    """Write one evaluation's records to ``out_dir/step_NNNNNN.jsonl``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"step_{step:06d}.jsonl", "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
