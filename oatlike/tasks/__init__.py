"""Built-in tasks with a known utility (see :mod:`oatlike.tasks.base`)."""

from __future__ import annotations

from typing import Any

from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.tasks.base import PromptItem, Task
from oatlike.tasks.sorting import SortingTask

TASKS: dict[str, type[Task]] = {"arithmetic": ArithmeticTask, "sorting": SortingTask}


def build_task(name: str, **kwargs: Any) -> Task:
    """The built-in task ``name`` with its options."""
    return TASKS[name](**kwargs)


__all__ = ["TASKS", "ArithmeticTask", "PromptItem", "SortingTask", "Task", "build_task"]
