"""Preference oracles: which of two responses to a prompt is better.

An :class:`Oracle` answers ``compare(prompts, a, b)`` with the probability that ``a`` is preferred, and
``score(prompts, responses)`` where a pointwise reward exists. Every compared pair and every scored
response is one *query*: the oracle's counter is the x-axis of every sample-efficiency plot, so nothing
else may call an oracle without it being counted. :func:`draw_labels` turns probabilities into labels.

The base class owns what every kind shares: it splits a call into chunks of ``batch_size`` (one model
forward, one HTTP request), runs up to ``concurrency`` chunks at once on threads (servers and APIs
answer in parallel; a local model on a CPU does not gain from it), and keeps the per-call metrics
logged under ``oracle/`` (training) and ``eval/oracle_`` (evaluation):

* ``queries`` — pairs compared plus responses scored (the budget's unit; a cache hit is still a query);
* ``calls``, ``seconds``, ``latency_seconds`` — calls to ``compare``/``score``, their total and mean time;
* ``cache_hits`` — answers served from a cache instead of the model or endpoint;
* ``failures`` — answers the oracle could not give (malformed judge replies after retries: a tie, 0.5);
* ``retries`` — requests repeated after a transport error or a malformed reply;

plus counters of each kind (the judge's tokens and cost). Implementations override ``_compare`` (and
``_score``) on one chunk; they may be called from several threads at once when ``concurrency > 1``.

It also checks every answer, of every kind, before anyone uses it: one value per query, probabilities
finite and in [0, 1], scores finite. A NaN or a 1.7 would otherwise be drawn into labels and trained on
(``rng.random() < nan`` is simply False) and written into the evaluation files; instead the call raises
:class:`~oatlike.errors.OracleError` naming the oracle's config key, the first bad value and its index,
and the loop stops keeping what it collected.
"""

from __future__ import annotations

import copy
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from oatlike.errors import OracleError

if TYPE_CHECKING:
    from oatlike.oracles.config import ModelOracleConfig, OracleConfig
    from oatlike.tasks.base import Task


def bradley_terry(gap: np.ndarray, temperature: float | np.ndarray = 1.0) -> np.ndarray:
    """``σ(gap / temperature)``: the Bradley–Terry probability that the first item wins (Bradley & Terry 1952);
    ``temperature`` is one number or one per pair."""
    return 1.0 / (1.0 + np.exp(-np.asarray(gap, dtype=np.float64) / temperature))


@dataclass(frozen=True)
class OracleSite:
    """Where an oracle is built: the run's task, device and cache, and its config key (for error messages)."""

    task: Task | None = None
    device: torch.device | str = "cpu"
    key: str = "oracle"
    cache_dir: Path | None = None


def build_oracle(config: OracleConfig, site: OracleSite | None = None) -> Oracle:
    """The oracle of ``config`` (its kind's ``build(config, site)``, found by ``config.name``)."""
    from oatlike.oracles.config import ORACLES

    site = site or OracleSite()
    oracle: Oracle = ORACLES.build(config, site)
    oracle.key = site.key
    return oracle


