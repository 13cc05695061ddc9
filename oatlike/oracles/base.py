"""Preference oracles: which of two responses to a prompt is better.

An :class:`Oracle` answers ``compare(prompts, a, b)`` with the probability that ``a`` is preferred, and
``score(prompts, responses)`` where a pointwise reward exists. Every compared pair and every scored
response is one *query*: the oracle's counter is the x-axis of every sample-efficiency plot, so nothing
else may call an oracle without it being counted. :func:`draw_labels` turns probabilities into labels.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Oracle(ABC):
    """A preference oracle with a query counter and per-call metrics."""

    name: str

    def __init__(self) -> None:
        self.queries = 0
        self.seconds = 0.0

    def compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        """``[M]`` probability that ``responses_a[i]`` is preferred to ``responses_b[i]`` for ``prompts[i]``."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError(f"compare got {len(prompts)} prompts, {len(responses_a)} a's and {len(responses_b)} b's")
        if not prompts:
            return np.zeros(0)
        start = time.perf_counter()
        probabilities = np.asarray(self._compare(prompts, responses_a, responses_b), dtype=np.float64)
        self.seconds += time.perf_counter() - start
        self.queries += len(prompts)
        return probabilities

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """``[M]`` pointwise reward of each response (one query each); ``NotImplementedError`` if none exists."""
        if not prompts:
            return np.zeros(0)
        start = time.perf_counter()
        scores = np.asarray(self._score(prompts, responses), dtype=np.float64)
        self.seconds += time.perf_counter() - start
        self.queries += len(prompts)
        return scores

    @property
    def has_score(self) -> bool:
        """Whether :meth:`score` is available."""
        return type(self)._score is not Oracle._score

    @abstractmethod
    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray: ...

    def _score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        raise NotImplementedError(f"the {self.name} oracle has no pointwise score; use a pairwise explorer")

    def metrics(self) -> dict[str, Any]:
        return {"queries": self.queries, "seconds": self.seconds}


def draw_labels(probabilities: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``[M]``: True where ``a`` wins. ``sampled``: Bernoulli(p); ``threshold``: p > 0.5 (ties to a)."""
    if mode == "sampled":
        return rng.random(len(probabilities)) < probabilities
    if mode == "threshold":
        return probabilities >= 0.5
    raise ValueError(f"unknown label mode {mode!r}; use 'sampled' or 'threshold'")
