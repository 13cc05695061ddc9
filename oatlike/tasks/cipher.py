"""A shift cipher with a deceptive echo: ``"code c a b e:"`` -> ``" f d e h"`` (every letter moved ``shift``
places along a fixed alphabet).

Utility (a deceptive local optimum): the right cipher scores 1; an *echo* of the input (the word itself,
the safe non-answer) scores ``echo_utility`` (0.4); anything else scores ``0.5·f²``, ``f`` the fraction of
positions holding the right cipher letter, over the longer of the response and the word. So the echo is a
local optimum in edit space: an echo with one letter ciphered has ``f = 1/L`` and scores at most 0.5/9 ≈ 0.06,
far below the echo, and every answer short of the whole cipher scores below 0.5·((L−1)/L)² < 0.4; only the
complete cipher beats the echo. Reinforcing what is sampled most (the echo, and partial ciphers losing to it)
is the wrong move.

Structure shared across prompts: one key (``shift``) for every prompt, so a letter's cipher learnt on one
word holds on every word.

Demonstrator: echoes the word with probability ``p_echo`` (its systematic mistake and the warm start's
greedy answer); otherwise it ciphers each letter with probability ``p_letter`` and leaves it as it is
(echoes it) otherwise, so a whole cipher comes out only ``(1 − p_echo)·p_letter^L`` of the time (about 4% over
3-6 letters by default).
"""

from __future__ import annotations

import random
import re

from oatlike.seeding import stable_seed
from oatlike.tasks.base import Task, distinct_prompts
from oatlike.tasks.config import CipherTaskConfig

ALPHABET = "abcdefghilmnopstuvwxyz"
"""The cipher's letters: those the shared tokenizer writes as one token each with a leading space."""
_PROMPT = re.compile(rf"^\s*code((?:\s+[{ALPHABET}])+)\s*:\s*$")
PARTIAL_WEIGHT = 0.5
"""A partial cipher scores ``PARTIAL_WEIGHT·f²`` (below the echo's 0.4 until it is complete)."""


def encipher(letters: list[str], shift: int) -> list[str]:
    """Each letter moved ``shift`` places along :data:`ALPHABET` (wrapping around)."""
    return [ALPHABET[(ALPHABET.index(c) + shift) % len(ALPHABET)] for c in letters]


class CipherTask(Task):
    """Encipher a word of ``min_length``..``max_length`` letters with one fixed shift."""

    name = "cipher"
    prompt_form = f"'code L L ...:' (letters of {ALPHABET!r} separated by spaces, e.g. 'code c a b e:')"

    def __init__(self, config: CipherTaskConfig | None = None) -> None:
        config = config or CipherTaskConfig()
        super().__init__(config)
        self.shift, self.echo_utility = config.shift, config.echo_utility
        self.min_length, self.max_length, self.num_prompts = config.min_length, config.max_length, config.num_prompts
        self.p_echo, self.p_letter = config.p_echo, config.p_letter

    def all_problems(self) -> list[str]:
        rng = random.Random(stable_seed(self.name, "problems", self.min_length, self.max_length))

        def draw() -> str:
            return (
                "code "
                + " ".join(rng.choice(ALPHABET) for _ in range(rng.randint(self.min_length, self.max_length)))
                + ":"
            )

        return distinct_prompts(draw, self.num_prompts)

    @staticmethod
    def letters(prompt: str) -> list[str]:
        match = _PROMPT.match(prompt)
        if match is None:
            raise ValueError(f"not a cipher prompt: {prompt!r} (expected 'code c a b e:')")
        return match.group(1).split()

    def best_response(self, prompt: str) -> str:
        return " " + " ".join(encipher(self.letters(prompt), self.shift))

    def utility(self, prompt: str, response: str) -> float:
        word, answer = self.letters(prompt), response.split()
        target = encipher(word, self.shift)
        if answer == target:
            return 1.0
        if answer == word:
            return self.echo_utility
        matches = sum(a == t for a, t in zip(answer, target, strict=False))
        return PARTIAL_WEIGHT * (matches / max(len(answer), len(target))) ** 2

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        word = self.letters(prompt)
        if rng.random() < self.p_echo:
            return " " + " ".join(word)
        target = encipher(word, self.shift)
        return " " + " ".join(t if rng.random() < self.p_letter else c for c, t in zip(word, target, strict=True))
