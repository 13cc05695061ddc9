"""Built-in tasks: prompts whose true utility is known in code.

A task is a contextual dueling bandit with an exact utility: for every prompt (context) and any response
(arm) ``utility(prompt, response)`` in [0, 1] is computable. This lets the preference oracle simulate a
population of annotators (Bradley–Terry on the utility gap, see :mod:`oatlike.oracles.bt`) and makes regret
exact. Each task also has

* deterministic ``train`` / ``eval`` prompt splits that never overlap;
* ``demonstration(prompt, rng)``: an *imperfect* demonstrator whose answers teach the warm-start SFT
  policy a mediocre, non-trivial level (systematic mistakes, so that greedy decoding of the SFT model
  is mediocre too, not only its samples);
* reference answers of middling quality (one demonstration per prompt, seeded by the prompt), which
  the evaluation compares the policy's greedy answers against (win rate).

Utilities parse the prompt text itself, so an oracle needs only (prompt, response) strings and can run
anywhere (a Ray actor, an HTTP server).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

from oatlike.errors import ConfigError
from oatlike.seeding import stable_seed
from oatlike.tasks.config import TASKS, TaskConfig


@dataclass(frozen=True)
class PromptItem:
    """One prompt of a task or data set.

    ``text`` is the raw prompt (before any chat template); ``reference`` the dataset's reference answer
    (``None`` when the data has none).
    """

    text: str
    reference: str | None = None


class Task(ABC):
    """A built-in task: prompts, an exact utility, and an imperfect demonstrator."""

    name: str
    prompt_form: str = "the task's prompts"
    """What the task's prompts look like (its utility parses them), for messages about prompts that are not."""
    source_digest: str | None = None
    """A digest of a user's task module (``task=custom``), part of its warm start's cache key."""

    def __init__(self, config: TaskConfig) -> None:
        self.seed = config.seed
        self.num_eval = config.num_eval

    @abstractmethod
    def all_problems(self) -> list[str]:
        """Every prompt text of the task in a fixed order (train and eval are drawn from it)."""

    @abstractmethod
    def utility(self, prompt: str, response: str) -> float:
        """True utility of ``response`` to ``prompt``, in [0, 1]; 1 is a perfect answer."""

    @abstractmethod
    def best_response(self, prompt: str) -> str:
        """A response of utility 1."""

    @abstractmethod
    def demonstration(self, prompt: str, rng: random.Random) -> str:
        """An answer of the imperfect demonstrator (used for warm-start SFT and as reference)."""

    def best_utility(self, prompt: str) -> float:
        """u*, the utility of the prompt's best response (the regret's yardstick)."""
        return self.utility(prompt, self.best_response(prompt))

    def fits(self, prompt: str) -> bool:
        """Whether the utility can score responses to ``prompt`` (it parses the prompt: data files are checked
        with this when they are read, rather than failing at the first evaluation)."""
        try:
            self.best_response(prompt)
        except ValueError:
            return False
        return True

    def reference(self, prompt: str) -> str:
        """The prompt's reference answer: one demonstration, seeded by the prompt (middling quality)."""
        return self.demonstration(prompt, random.Random(stable_seed(self.name, "reference", prompt)))

    def split(self, split: str) -> list[PromptItem]:
        """The ``train`` or ``eval`` prompts with their reference answers; disjoint and deterministic."""
        if split not in ("train", "eval"):
            raise ValueError(f"unknown split {split!r}; use 'train' or 'eval'")
        problems = list(self.all_problems())
        random.Random(stable_seed(self.name, "split", self.seed)).shuffle(problems)
        if self.num_eval >= len(problems):
            raise ConfigError(
                "task.num_eval", f"{self.num_eval} leaves no training prompts ({len(problems)} in all); lower it"
            )
        chosen = problems[: self.num_eval] if split == "eval" else problems[self.num_eval :]
        return [PromptItem(p, self.reference(p)) for p in chosen]

    def corpus(self, limit: int = 4000) -> list[str]:
        """Prompt + demonstration texts, for training a tokenizer."""
        rng = random.Random(stable_seed(self.name, "corpus"))
        items = self.split("train")[:limit]
        return [item.text + self.demonstration(item.text, rng) for item in items]


def build_task(config: TaskConfig) -> Task | None:
    """The built-in task of ``config`` (``None`` for ``task=none``)."""
    task: Task | None = TASKS.build(config)
    return task


def no_task(config: TaskConfig) -> None:
    """``task=none``: prompts come from ``data``, there is no true utility."""
    return None
