"""Arithmetic with partial credit: ``"47+85="`` -> ``"132"``.

Utility (digit-wise partial credit, like grading a written sum): the response is read as an integer;
credit is the fraction of digit positions, aligned at the units, that match the true sum, over the longer
of the two numbers. A number followed by other text earns half its credit; no number earns 0.

Demonstrator (the imperfect teacher of the warm start): a student who *forgets to carry* with probability
``p_forget_carry`` (writes each column's sum mod 10, the leftmost column in full: 85+47 -> 122) and slips
on one random digit with probability ``p_slip``. Forgetting is the more frequent behaviour by default,
so the SFT model's greedy answer is the carry-less sum, right only on prompts that need no carry.
"""

from __future__ import annotations

import random
import re

from oatlike.tasks.base import Task
from oatlike.tasks.config import ArithmeticTaskConfig

_PROMPT = re.compile(r"^\s*(\d+)\s*\+\s*(\d+)\s*=\s*$")
_NUMBER = re.compile(r"^\s*(\d+)(.*)$", re.DOTALL)


def carry_free_sum(a: int, b: int) -> int:
    """Column-wise sum without carries; the leftmost column is written in full (85+47 -> 122)."""
    da, db = str(a)[::-1], str(b)[::-1]
    width = max(len(da), len(db))
    columns = [int(da[i] if i < len(da) else 0) + int(db[i] if i < len(db) else 0) for i in range(width)]
    digits = [str(c % 10) for c in columns[:-1]] + [str(columns[-1])]
    return int("".join(reversed(digits)))


def digit_credit(predicted: str, truth: str) -> float:
    """Fraction of digit positions (aligned at the units) where ``predicted`` matches ``truth``."""
    width = max(len(predicted), len(truth))
    p, t = predicted.rjust(width, " "), truth.rjust(width, " ")
    return sum(x == y for x, y in zip(p, t, strict=True)) / width


class ArithmeticTask(Task):
    """Addition of two ``num_digits``-digit numbers with digit-wise partial credit."""

    name = "arithmetic"
    prompt_form = "'A+B=' (two whole numbers, e.g. '47+85=')"

    def __init__(self, config: ArithmeticTaskConfig | None = None) -> None:
        config = config or ArithmeticTaskConfig()
        super().__init__(config)
        self.num_digits = config.num_digits
        self.p_forget_carry = config.p_forget_carry
        self.p_slip = config.p_slip

    def all_problems(self) -> list[str]:
        low, high = 10 ** (self.num_digits - 1) if self.num_digits > 1 else 0, 10**self.num_digits
        return [f"{a}+{b}=" for a in range(low, high) for b in range(low, high)]

    @staticmethod
    def operands(prompt: str) -> tuple[int, int]:
        match = _PROMPT.match(prompt)
        if match is None:
            raise ValueError(f"not an arithmetic prompt: {prompt!r} (expected 'A+B=')")
        return int(match.group(1)), int(match.group(2))

    def best_response(self, prompt: str) -> str:
        a, b = self.operands(prompt)
        return str(a + b)

    def utility(self, prompt: str, response: str) -> float:
        truth = self.best_response(prompt)
        match = _NUMBER.match(response)
        if match is None:
            return 0.0
        credit = digit_credit(match.group(1).lstrip("0") or "0", truth)
        return credit if not match.group(2).strip() else 0.5 * credit

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        a, b = self.operands(prompt)
        answer = str(carry_free_sum(a, b) if rng.random() < self.p_forget_carry else a + b)
        if rng.random() < self.p_slip:
            position = rng.randrange(len(answer))
            answer = answer[:position] + str(rng.randrange(10)) + answer[position + 1 :]
        return answer
