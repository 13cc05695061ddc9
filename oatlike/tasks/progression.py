"""Continuing an arithmetic progression: ``"from 7 by 3 for 6:"`` -> ``" 10 13 16 19 22 25"``.

Utility (position-wise partial credit): the fraction of the ``N`` terms written right at their place
(term ``i`` is ``start + i·step``), over the longer of the response (its space-separated tokens) and ``N``;
so stopping early, drifting off the progression and writing too much all cost credit, and the answers are
long (4-7 numbers) and varied, so two samples are rarely identical.

Structure shared across prompts: one rule (add the step) on every prompt.

Heteroscedastic annotators, by prompt: a long stride is harder to check, so the annotators' Bradley–Terry
temperature grows with the step: ``annotator_noise = 1 + noise_per_step·(step − 1)`` (1 at step 1, 4 at step 7
by default), the same for every response to the prompt.

Demonstrator: *stops early* with probability ``p_stop_early`` (its systematic mistake: it writes only the
first ``ceil(N/2)`` terms, the warm start's greedy answer), and *drifts*: each term it writes is the previous
written one plus the step, but slips by ±1 with probability ``p_slip``, and every later term follows the
slipped one. A whole, right answer comes out ``(1 − p_stop_early)·(1 − p_slip)^N`` of the time (about 4%).
"""

from __future__ import annotations

import random
import re

from oatlike.tasks.base import Task
from oatlike.tasks.config import ProgressionTaskConfig

_PROMPT = re.compile(r"^\s*from\s+(\d+)\s+by\s+(\d+)\s+for\s+(\d+)\s*:\s*$")


class ProgressionTask(Task):
    """Write the next ``min_terms``..``max_terms`` terms of ``start, start + step, ...``."""

    name = "progression"
    prompt_form = "'from START by STEP for N:' (whole numbers, e.g. 'from 7 by 3 for 6:')"

    def __init__(self, config: ProgressionTaskConfig | None = None) -> None:
        config = config or ProgressionTaskConfig()
        super().__init__(config)
        self.max_start, self.max_step = config.max_start, config.max_step
        self.min_terms, self.max_terms = config.min_terms, config.max_terms
        self.p_stop_early, self.p_slip, self.noise_per_step = config.p_stop_early, config.p_slip, config.noise_per_step

    def all_problems(self) -> list[str]:
        return [
            f"from {start} by {step} for {terms}:"
            for start in range(self.max_start + 1)
            for step in range(1, self.max_step + 1)
            for terms in range(self.min_terms, self.max_terms + 1)
        ]

    @staticmethod
    def parse(prompt: str) -> tuple[int, int, int]:
        """``(start, step, N)`` of a prompt."""
        match = _PROMPT.match(prompt)
        if match is None or int(match.group(3)) < 1:
            raise ValueError(f"not a progression prompt: {prompt!r} (expected 'from 7 by 3 for 6:')")
        start, step, terms = (int(g) for g in match.groups())
        return start, step, terms

    def terms(self, prompt: str) -> list[str]:
        start, step, terms = self.parse(prompt)
        return [str(start + i * step) for i in range(1, terms + 1)]

    def best_response(self, prompt: str) -> str:
        return " " + " ".join(self.terms(prompt))

    def utility(self, prompt: str, response: str) -> float:
        target, written = self.terms(prompt), response.split()
        right = sum(w == t for w, t in zip(written, target, strict=False))
        return right / max(len(written), len(target))

    def annotator_noise(self, prompt: str, response: str) -> float:
        _, step, _ = self.parse(prompt)
        return 1.0 + self.noise_per_step * (step - 1)

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        start, step, terms = self.parse(prompt)
        count = -(-terms // 2) if rng.random() < self.p_stop_early else terms
        written, value = [], start
        for _ in range(count):
            value += step + (rng.choice((-1, 1)) if rng.random() < self.p_slip else 0)
            written.append(str(value))
        return " " + " ".join(written)
