"""Configs of the built-in tasks (``task=arithmetic|sorting|cipher|menu|progression|none``) and of users' own
(``task=custom``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from oatlike.schema import Registry, check, check_at_least, check_choice, check_probability

TASKS = Registry("task")
"""The built-in tasks by name: their schema and their :class:`~oatlike.tasks.base.Task` class."""


@dataclass
class TaskConfig:
    """A built-in task with a known utility (``task=arithmetic``), or ``task=none`` for real data sets."""

    name: str = MISSING
    """Task name: arithmetic, sorting, cipher, menu, progression (testbeds where exploration matters:
    docs/tasks.md), custom (your own Task class: ``task.target``), or none (prompts from
    ``data`` only, no true utility)."""
    seed: int = 0
    """Seed of the task's train / tuning / report split (independent of the run seed, so splits stay fixed)."""
    num_eval: int = 256
    """Number of held-out report prompts (the evaluation's, unless ``eval_split=tuning``)."""
    num_tuning: int = 0
    """Number of held-out tuning prompts, for choosing hyper-parameters apart from the report prompts (taken
    from the training prompts; 0: no tuning split, the train / report cut the tasks always had)."""
    eval_split: str = "report"
    """The held-out split the run evaluates on: report, or tuning (a benchmark choosing hyper-parameters)."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "num_eval")
        check_at_least(self, 0, "num_tuning")
        check_choice(self.eval_split, ("report", "tuning"), "eval_split")
        if self.eval_split == "tuning":
            check(self.num_tuning > 0, "eval_split", "tuning needs task.num_tuning > 0 (the tuning prompts)")


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


@TASKS.register("cipher", "oatlike.tasks.cipher:CipherTask")
@dataclass
class CipherTaskConfig(TaskConfig):
    """A shift cipher whose echo of the input is a trap (0.4) that small edits make worse; the demonstrator
    echoes half the time and ciphers each letter with probability 0.55 otherwise."""

    name: str = "cipher"
    num_tuning: int = 256
    shift: int = 3
    """Places each letter moves along the cipher's 22-letter alphabet (1..21; the same key for every prompt)."""
    min_length: int = 3
    """Fewest letters in a word."""
    max_length: int = 6
    """Most letters in a word."""
    num_prompts: int = 20000
    """Distinct prompts generated (train + tuning + report)."""
    echo_utility: float = 0.4
    """Utility of echoing the word unchanged (the deceptive local optimum)."""
    p_echo: float = 0.5
    """Probability that the demonstrator echoes the word (its systematic mistake)."""
    p_letter: float = 0.55
    """Otherwise, the probability that it ciphers each letter (it leaves the letter as it is if not)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.shift <= 21, "shift", f"must be in 1..21, got {self.shift}")
        check_at_least(self, 1, "min_length")
        check(self.max_length >= self.min_length, "max_length", "must be >= task.min_length")
        check(self.num_prompts > self.num_eval + self.num_tuning, "num_prompts", "must exceed num_eval + num_tuning")
        check(0.0 < self.echo_utility < 1.0, "echo_utility", f"must be in (0, 1), got {self.echo_utility}")
        check_probability(self, "p_echo", "p_letter")


@TASKS.register("menu", "oatlike.tasks.menu:MenuTask")
@dataclass
class MenuTaskConfig(TaskConfig):
    """Pick the best of 16 menu items whose hidden qualities follow features shared by all menus; the
    demonstrator goes by position and never picks the best; two kinds of item are controversial."""

    name: str = "menu"
    num_tuning: int = 256
    menu_size: int = 16
    """Items on each menu (2..80, drawn from the 80 items: 8 kinds x 10 grades)."""
    num_prompts: int = 20000
    """Distinct menus generated (train + tuning + report)."""
    p_first: float = 0.5
    """Probability that the demonstrator picks the first item listed (its systematic mistake); otherwise it
    picks a random item other than the best."""
    controversial_noise: float = 8.0
    """Factor on the annotators' Bradley–Terry temperature for controversial items (kinds a and e)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(2 <= self.menu_size <= 80, "menu_size", f"must be in 2..80, got {self.menu_size}")
        check(self.num_prompts > self.num_eval + self.num_tuning, "num_prompts", "must exceed num_eval + num_tuning")
        check_probability(self, "p_first")
        check(self.controversial_noise > 0, "controversial_noise", f"must be > 0, got {self.controversial_noise}")


@TASKS.register("progression", "oatlike.tasks.progression:ProgressionTask")
@dataclass
class ProgressionTaskConfig(TaskConfig):
    """Continue an arithmetic progression for 4-7 terms; the demonstrator stops halfway 70% of the time and
    slips by one 30% of the terms; annotators are noisier on long strides."""

    name: str = "progression"
    num_tuning: int = 256
    max_start: int = 49
    """Starts are 0..max_start."""
    max_step: int = 7
    """Steps are 1..max_step."""
    min_terms: int = 4
    """Fewest terms asked for."""
    max_terms: int = 7
    """Most terms asked for."""
    p_stop_early: float = 0.7
    """Probability that the demonstrator writes only the first half of the terms (its systematic mistake)."""
    p_slip: float = 0.3
    """Probability that a term it writes is off by one (the terms after it follow the slipped one)."""
    noise_per_step: float = 0.5
    """Annotator noise grows with the step: their temperature is (1 + noise_per_step·(step − 1)) times the oracle's."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 0, "max_start")
        check_at_least(self, 1, "max_step", "min_terms")
        check(self.max_terms >= self.min_terms, "max_terms", "must be >= task.min_terms")
        prompts = (self.max_start + 1) * self.max_step * (self.max_terms - self.min_terms + 1)
        held_out = self.num_eval + self.num_tuning
        check(prompts > held_out, "num_eval", f"+ num_tuning must be below the {prompts} prompts")
        check_probability(self, "p_stop_early", "p_slip")
        check_at_least(self, 0, "noise_per_step")


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
