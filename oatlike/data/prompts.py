"""Training and evaluation prompts, encoded for the policy.

Sources (``data.source``):

* ``task``: the built-in task's train / eval splits with their reference answers;
* ``dataset``: ``datasets.load_dataset`` on a hub name, a local folder, or local json / jsonl / parquet /
  csv files, with configurable prompt and reference columns (the TL;DR-with-reference layout that
  online-alignment papers use: ``prompt`` plus a reference summary column). When the data has no
  evaluation split, a seeded ``data.eval_fraction`` of the training split is held out.

Local files are checked before ``load_dataset`` reads them, in one streaming pass over each text file:
UTF-8 without NUL bytes (an error names the file and line), and a folder must hold one format only (else
``datasets`` would silently load the most common one). A file that ``load_dataset`` cannot parse is
searched for its first bad JSON line then, on that error path only. With a built-in task, every prompt must
be one the task's utility can score: the first that is not is named (file, row, line) when the data is
read, before any model is built, not at the first evaluation.

Every prompt is encoded once (with the tokenizer's chat template when ``data.chat_template``). Empty
prompts and prompts longer than ``data.max_prompt_tokens`` are skipped and counted, never truncated.
"""

from __future__ import annotations

import csv
import glob
import itertools
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from oatlike.data.config import DataConfig
from oatlike.errors import DataError, first_line
from oatlike.tasks.base import PromptItem, Task
from oatlike.types import Prompt

log = logging.getLogger(__name__)

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
FILE_SUFFIXES = {*LOCAL_FORMATS, ".txt", ".tsv", ".gz", ".zip", ".arrow", ".xlsx"}
FOLDER_FORMATS = {**LOCAL_FORMATS, ".tsv": "tsv", ".txt": "text", ".arrow": "arrow", ".xlsx": "excel"}
"""The formats ``datasets`` reads from the files of a folder, by suffix (it loads only the most common)."""
TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".txt")
"""Local files scanned for bad bytes before ``load_dataset`` reads them."""
DATASET_CARDS = ("README.md", ".huggingface.yaml")
"""Files of a folder whose configs (if any) ``datasets`` follows instead of matching file names to splits."""
_BLOCK = 1 << 20


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
    _check_one_format(files, f"{text!r} matches", Path(text).parent)
    return files


def _folder_files(folder: Path, shown: str) -> dict[str, list[str]] | None:
    """The data files of each split of ``folder``, matched to splits by name as ``load_dataset`` does it;
    ``None`` when a dataset card there may say otherwise (then ``datasets`` follows the card)."""
    from datasets.data_files import DataFilesDict, EmptyDatasetError, get_data_patterns

    if any((folder / card).is_file() for card in DATASET_CARDS):
        return None
    try:
        resolved = DataFilesDict.from_patterns(get_data_patterns(str(folder)), base_path=str(folder))
    except EmptyDatasetError:
        raise DataError(
            f"data.path: folder {str(folder)!r} holds no data files; put json/jsonl/parquet/csv files in it"
        ) from None
    splits = {
        str(split): [file for file in files if Path(file).suffix in FOLDER_FORMATS] for split, files in resolved.items()
    }
    files = [file for files in splits.values() for file in files]
    _check_one_format(files, f"folder {str(folder)!r} holds", Path(shown), folder.resolve())
    return splits


def _check_one_format(files: Sequence[str], what: str, shown: Path, base: Path | None = None) -> None:
    """Refuse data files of several formats: ``datasets`` would load one of them and silently drop the rest.

    The message suggests one glob per format in ``shown`` (as the user wrote ``data.path``), or, for the
    files of the folder ``base``, in the same place under ``shown``.
    """
    by_format: dict[str, list[str]] = {}
    for file in files:
        by_format.setdefault(FOLDER_FORMATS[Path(file).suffix], []).append(file)
    if len(by_format) < 2:
        return
    found = "; ".join(
        f"{name}: {', '.join(Path(f).name for f in names[:3])}{', ...' if len(names) > 3 else ''}"
        for name, names in sorted(by_format.items())
    )
    globs = " or ".join(
        repr(str(shown / (Path(first).parent.relative_to(base) if base else "") / f"*{Path(first).suffix}"))
        for first in (names[0] for _, names in sorted(by_format.items()))
    )
    raise DataError(
        f"data.path: {what} files of {len(by_format)} formats ({found}) and only one would be loaded; "
        f"point data.path at one format, e.g. data.path={globs}"
    )


