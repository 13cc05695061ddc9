"""Checking local data files before (and after) ``datasets`` reads them, so that bad data is named where it is.

One streaming pass over each text file checks it is UTF-8 without NUL bytes (an error names the file, line and
byte); a folder must hold one format only (else ``datasets`` would silently load the most common one); a file
that ``load_dataset`` could not parse is searched for its first bad JSON line, on that error path only; and a
row of a split is traced back to its file and line for messages about it.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from oatlike.errors import DataError

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
"""The formats of single files ``data.path`` may name, by suffix (``datasets``' builder names)."""


FOLDER_FORMATS = {**LOCAL_FORMATS, ".tsv": "tsv", ".txt": "text", ".arrow": "arrow", ".xlsx": "excel"}
"""The formats ``datasets`` reads from the files of a folder, by suffix (it loads only the most common)."""


TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".txt")
"""Local files scanned for bad bytes before ``load_dataset`` reads them."""


DATASET_CARDS = ("README.md", ".huggingface.yaml")
"""Files of a folder whose configs (if any) ``datasets`` follows instead of matching file names to splits."""


_BLOCK = 1 << 20


def folder_files(folder: Path, shown: str) -> dict[str, list[str]] | None:
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
    check_one_format(files, f"folder {str(folder)!r} holds", Path(shown), folder.resolve())
    return splits


def check_one_format(files: Sequence[str], what: str, shown: Path, base: Path | None = None) -> None:
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


def scan_text(file: str) -> None:
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


def json_error(file: str) -> str | None:
    """Where and why ``file`` is not JSON lines (or, for one JSON document, not JSON), or ``None`` when it
    is. Only called once ``load_dataset`` failed, so a good file is never parsed twice."""
    if is_json_document(file):
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


def is_json_document(file: str) -> bool:
    """Whether ``file`` is one JSON document (an array of rows, or an object spread over lines), not JSON lines."""
    with open(file, encoding="utf-8") as stream:
        first = next((line.strip() for line in stream if line.strip()), "")
    return first.startswith("[") or first == "{"


def row_lines(file: str) -> Iterator[int | None] | None:
    """The line where each row of ``file`` starts, as ``load_dataset`` counts rows (blank lines are no
    rows); ``None`` for a line it cannot tell; ``None`` instead of an iterator for a format it cannot count."""
    suffix = Path(file).suffix
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return itertools.repeat(None, pq.ParquetFile(file).metadata.num_rows)
    if suffix == ".csv":
        return _csv_row_lines(file)
    if suffix in (".json", ".jsonl") and is_json_document(file):
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
