"""Choosing from a menu: a many-armed bandit per prompt, ``"menu d7 a3 b9 ...:"`` -> ``" a3"``.

Every item is a letter (its kind) and a digit (its grade), e.g. ``d7``; its hidden quality is
``q = 0.6·A[letter] + 0.4·B[digit]``, with ``A`` and ``B`` fixed rankings of the 8 kinds and 10 grades
(spread evenly over [0, 1], in an order that is neither alphabetical nor numeric; no two items tie). The
same tables hold on every prompt: structure shared across prompts, so what a duel teaches about ``a`` or
``7`` on one menu transfers to every menu, and a reward model can generalise.

Utility: a response naming one item of the menu scores ``r²``, ``r = (q − q_min) / (q* − q_min)`` its quality
between the menu's worst (0) and best (1) item; anything else scores 0. So each prompt offers
``menu_size`` (16) discrete options, exactly one of utility 1, and the squared scale leaves a random pick
about 1/3: best-arm identification (find the one) and explore-and-exploit (pick good ones meanwhile) differ.

Heteroscedastic annotators: items of the two *controversial* kinds (``a`` and ``e``, middling ones) are
judged with ``controversial_noise`` (8) times the oracle's Bradley–Terry temperature, near a coin flip;
the others are judged as decisively as the oracle is set.

Demonstrator: orders the first item listed with probability ``p_first`` (its systematic mistake: it goes
by position, not quality); otherwise a random item other than the menu's best (it never tries the
excellent, unfamiliar dish). The warm start therefore picks the best item only when it happens to come
first (about 1/16 of ``p_first``) or by its own slack.
"""

from __future__ import annotations

import random
import re

from oatlike.seeding import stable_seed
from oatlike.tasks.base import Task, distinct_prompts
from oatlike.tasks.config import MenuTaskConfig

KINDS = "abcdefgh"
"""The items' letters (each one token of the shared tokenizer with a leading space)."""
GRADES = "0123456789"
CONTROVERSIAL = "ae"
"""The kinds whose annotators disagree (``annotator_noise`` = ``controversial_noise``)."""
_ITEM = rf"[{KINDS}][{GRADES}]"
_PROMPT = re.compile(rf"^\s*menu((?:\s+{_ITEM})+)\s*:\s*$")


KIND_ORDER = "hgfeabdc"
"""The kinds from worst to best: ``A[kind]`` is its rank over 7 (h 0, ..., a 4/7, ..., c 1)."""
GRADE_ORDER = "0351264978"
"""The grades from worst to best: ``B[grade]`` is its rank over 9 (0 0, 3 1/9, ..., 8 1); not digit order."""
KIND_VALUE = {kind: rank / (len(KIND_ORDER) - 1) for rank, kind in enumerate(KIND_ORDER)}
GRADE_VALUE = {grade: rank / (len(GRADE_ORDER) - 1) for rank, grade in enumerate(GRADE_ORDER)}


def quality(item: str) -> float:
    """An item's hidden quality ``0.6·A[kind] + 0.4·B[grade]`` in [0, 1] (no two items tie)."""
    return 0.6 * KIND_VALUE[item[0]] + 0.4 * GRADE_VALUE[item[1]]


class MenuTask(Task):
    """Pick the best of ``menu_size`` items whose qualities follow shared hidden features."""

    name = "menu"
    prompt_form = f"'menu XD XD ...:' (items: a letter of {KINDS!r} and a digit, e.g. 'menu d7 a3 b9:')"

    def __init__(self, config: MenuTaskConfig | None = None) -> None:
        config = config or MenuTaskConfig()
        super().__init__(config)
        self.menu_size, self.num_prompts = config.menu_size, config.num_prompts
        self.p_first, self.controversial_noise = config.p_first, config.controversial_noise

    def all_problems(self) -> list[str]:
        items = [kind + grade for kind in KINDS for grade in GRADES]
        rng = random.Random(stable_seed(self.name, "problems", self.menu_size))
        return distinct_prompts(lambda: "menu " + " ".join(rng.sample(items, self.menu_size)) + ":", self.num_prompts)

    @staticmethod
    def items(prompt: str) -> list[str]:
        match = _PROMPT.match(prompt)
        if match is None:
            raise ValueError(f"not a menu prompt: {prompt!r} (expected 'menu d7 a3 b9:')")
        items = match.group(1).split()
        if len(set(items)) < 2 or len(set(items)) < len(items):
            raise ValueError(f"a menu needs two or more distinct items: {prompt!r}")
        return items

    def best_response(self, prompt: str) -> str:
        return " " + max(self.items(prompt), key=quality)

    def utility(self, prompt: str, response: str) -> float:
        items, choice = self.items(prompt), response.strip()
        if choice not in items:
            return 0.0
        worst, best = min(map(quality, items)), max(map(quality, items))
        return ((quality(choice) - worst) / (best - worst)) ** 2

    def annotator_noise(self, prompt: str, response: str) -> float:
        kind = response.strip()[:1]
        return self.controversial_noise if kind and kind in CONTROVERSIAL else 1.0

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        items = self.items(prompt)
        if rng.random() < self.p_first:
            return " " + items[0]
        best = max(items, key=quality)
        return " " + rng.choice([item for item in items if item != best])