def _scan_text(file: str) -> None:
    """Check that ``file`` is UTF-8 text without NUL bytes, naming the line of the first bad byte.

    One streaming pass in blocks of whole lines (decoding and searching run at C speed), so that a huge
    file costs one read, not a second parse.
    """
    line, rest = 1, b""
    with open(file, "rb") as stream:
        for chunk in iter(lambda: stream.read(_BLOCK), b""):
            block = rest + chunk
            cut = block.rfind(b"\n") + 1
            block, rest = block[:cut], block[cut:]
            _check_bytes(file, block, line)
            line += block.count(b"\n")
    _check_bytes(file, rest, line)


def _check_bytes(file: str, block: bytes, first_line: int) -> None:
    """Raise :class:`DataError` at the first NUL byte or invalid UTF-8 of ``block`` (lines from ``first_line``)."""

    def where(position: int) -> str:
        line = first_line + block.count(b"\n", 0, position)
        column = position - block.rfind(b"\n", 0, position)
        return f"{file!r} line {line} (byte {column} of the line)"

    nul = block.find(b"\0")
    if nul >= 0:
        raise DataError(
            f"data.path: {where(nul)} holds a NUL byte; the file is binary, UTF-16 or corrupt: "
            "save it as UTF-8 text without NUL bytes"
        )
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"data.path: {where(error.start)} is not UTF-8 (byte 0x{block[error.start]:02x}); "
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _json_error(file: str) -> str | None:
    """Where and why ``file`` is not JSON lines (or, for one JSON document, not JSON), or ``None`` when it
    is. Only called once ``load_dataset`` failed, so a good file is never parsed twice."""
    if _is_json_document(file):
        with open(file, encoding="utf-8") as stream:
            try:
                json.load(stream)
            except json.JSONDecodeError as error:
                return f"{file!r} line {error.lineno} is not JSON: {error.msg} (column {error.colno})"
        return None
    with open(file, encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                return f"{file!r} line {number} is not JSON: {error.msg} (column {error.colno})"
            if not isinstance(value, dict):
                return f"{file!r} line {number} holds a JSON {type(value).__name__}, not an object {{...}}"
    return None


def _is_json_document(file: str) -> bool:
    """Whether ``file`` is one JSON document (an array of rows, or an object spread over lines), not JSON lines."""
    with open(file, encoding="utf-8") as stream:
        first = next((line.strip() for line in stream if line.strip()), "")
    return first.startswith("[") or first == "{"


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
        split_files = _folder_files(Path(config.path).expanduser(), config.path)
    else:
        args = (config.path,)
    local = [file for files_ in (split_files or {}).values() for file in files_]
    for file in local:
        if file.endswith(TEXT_SUFFIXES):
            _scan_text(file)
    try:
        with _quiet_json_loader():
            loaded = datasets.load_dataset(*args, **kwargs)
    except Exception as error:  # datasets raises many types (network, format, missing split)
        for file in local:
            if file.endswith((".json", ".jsonl")) and (where := _json_error(file)):
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
        lines = _row_lines(file)
        if lines is None:
            break
        count = 0
        for count, line in enumerate(lines, 1):
            if count == remaining + 1:
                return f"{file!r} row {count}" + ("" if line is None else f" (line {line})")
        remaining -= count
    return f"row {row + 1} of split {split!r} of {config.path!r}"


def _row_lines(file: str) -> Iterator[int | None] | None:
    """The line where each row of ``file`` starts, as ``load_dataset`` counts rows (blank lines are no
    rows); ``None`` for a line it cannot tell; ``None`` instead of an iterator for a format it cannot count."""
    suffix = Path(file).suffix
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return itertools.repeat(None, pq.ParquetFile(file).metadata.num_rows)
    if suffix == ".csv":
        return _csv_row_lines(file)
    if suffix in (".json", ".jsonl") and _is_json_document(file):
        with open(file, encoding="utf-8") as stream:
            document = json.load(stream)
        return itertools.repeat(None, len(document)) if isinstance(document, list) else None
    if suffix in (".json", ".jsonl"):
        return _json_row_lines(file)
    return None


def _csv_row_lines(file: str) -> Iterator[int | None]:
    with open(file, encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream)
        next(reader, None)  # the header
        start = reader.line_num + 1
        for record in reader:
            if record:
                yield start
            start = reader.line_num + 1


def _json_row_lines(file: str) -> Iterator[int | None]:
    with open(file, encoding="utf-8") as stream:
        yield from (number for number, line in enumerate(stream, 1) if line.strip())
