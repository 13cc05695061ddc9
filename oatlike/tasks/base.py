"""Built-in tasks: prompts whose true utility is known in code.

A task is a contextual dueling bandit with an exact utility: for every prompt (context) and any response
(arm) ``utility(prompt, response)`` in [0, 1] is computable. This lets the preference oracle simulate a
population of annotators (Bradley–Terry on the utility gap, see :mod:`oatlike.oracles.bt`) and makes regret
exact. Each task also has

* deterministic ``train`` / ``tuning`` / ``report`` prompt splits that never overlap (``eval`` is the one
  the run evaluates on, ``task.eval_split``: the report split unless a benchmark tunes on the tuning one);
* ``demonstration(prompt, rng)``: an *imperfect* demonstrator whose answers teach the warm-start SFT
  policy a mediocre, non-trivial level (systematic mistakes, so that greedy decoding of the SFT model
  is mediocre too, not only its samples);
* reference answers of middling quality (one demonstration per prompt, seeded by the prompt), which
  the evaluation compares the policy's greedy answers against (win rate);
* optionally, heteroscedastic annotators: ``annotator_noise(prompt, response)`` scales the rule oracle's
  Bradley–Terry temperature per response (1 everywhere by default), so some responses or prompts are judged
  far less reliably than others (aleatoric noise that no amount of querying removes).

Utilities parse the prompt text itself, so an oracle needs only (prompt, response) strings and can run
anywhere (a Ray actor, an HTTP server).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from oatlike.errors import ConfigError
from oatlike.seeding import stable_seed
from oatlike.tasks.config import TASKS, TaskConfig

SPLITS = ("train", "tuning", "report", "eval")
"""The prompt splits of a task; ``eval`` names the one ``task.eval_split`` chooses (``report`` by default)."""


@dataclass(frozen=True)
class PromptItem:
    """One prompt of a task or data set.

    ``text`` is the raw prompt (before any chat template); ``reference`` the dataset's reference answer
    (``None`` when the data has none).
    """

    text: str
    reference: str | None = None


def distinct_prompts(draw: Callable[[], str], count: int) -> list[str]:
    """Up to ``count`` distinct prompts from ``draw()``, in the order first drawn. It gives up after
    ``20 × count`` draws, so options that allow fewer distinct prompts give all there are (``split`` then
    says when too few are left) instead of drawing forever."""
    problems: dict[str, None] = {}
    for _ in range(20 * count):
        if len(problems) >= count:
            break
        problems[draw()] = None
    return list(problems)


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
        self.num_tuning = config.num_tuning
        self.eval_split = config.eval_split

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

    def annotator_noise(self, prompt: str, response: str) -> float:
        """How much less reliably annotators judge ``response`` than the population's norm (> 0; default 1).

        The rule oracle multiplies its Bradley–Terry temperature ``T`` for a pair by
        ``sqrt((s_a² + s_b²) / 2)`` of the two responses' values ``s`` (logistic noise of scale ``T·s`` on
        each response's perceived utility, as in Thurstone's case V with unequal variances), so a pair of
        default responses keeps ``T`` exactly. A task with controversial responses or hard prompts returns
        more than 1 for them."""
        return 1.0

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
        """The ``train``, ``tuning``, ``report`` or ``eval`` prompts with their reference answers.

        The shuffled prompts are cut into ``report`` (the first ``num_eval``), ``tuning`` (the next
        ``num_tuning``; none by default) and ``train`` (the rest): disjoint and deterministic, so
        hyper-parameters chosen on ``tuning`` are reported on prompts they never saw. With no tuning split
        the cut is the one the tasks always had. ``eval`` is the split the run evaluates on
        (``task.eval_split``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if split == "eval":
            split = self.eval_split
        problems = list(self.all_problems())
        random.Random(stable_seed(self.name, "split", self.seed)).shuffle(problems)
        held_out = self.num_eval + self.num_tuning
        if held_out >= len(problems):
            raise ConfigError(
                "task.num_eval",
                f"{self.num_eval} (+ task.num_tuning={self.num_tuning}) leaves no training prompts "
                f"({len(problems)} in all); lower it",
            )
        bounds = {"report": (0, self.num_eval), "tuning": (self.num_eval, held_out), "train": (held_out, None)}
        start, stop = bounds[split]
        return [PromptItem(p, self.reference(p)) for p in problems[start:stop]]

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
