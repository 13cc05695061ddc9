"""Sorting a list of numbers: ``"sort 12 5 40 7:"`` -> ``" 5 7 12 40"``.

Utility (partial credit): ``content * order`` where ``content`` is the multiset overlap between the
response's numbers and the prompt's, over the longer of the two lists, and ``order`` the fraction of
adjacent pairs of the response in non-decreasing numeric order (1 for fewer than two numbers). A sorted
permutation of the input scores 1.

Demonstrator: with probability ``p_string_order`` it sorts the numbers *as strings* (the classic bug:
"12" < "5"), otherwise numerically; with probability ``p_slip`` it then swaps one random adjacent pair.
String order is the more frequent behaviour by default, so the SFT model's greedy answer is wrong
whenever the list mixes one- and two-digit numbers.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter

from oatlike.seeding import stable_seed
from oatlike.tasks.base import Task, distinct_prompts
from oatlike.tasks.config import SortingTaskConfig

_PROMPT = re.compile(r"^\s*sort((?:\s+\d+)+)\s*:\s*$")


def order_score(numbers: list[int]) -> float:
    """Fraction of adjacent pairs in non-decreasing order (1.0 for fewer than two numbers)."""
    if len(numbers) < 2:
        return 1.0
    return sum(a <= b for a, b in itertools.pairwise(numbers)) / (len(numbers) - 1)


def content_score(numbers: list[int], target: list[int]) -> float:
    """Multiset overlap of ``numbers`` with ``target`` over the longer length."""
    overlap = sum((Counter(numbers) & Counter(target)).values())
    return overlap / max(len(numbers), len(target), 1)


class SortingTask(Task):
    """Sort ``min_length``..``max_length`` numbers in [0, ``max_value``] ascending."""

    name = "sorting"
    prompt_form = "'sort N N ...:' (whole numbers, e.g. 'sort 12 5 40 7:')"

    def __init__(self, config: SortingTaskConfig | None = None) -> None:
        config = config or SortingTaskConfig()
        super().__init__(config)
        self.min_length, self.max_length, self.max_value = config.min_length, config.max_length, config.max_value
        self.num_prompts = config.num_prompts
        self.p_string_order = config.p_string_order
        self.p_slip = config.p_slip

    def all_problems(self) -> list[str]:
        rng = random.Random(stable_seed(self.name, "problems", self.min_length, self.max_length, self.max_value))

        def draw() -> str:
            length = rng.randint(self.min_length, self.max_length)
            return "sort " + " ".join(str(rng.randint(0, self.max_value)) for _ in range(length)) + ":"

        return distinct_prompts(draw, self.num_prompts)

    @staticmethod
    def numbers(prompt: str) -> list[int]:
        match = _PROMPT.match(prompt)
        if match is None:
            raise ValueError(f"not a sorting prompt: {prompt!r} (expected 'sort 3 1 2:')")
        return [int(x) for x in match.group(1).split()]

    def best_response(self, prompt: str) -> str:
        return " " + " ".join(map(str, sorted(self.numbers(prompt))))

    def utility(self, prompt: str, response: str) -> float:
        target = self.numbers(prompt)
        tokens = response.split()
        numbers = [int(t) for t in tokens if t.isdigit()]
        if not tokens or not numbers:
            return 0.0
        junk_penalty = len(numbers) / len(tokens)
        return content_score(numbers, target) * order_score(numbers) * junk_penalty

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        numbers = self.numbers(prompt)
        ordered = sorted(numbers, key=str) if rng.random() < self.p_string_order else sorted(numbers)
        if rng.random() < self.p_slip and len(ordered) > 1:
            i = rng.randrange(len(ordered) - 1)
            ordered[i], ordered[i + 1] = ordered[i + 1], ordered[i]
        return " " + " ".join(map(str, ordered))
