"""Configs of the built-in tasks (``task=arithmetic|sorting|none``) and of users' own (``task=custom``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from oatlike.schema import Registry, check, check_at_least, check_probability

TASKS = Registry("task")
"""The built-in tasks by name: their schema and their :class:`~oatlike.tasks.base.Task` class."""


@dataclass
class TaskConfig:
    """A built-in task with a known utility (``task=arithmetic``), or ``task=none`` for real data sets."""

    name: str = MISSING
    """Task name: arithmetic, sorting, custom (your own Task class: ``task.target``), or none (prompts from
    ``data`` only, no true utility)."""
    seed: int = 0
    """Seed of the task's train/eval split (independent of the run seed, so splits stay fixed)."""
    num_eval: int = 256
    """Number of held-out evaluation prompts."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "num_eval")


@TASKS.register("arithmetic", "oatlike.tasks.arithmetic:ArithmeticTask")
@dataclass
class ArithmeticTaskConfig(TaskConfig):
    """Two-digit addition with digit-wise partial credit; the demonstrator forgets carries 60% of the time."""

    name: str = "arithmetic"
    num_digits: int = 2
    """Digits of each operand (1..4)."""
    p_forget_carry: float = 0.6
    """Probability that the demonstrator forgets every carry (its systematic mistake)."""
    p_slip: float = 0.1
    """Probability that the demonstrator gets one random digit wrong."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.num_digits <= 4, "num_digits", f"must be in 1..4, got {self.num_digits}")
        check_probability(self, "p_forget_carry", "p_slip")


@TASKS.register("sorting", "oatlike.tasks.sorting:SortingTask")
@dataclass
class SortingTaskConfig(TaskConfig):
    """Sort 3-5 numbers in 0..20; the demonstrator sorts them as strings 60% of the time."""

    name: str = "sorting"
    min_length: int = 3
    """Fewest numbers in a list."""
    max_length: int = 5
    """Most numbers in a list."""
    max_value: int = 20
    """Numbers are drawn from 0..max_value (mixing one- and two-digit numbers makes string order wrong)."""
    num_prompts: int = 20000
    """Distinct prompts generated (train + eval)."""
    p_string_order: float = 0.6
    """Probability that the demonstrator sorts the numbers as strings (its systematic mistake)."""
    p_slip: float = 0.1
    """Probability that the demonstrator swaps one random adjacent pair."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 2, "min_length")
        check(self.max_length >= self.min_length, "max_length", "must be >= task.min_length")
        check_at_least(self, 1, "max_value")
        check(self.num_prompts > self.num_eval, "num_prompts", "must exceed task.num_eval")
        check_probability(self, "p_string_order", "p_slip")


@TASKS.register("none", "oatlike.tasks.base:no_task")
@dataclass
class NoTaskConfig(TaskConfig):
    """No built-in task: prompts come from ``data``, preferences from a model-based oracle."""

    name: str = "none"


@TASKS.register("custom", "oatlike.tasks.custom:load_custom_task")
@dataclass
class CustomTaskConfig(TaskConfig):
    """Your own task: a subclass of :class:`oatlike.tasks.base.Task` in your own module, built with this config
    (``task.options`` holds its own settings). Every part that uses a built-in task uses it: the rule oracle,
    the warm start, evaluation and regret."""

    name: str = "custom"
    target: str = MISSING
    """``module:Class`` (a module importable from the current folder or ``sys.path``) or ``path/to/file.py:Class``
    (relative paths are made absolute, so Ray workers on this machine find it too)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Your task's own settings, read by its constructor from ``config.options``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        module, colon, attribute = self.target.rpartition(":")
        form = f"must be module:Class or file.py:Class, got {self.target!r}"
        check(bool(colon and module and attribute), "target", form)
        if module.endswith(".py"):
            self.target = f"{Path(module).expanduser().resolve()}:{attribute}"
