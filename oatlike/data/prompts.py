"""Training and evaluation prompts, encoded for the policy.

Sources (``data.source``):

* ``task``: the built-in task's train / eval splits with their reference answers;
* ``dataset``: ``datasets.load_dataset`` on a hub name, a local folder, or local json / jsonl / parquet /
  csv files, with configurable prompt and reference columns (the TL;DR-with-reference layout that
  online-alignment papers use: ``prompt`` plus a reference summary column). When the data has no
  evaluation split, a seeded ``data.eval_fraction`` of the training split is held out.

Local files are checked before ``load_dataset`` reads them (:mod:`oatlike.data.files`: encoding, NUL bytes,
one format per folder, the first bad JSON line). With a built-in task, every prompt must
be one the task's utility can score: the first that is not is named (file, row, line) when the data is
read, before any model is built, not at the first evaluation.

Every prompt is encoded once (with the tokenizer's chat template when ``data.chat_template``). Empty
prompts and prompts longer than ``data.max_prompt_tokens`` are skipped and counted, never truncated.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from oatlike.data import files as datafiles
from oatlike.data.config import DataConfig
from oatlike.data.files import LOCAL_FORMATS
from oatlike.errors import DataError, first_line
from oatlike.tasks.base import PromptItem, Task
from oatlike.types import Prompt

log = logging.getLogger(__name__)

FILE_SUFFIXES = {*LOCAL_FORMATS, ".txt", ".tsv", ".gz", ".zip", ".arrow", ".xlsx"}


@dataclass
class PromptSet:
    """Encoded prompts of one split, with the counts of prompts skipped."""

    split: str
    prompts: list[Prompt]
    skipped_empty: int = 0
    skipped_too_long: int = 0

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class PromptStream:
    """Endless, seeded, epoch-wise shuffled draws from a prompt set."""

    prompts: Sequence[Prompt]
    seed: int = 0
    epoch: int = 0
    _order: list[int] = field(default_factory=list)

    def next(self, count: int) -> list[Prompt]:
        batch: list[Prompt] = []
        while len(batch) < count:
            if not self._order:
                rng = np.random.default_rng([self.seed, self.epoch])
                self._order = rng.permutation(len(self.prompts)).tolist()
                self.epoch += 1
            batch.append(self.prompts[self._order.pop()])
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The position in the stream: the epoch and what is left of its order."""
        return {"seed": self.seed, "epoch": self.epoch, "order": list(self._order)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.epoch, self._order = state["seed"], state["epoch"], list(state["order"])


def encode_prompts(
    items: Sequence[PromptItem], tokenizer: PreTrainedTokenizerBase, config: DataConfig, split: str
) -> PromptSet:
    """Encode ``items`` (chat template if configured); skip and count empty and over-long prompts."""
    prompts, empty, too_long = [], 0, 0
    for item in items:
        if not item.text or not item.text.strip():
            empty += 1
            continue
        token_ids = _encode(item.text, tokenizer, config)
        if len(token_ids) > config.max_prompt_tokens:
            too_long += 1
            continue
        prompts.append(Prompt(item.text, tuple(token_ids), item.reference))
    if too_long or empty:
        log.warning(
            "%s prompts: skipped %d longer than data.max_prompt_tokens=%d and %d empty (%d kept)",
            split,
            too_long,
            config.max_prompt_tokens,
            empty,
            len(prompts),
        )
    if not prompts:
        raise DataError(
            f"no usable {split} prompts: {len(items)} read, {empty} empty, {too_long} longer than "
            f"data.max_prompt_tokens={config.max_prompt_tokens}; raise data.max_prompt_tokens or check the data"
        )
    return PromptSet(split, prompts, empty, too_long)


def _encode(text: str, tokenizer: PreTrainedTokenizerBase, config: DataConfig) -> list[int]:
    if not config.chat_template:
        return list(tokenizer(text).input_ids)
    if tokenizer.chat_template is None:
        raise DataError("data.chat_template=true but the tokenizer has no chat template; set it to false")
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    messages.append({"role": "user", "content": text})
    encoded: Any = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(encoded, "keys"):  # some tokenizers return a BatchEncoding
        encoded = encoded["input_ids"]
    return [int(t) for t in encoded]


def load_prompt_sets(
    config: DataConfig, task: Task | None, tokenizer: PreTrainedTokenizerBase, seed: int = 0
) -> tuple[PromptSet, PromptSet]:
    """``(train, eval)`` prompt sets of the configured source."""
    return encode_prompt_sets(read_prompt_items(config, task, seed), tokenizer, config)


def read_prompt_items(
    config: DataConfig, task: Task | None, seed: int = 0
) -> tuple[list[PromptItem], list[PromptItem]]:
    """``(train, eval)`` raw prompts of the configured source, checked (and, with a task, each one checked
    against it). Needs no tokenizer, so bad data is reported before any model is loaded or warm-started."""
    if config.source == "task":
        if task is None:
            raise DataError("data.source=task needs a built-in task (task=arithmetic|sorting)")
        train_items, eval_items = task.split("train"), task.split("eval")
    else:
        train_items, eval_items = _dataset_items(config, task, seed)
    if config.max_train_prompts is not None:
        train_items = train_items[: config.max_train_prompts]
    if config.max_eval_prompts is not None:
        eval_items = eval_items[: config.max_eval_prompts]
    return train_items, eval_items


def encode_prompt_sets(
    items: tuple[list[PromptItem], list[PromptItem]], tokenizer: PreTrainedTokenizerBase, config: DataConfig
) -> tuple[PromptSet, PromptSet]:
    """The ``(train, eval)`` prompt sets of :func:`read_prompt_items`' prompts, encoded."""
    train_items, eval_items = items
    return encode_prompts(train_items, tokenizer, config, "train"), encode_prompts(
        eval_items, tokenizer, config, "eval"
    )


def _dataset_items(config: DataConfig, task: Task | None, seed: int) -> tuple[list[PromptItem], list[PromptItem]]:
    splits, split_files = _load_dataset(config)
    if config.train_split not in splits:
        raise DataError(
            f"data.train_split: split {config.train_split!r} not in {config.path!r} "
            f"(it has {sorted(splits)}); set data.train_split"
        )
    train = _items(splits[config.train_split], config, config.train_split, task, split_files)
    if config.eval_split in splits:
        return train, _items(splits[config.eval_split], config, config.eval_split, task, split_files)
    order = np.random.default_rng(seed).permutation(len(train))
    num_eval = max(1, round(config.eval_fraction * len(train)))
    if num_eval >= len(train):
        raise DataError(
            f"data.path: {config.path!r} has {len(train)} rows and no {config.eval_split!r} split; "
            "too few to hold out an evaluation slice (add rows or an eval split)"
        )
    held_out = set(order[:num_eval].tolist())
    log.info("no %r split: holding out %d of %d rows for evaluation", config.eval_split, num_eval, len(train))
    return [x for i, x in enumerate(train) if i not in held_out], [x for i, x in enumerate(train) if i in held_out]


def _local_files(config: DataConfig) -> list[str] | None:
    """The local data files that ``data.path`` names, or ``None`` when it names a folder or a hub dataset.

    Raises :class:`DataError` when it looks like a local path but nothing is there.
    """
    assert config.path is not None
    text, path = config.path, Path(config.path).expanduser()
    if any(ch in text for ch in "*?["):
        files = sorted(glob.glob(str(path)))
        if not files:
            raise DataError(f"data.path: no file matches {text!r}")
    elif path.is_file():
        files = [str(path)]
    elif path.is_dir():
        return None
    elif path.suffix in FILE_SUFFIXES:
        raise DataError(f"data.path: no such file {text!r}; point it at a json/jsonl/parquet/csv file")
    elif text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise DataError(f"data.path: no such file or folder {text!r}")
    else:
        return None  # a hub dataset name: owner/name
    for file in files:
        suffix = Path(file).suffix
        if suffix not in LOCAL_FORMATS:
            raise DataError(f"data.path: unsupported file type {suffix!r}; use one of {sorted(LOCAL_FORMATS)}")
        if Path(file).stat().st_size == 0:
            raise DataError(f"data.path: {file!r} is empty; add prompts to it")
    datafiles.check_one_format(files, f"{text!r} matches", Path(text).parent)
    return files


@contextmanager
def _quiet_json_loader() -> Iterator[None]:
    """Silence the log line ``datasets``' JSON loader writes before it raises (the error says it better)."""
    logger = logging.getLogger("datasets.packaged_modules.json.json")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_dataset(config: DataConfig) -> tuple[dict[str, Any], dict[str, list[str]] | None]:
    """The splits of ``data.path`` and, for local data, the files of each split (in the order of its rows)."""
    import datasets

    assert config.path is not None
    files = _local_files(config)
    kwargs: dict[str, Any] = {"name": config.subset} if config.subset else {}
    split_files: dict[str, list[str]] | None = None
    if files is not None:
        args: tuple[str, ...] = (LOCAL_FORMATS[Path(files[0]).suffix],)
        kwargs["data_files"] = files
        split_files = {"train": files}
    elif Path(config.path).expanduser().is_dir():
        args = (str(Path(config.path).expanduser()),)
        split_files = datafiles.folder_files(Path(config.path).expanduser(), config.path)
    else:
        args = (config.path,)
    local = [file for files_ in (split_files or {}).values() for file in files_]
    for file in local:
        if file.endswith(datafiles.TEXT_SUFFIXES):
            datafiles.scan_text(file)
    try:
        with _quiet_json_loader():
            loaded = datasets.load_dataset(*args, **kwargs)
    except Exception as error:  # datasets raises many types (network, format, missing split)
        for file in local:
            if file.endswith((".json", ".jsonl")) and (where := datafiles.json_error(file)):
                raise DataError(f"data.path: {where}; fix or remove that line") from None
        raise DataError(f"data.path: cannot load {config.path!r}: {_detail(error)}") from None
    return dict(loaded), split_files


def _detail(error: BaseException) -> str:
    """The first line of ``error``, or of the parser's error that ``datasets`` wrapped in its own."""
    from datasets.exceptions import DatasetGenerationError

    if isinstance(error, DatasetGenerationError) and error.__cause__ is not None:
        error = error.__cause__
    return first_line(error)


def _items(
    dataset: Any, config: DataConfig, split: str, task: Task | None, split_files: dict[str, list[str]] | None
) -> list[PromptItem]:
    columns = list(dataset.column_names)
    for key, column in (
        ("prompt_column", config.prompt_column),
        ("reference_column", config.reference_column),
    ):
        if column is not None and column not in columns:
            raise DataError(
                f"data.{key}: column {column!r} not in split {split!r} of {config.path!r} "
                f"(columns: {', '.join(columns)}); set data.{key}"
            )
    if len(dataset) == 0:
        raise DataError(f"data.path: split {split!r} of {config.path!r} is empty")
    prompts = dataset[config.prompt_column]
    references = dataset[config.reference_column] if config.reference_column else [None] * len(prompts)
    files = (split_files or {}).get(split)
    items = []
    for row, (prompt, reference) in enumerate(zip(prompts, references, strict=True)):
        if prompt is not None and not isinstance(prompt, str):
            kind = type(prompt).__name__
            raise DataError(
                f"data.prompt_column: {_place(row, files, split, config)} holds {'an' if kind[0] in 'aeiou' else 'a'} "
                f"{kind}, not text; set data.prompt_column to a column of text"
            )
        if task is not None and prompt and prompt.strip() and not task.fits(prompt):
            raise DataError(
                f"data.path: {_place(row, files, split, config)} is not a prompt task={task.name} can score: "
                f"{_shorten(prompt)!r}; it expects {task.prompt_form} (fix the data, or use task=none with a "
                "model-based oracle)"
            )
        items.append(PromptItem(prompt or "", None if reference is None else str(reference)))
    return items


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _place(row: int, files: list[str] | None, split: str, config: DataConfig) -> str:
    """Where row ``row`` (0-based) of ``split`` is: ``'a.jsonl' row 3 (line 4)`` when the split's local
    files are known and can be counted, else ``row 3 of split 'train' of 'path'``. Error path only."""
    remaining = row
    for file in files or []:
        lines = datafiles.row_lines(file)
        if lines is None:
            break
        count = 0
        for count, line in enumerate(lines, 1):
            if count == remaining + 1:
                return f"{file!r} row {count}" + ("" if line is None else f" (line {line})")
        remaining -= count
    return f"row {row + 1} of split {split!r} of {config.path!r}"
