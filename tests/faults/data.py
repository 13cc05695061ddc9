"""Bad prompt data: undecodable or corrupt files, broken lines, mixed formats, prompts the task cannot score,
missing columns and nothing usable. Each is named (file, line or row) when the data is read.

The cases that the data alone decides also make building the policy fail (:func:`no_model`): they must stop
before any model is loaded or warm-started, not only stop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from faults.harness import Fault

FILES = ("data=files", "steps=2", "eval.every=0")
"""A run on a prompt file (``data.path`` is added by each case)."""


def arithmetic_rows(count: int) -> list[dict[str, str]]:
    return [{"prompt": f"{10 + i}+{20 + i}=", "answer": str(30 + 2 * i)} for i in range(count)]


def jsonl(rows: Sequence[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading or warm-starting the policy fail: a case that gets that far has read the bad data."""

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the policy was built before the bad data was reported")

    monkeypatch.setattr("oatlike.builder.ensure_policy_folder", fail)


def write(
    files: dict[str, bytes], *overrides: str, model: bool = False
) -> Callable[[Path, pytest.MonkeyPatch], list[str]]:
    """``prepare``: write ``files`` (name -> bytes, folders made) and give ``overrides``; unless ``model``,
    building the policy fails (:func:`no_model`)."""

    def prepare(folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
        if not model:
            no_model(monkeypatch)
        return list(overrides)

    return prepare


GOOD = jsonl(arithmetic_rows(20))
BAD_UTF8 = jsonl(arithmetic_rows(2)) + b'{"prompt": "3+4=\xe9"}\n' + GOOD
BROKEN_LINE = jsonl(arithmetic_rows(2)) + b"\n" + b'{"prompt": "3+4=" "answer": "7"}\n' + GOOD
NOT_ARITHMETIC = GOOD + b"\n" + jsonl([{"prompt": "Tell me a joke about ducks."}]) + GOOD
SORTING = jsonl([{"prompt": f"sort {i} 3 1:"} for i in range(20)])
CSV_NUL = b"prompt,answer\n" + b"".join(f"{10 + i}+1=,{11 + i}\n".encode() for i in range(5)) + b"7+\x001=,8\n"
JSON_NUL = b'[\n  {"prompt": "1+2="},\n  {"prompt": "3+\x004="}\n]\n'

CASES = [
    Fault(
        "invalid-utf8-jsonl",
        (*FILES, "data.path=prompts.jsonl"),
        r"^data\.path: 'prompts\.jsonl' line 3 \(byte \d+ of the line\) is not UTF-8 \(byte 0xe9\); "
        r"save the file as UTF-8",
        write({"prompts.jsonl": BAD_UTF8}),
    ),
    Fault(
        "broken-jsonl-line",
        (*FILES, "data.path=prompts.jsonl"),
        r"^data\.path: 'prompts\.jsonl' line 4 is not JSON: Expecting ',' delimiter \(column 19\); "
        r"fix or remove that line$",
        write({"prompts.jsonl": BROKEN_LINE}),
    ),
    Fault(
        "nul-byte-jsonl",
        (*FILES, "data.path=prompts.jsonl"),
        r"^data\.path: 'prompts\.jsonl' line 21 \(byte 15 of the line\) holds a NUL byte; .*"
        r"save it as UTF-8 text without NUL bytes$",
        write({"prompts.jsonl": GOOD + b'{"prompt": "1+\x002="}\n'}),
    ),
    Fault(
        "nul-byte-csv",
        (*FILES, "data.path=prompts.csv"),
        r"^data\.path: 'prompts\.csv' line 7 \(byte 3 of the line\) holds a NUL byte",
        write({"prompts.csv": CSV_NUL}),
    ),
    Fault(
        "nul-byte-json",
        (*FILES, "data.path=prompts.json"),
        r"^data\.path: 'prompts\.json' line 3 \(byte 17 of the line\) holds a NUL byte",
        write({"prompts.json": JSON_NUL}),
    ),
    Fault(
        "folder-of-mixed-formats",
        (*FILES, "data.path=data"),
        r"^data\.path: folder 'data' holds files of 2 formats \(csv: more\.csv; json: prompts\.jsonl\) and only one "
        r"would be loaded; point data\.path at one format, e\.g\. data\.path='data/\*\.csv' or 'data/\*\.jsonl'$",
        write({"data/prompts.jsonl": GOOD, "data/more.csv": b"prompt\n1+2=\n3+4=\n"}),
    ),
    Fault(
        "prompt-the-task-cannot-score",
        (*FILES, "data.path=prompts.jsonl"),
        r"^data\.path: 'prompts\.jsonl' row 21 \(line 22\) is not a prompt task=arithmetic can score: "
        r"'Tell me a joke about ducks\.'; it expects 'A\+B=' .*use task=none with a model-based oracle",
        write({"prompts.jsonl": NOT_ARITHMETIC}),
    ),
    Fault(
        "arithmetic-prompts-for-sorting",
        (*FILES, "task=sorting", "data.path=prompts.jsonl"),
        r"^data\.path: 'prompts\.jsonl' row 1 \(line 1\) is not a prompt task=sorting can score: '10\+20='; "
        r"it expects 'sort N N \.\.\.:'",
        write({"prompts.jsonl": GOOD}),
    ),
    Fault(
        "missing-prompt-column",
        (*FILES, "data.path=prompts.jsonl", "data.prompt_column=question"),
        r"^data\.prompt_column: column 'question' not in split 'train' of 'prompts\.jsonl' "
        r"\(columns: prompt, answer\); set data\.prompt_column$",
        write({"prompts.jsonl": GOOD}),
    ),
    Fault(
        "empty-file",
        (*FILES, "data.path=prompts.jsonl"),
        r"^data\.path: 'prompts\.jsonl' is empty; add prompts to it$",
        write({"prompts.jsonl": b""}),
    ),
    Fault(
        "all-prompts-empty",
        (*FILES, "data.path=prompts.jsonl"),
        r"^no usable train prompts: 19 read, 19 empty, 0 longer than data\.max_prompt_tokens=256; ",
        write({"prompts.jsonl": jsonl([{"prompt": " " * (i % 3)} for i in range(20)])}, model=True),
    ),
    Fault(
        "all-prompts-too-long",
        (*FILES, "data.path=prompts.jsonl", "data.max_prompt_tokens=2"),
        r"^no usable train prompts: 19 read, 0 empty, 19 longer than data\.max_prompt_tokens=2; "
        r"raise data\.max_prompt_tokens",
        write({"prompts.jsonl": GOOD}, model=True),
    ),
]