class Oracle(ABC):
    """A preference oracle with a query counter and per-call metrics."""

    name: str
    key: str = "oracle"
    """Its config key (``oracle``, ``eval.oracle``; set by :func:`build_oracle`), named by its errors."""

    def __init__(self, config: OracleConfig) -> None:
        self.batch_size = config.batch_size
        self.concurrency = config.concurrency
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._lock = threading.Lock()
        self.queries = 0
        self.calls = 0
        self.seconds = 0.0
        self.cache_hits = 0
        self.failures = 0
        self.retries = 0
        self.counters: dict[str, float] = {}
        """Counters of this kind of oracle (for example the judge's tokens), logged with the others."""

    def count(self, name: str, amount: float = 1) -> None:
        """Add ``amount`` to a counter (thread-safe): a built-in one (``cache_hits``) or a kind's own."""
        with self._lock:
            if name in ("cache_hits", "failures", "retries"):
                setattr(self, name, getattr(self, name) + int(amount))
            else:
                self.counters[name] = self.counters.get(name, 0) + amount

    def compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        """``[M]`` probability that ``responses_a[i]`` is preferred to ``responses_b[i]`` for ``prompts[i]``."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError(f"compare got {len(prompts)} prompts, {len(responses_a)} a's and {len(responses_b)} b's")
        return self._counted(
            len(prompts), lambda s: self._compare(prompts[s], responses_a[s], responses_b[s]), probabilities=True
        )

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """``[M]`` pointwise reward of each response (one query each); ``NotImplementedError`` if none exists."""
        if len(prompts) != len(responses):
            raise ValueError(f"score got {len(prompts)} prompts and {len(responses)} responses")
        return self._counted(len(prompts), lambda s: self._score(prompts[s], responses[s]), probabilities=False)

    def _counted(
        self, size: int, answer: Callable[[slice], Sequence[float] | np.ndarray], probabilities: bool
    ) -> np.ndarray:
        """Answer ``size`` queries chunk by chunk (``concurrency`` chunks at once), checked, timed and counted."""
        if size == 0:
            return np.zeros(0)
        start = time.perf_counter()
        step = self.batch_size or size
        chunks = [slice(i, min(i + step, size)) for i in range(0, size, step)]
        if self.concurrency == 1 or len(chunks) == 1:
            parts = [answer(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chunks))) as pool:
                parts = list(pool.map(answer, chunks))
        values = np.concatenate(
            [self._checked(part, chunk, size, probabilities) for part, chunk in zip(parts, chunks, strict=True)]
        )
        with self._lock:
            self.seconds += time.perf_counter() - start
            self.queries += size
            self.calls += 1
        return values

    def where(self) -> str:
        """How an error about this oracle's answers begins: its config key and what it is."""
        return f"{self.key}: the {self.name} oracle"

    def _checked(self, part: Sequence[float] | np.ndarray, chunk: slice, size: int, probabilities: bool) -> np.ndarray:
        """One chunk's answer as ``float64``, or :class:`OracleError`: exactly one value per query of the
        chunk, finite, and in [0, 1] for probabilities. An index counts from 0 over the whole call."""
        one, many, queries = (
            ("probability", "probabilities", "pairs") if probabilities else ("score", "scores", "responses")
        )
        asked = chunk.stop - chunk.start
        try:
            values = np.asarray(part, dtype=np.float64)
        except (TypeError, ValueError):
            raise OracleError(f"{self.where()} answered {many} that are not all numbers: {str(part)[:80]}") from None
        if values.shape != (asked,):
            answered = f"{many} of shape {values.shape}"
            if values.ndim == 1:
                answered = f"{values.size} {one if values.size == 1 else many}"
            raise OracleError(f"{self.where()} answered {answered} for {asked} {queries}; it must answer one per query")
        # NaN fails every comparison, so it is caught with the out-of-range values
        bad = ~((values >= 0.0) & (values <= 1.0)) if probabilities else ~np.isfinite(values)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            rule = "finite and in [0, 1]" if probabilities else "finite"
            raise OracleError(
                f"{self.where()} answered the {one} {values[index]} at index {chunk.start + index} of {size} "
                f"{queries}; a {one} must be {rule}"
            )
        return values

    @property
    def has_score(self) -> bool:
        """Whether :meth:`score` is available."""
        return type(self)._score is not Oracle._score

    @abstractmethod
    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        """One chunk of :meth:`compare` (at most ``batch_size`` pairs)."""

    def _score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        raise NotImplementedError(f"the {self.name} oracle has no pointwise score; use a pairwise explorer")

    def fork(self) -> Oracle:
        """The same oracle with counters of its own, sharing its model, connection and cache.

        The evaluation oracle is by default a fork of the training oracle: no second copy of a reward
        model in memory, and evaluation queries never count against the training budget.
        """
        twin = copy.copy(self)
        twin._reset_counters()
        return twin

    def state_dict(self) -> dict[str, Any]:
        """The counters (an oracle's model or cache is not state: it is rebuilt from the config)."""
        with self._lock:
            names = ("queries", "calls", "seconds", "cache_hits", "failures", "retries")
            return {**{name: getattr(self, name) for name in names}, "counters": dict(self.counters)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            for name, value in state.items():
                setattr(self, name, dict(value) if name == "counters" else value)

    def metrics(self) -> dict[str, Any]:
        """The counters, by name (logged as ``oracle/<name>`` and ``eval/oracle_<name>``)."""
        with self._lock:
            return {
                "queries": self.queries,
                "calls": self.calls,
                "seconds": self.seconds,
                "latency_seconds": self.seconds / self.calls if self.calls else 0.0,
                "cache_hits": self.cache_hits,
                "failures": self.failures,
                "retries": self.retries,
                **self.counters,
            }


class ModelOracle(Oracle):
    """An oracle computed by a local model (a reward model, PairRM) on one device, in evaluation mode.

    ``P(a ≻ b) = σ(gap / temperature)`` where the kind defines the gap (a reward difference, a logit).
    """

    def __init__(
        self, config: ModelOracleConfig, model: torch.nn.Module, tokenizer: Any, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(config)
        self.device = torch.device(device)
        torch.nn.Module.to(model, self.device)  # (transformers' typed `to` accepts no device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.temperature = config.temperature


def draw_labels(probabilities: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``[M]``: True where ``a`` wins. ``sampled``: Bernoulli(p); ``threshold``: p > 0.5 (ties to a)."""
    if mode == "sampled":
        return rng.random(len(probabilities)) < probabilities
    if mode == "threshold":
        return probabilities >= 0.5
    raise ValueError(f"unknown label mode {mode!r}; use 'sampled' or 'threshold'")
