"""Config of the prompt source (``data=task|files|tldr``)."""

from __future__ import annotations

from dataclasses import dataclass

from oatlike.schema import check, check_at_least, check_choice


@dataclass
class DataConfig:
    """Where prompts come from: the task (``data=task``) or ``datasets.load_dataset`` (``data=files``)."""

    source: str = "task"
    """``task``: the built-in task's prompts; ``dataset``: ``datasets.load_dataset(path)``."""
    path: str | None = None
    """Hub dataset name, local folder, or local json/jsonl/parquet file (a glob is allowed)."""
    subset: str | None = None
    """Dataset configuration name passed to ``load_dataset`` (``name=``), if any."""
    train_split: str = "train"
    """Split to draw training prompts from."""
    eval_split: str = "validation"
    """Split of held-out evaluation prompts (for a single local file, a slice of it: see ``eval_fraction``)."""
    eval_fraction: float = 0.05
    """When the data has no ``eval_split``, hold out this fraction of the training split for evaluation."""
    prompt_column: str = "prompt"
    """Column holding the prompt text."""
    reference_column: str | None = None
    """Column holding a reference answer (win rates are measured against it); ``null`` for none."""
    chat_template: bool = False
    """Wrap each prompt as a user message with the tokenizer's chat template."""
    system_prompt: str | None = None
    """Optional system message placed before the prompt when ``chat_template`` is on."""
    max_prompt_tokens: int = 256
    """Prompts longer than this (after the template) are skipped and counted, never truncated."""
    max_train_prompts: int | None = None
    """Use at most this many training prompts (``null``: all)."""
    max_eval_prompts: int | None = 256
    """Use at most this many evaluation prompts (``null``: all)."""

    def __post_init__(self) -> None:
        check_choice(self.source, ("task", "dataset"), "source")
        check(
            self.source == "task" or bool(self.path),
            "path",
            "data.source=dataset needs data.path (a hub name, folder or json/jsonl/parquet file)",
        )
        check_at_least(self, 1, "max_prompt_tokens")
        check(0.0 < self.eval_fraction < 1.0, "eval_fraction", f"must be in (0, 1), got {self.eval_fraction}")
        for key in ("max_train_prompts", "max_eval_prompts"):
            value = getattr(self, key)
            check(value is None or value >= 1, key, f"must be >= 1 or null, got {value}")
