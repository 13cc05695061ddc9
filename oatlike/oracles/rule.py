"""The ``rule`` oracle: a Bradley–Terry population of annotators over a built-in task's true utility.

``P(a ≻ b) = ε + (1 − 2ε)·σ((u(a) − u(b)) / T)``: annotators prefer the response of higher utility, more
decisively at low temperature ``T``, and a fraction ``ε`` (``label_noise``) of them label at random the
wrong way. A task may make its annotators heteroscedastic (:meth:`~oatlike.tasks.base.Task.annotator_noise`):
the pair's temperature is then ``T·sqrt((s(a)² + s(b)²) / 2)``, so controversial responses or hard prompts
are judged near a coin flip while the rest stay decisive. Deterministic: labels are drawn by the caller
from a seeded generator.
"""

from __future__ import annotations

import numpy as np

from oatlike.errors import ConfigError
from oatlike.oracles.base import Oracle, OracleSite, bradley_terry
from oatlike.oracles.config import RuleOracleConfig
from oatlike.tasks.base import Task


class RuleOracle(Oracle):
    name = "rule"

    def __init__(self, config: RuleOracleConfig, task: Task) -> None:
        super().__init__(config)
        self.task = task
        self.temperature = config.temperature
        self.label_noise = config.label_noise

    @classmethod
    def build(cls, config: RuleOracleConfig, site: OracleSite) -> RuleOracle:
        if site.task is None:
            raise ConfigError(site.key, f"{site.key}=rule needs a built-in task (task=arithmetic|sorting)")
        return cls(config, site.task)

    def utilities(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return np.array([self.task.utility(p, r) for p, r in zip(prompts, responses, strict=True)])

    def temperatures(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        """Each pair's Bradley–Terry temperature: ``T·sqrt((s(a)² + s(b)²) / 2)`` of the task's annotator noise."""
        noise = self.task.annotator_noise
        scales = np.array(
            [[noise(p, a), noise(p, b)] for p, a, b in zip(prompts, responses_a, responses_b, strict=True)]
        ).reshape(-1, 2)
        return self.temperature * np.sqrt((scales**2).mean(axis=1))

    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        gap = self.utilities(prompts, responses_a) - self.utilities(prompts, responses_b)
        temperature = self.temperatures(prompts, responses_a, responses_b)
        return self.label_noise + (1.0 - 2.0 * self.label_noise) * bradley_terry(gap, temperature)

    def _score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return self.utilities(prompts, responses)
