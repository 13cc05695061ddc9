"""A user's own task, outside the package (``task=custom task.target=.../reverse_task.py:ReverseTask``).

``reverse abcd:`` -> ``dcba``; credit per position; the demonstrator swaps the first two letters of its
answer (a systematic mistake) with probability ``options.p_swap``.
"""

from __future__ import annotations

import itertools
import random

from oatlike.tasks.base import Task
from oatlike.tasks.config import CustomTaskConfig

LETTERS = "abcdef"


class ReverseTask(Task):
    name = "reverse"
    prompt_form = "'reverse LETTERS:' (e.g. 'reverse abcd:')"

    def __init__(self, config: CustomTaskConfig) -> None:
        super().__init__(config)
        self.length = int(config.options.get("length", 4))
        self.p_swap = float(config.options.get("p_swap", 0.7))

    def all_problems(self) -> list[str]:
        return [f"reverse {''.join(letters)}:" for letters in itertools.product(LETTERS, repeat=self.length)]

    @staticmethod
    def word(prompt: str) -> str:
        if not (prompt.startswith("reverse ") and prompt.endswith(":")):
            raise ValueError(f"not a reverse prompt: {prompt!r}")
        return prompt[len("reverse ") : -1]

    def best_response(self, prompt: str) -> str:
        return self.word(prompt)[::-1]

    def utility(self, prompt: str, response: str) -> float:
        truth, answer = self.best_response(prompt), response.strip()
        return sum(a == b for a, b in zip(answer, truth, strict=False)) / max(len(truth), len(answer))

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        answer = self.best_response(prompt)
        return answer[1] + answer[0] + answer[2:] if rng.random() < self.p_swap else answer
