"""Prompt data from local files through ``datasets.load_dataset``: columns, splits, chat template, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from oatlike.data.config import DataConfig
from oatlike.data.prompts import PromptStream, encode_prompts, load_prompt_sets
from oatlike.errors import DataError
from oatlike.models.loading import load_tokenizer
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.tasks.base import PromptItem


@pytest.fixture(scope="module")
def tokenizer(tiny_untrained):
    return load_tokenizer(str(tiny_untrained))


def tldr_rows(count: int) -> list[dict[str, str]]:
    """Rows shaped like TL;DR-with-reference: a post-and-question prompt and a reference summary."""
    return [
        {
            "prompt": f"SUBREDDIT: r/test\nTITLE: post {i}\nPOST: a short story number {i}\nTL;DR:",
            "pythia-1b-reference": f" summary {i}",
            "extra": i,
        }
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def dataset_config(path: Path | str, **overrides) -> DataConfig:
    options = {"source": "dataset", "path": str(path), "reference_column": "pythia-1b-reference"}
    return DataConfig(**{**options, **overrides})


def test_jsonl_file_with_held_out_eval_slice(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "tldr.jsonl", tldr_rows(100))
    train, evaluation = load_prompt_sets(dataset_config(path, eval_fraction=0.1), None, tokenizer, seed=0)
    assert (len(train), len(evaluation)) == (90, 10)
    assert not {p.text for p in train.prompts} & {p.text for p in evaluation.prompts}
    first = train.prompts[0]
    assert first.reference.startswith(" summary") and first.text.startswith("SUBREDDIT")
    assert list(first.token_ids) == tokenizer(first.text).input_ids


def test_folder_with_split_files_and_parquet_and_csv(tmp_path, tokenizer):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", tldr_rows(20))
    write_jsonl(folder / "validation.jsonl", tldr_rows(5))
    train, evaluation = load_prompt_sets(dataset_config(folder), None, tokenizer)
    assert (len(train), len(evaluation)) == (20, 5)
    pd.DataFrame(tldr_rows(30)).to_parquet(tmp_path / "p.parquet")
    train, evaluation = load_prompt_sets(dataset_config(tmp_path / "p.parquet"), None, tokenizer)
    assert len(train) + len(evaluation) == 30
    pd.DataFrame(tldr_rows(30)).to_csv(tmp_path / "p.csv", index=False)
    train, _ = load_prompt_sets(dataset_config(tmp_path / "p.csv", reference_column=None), None, tokenizer)
    assert train.prompts[0].reference is None


def test_custom_columns_and_limits(tmp_path, tokenizer):
    rows = [{"question": f"{i}+{i}=", "answer": str(2 * i)} for i in range(10, 60)]
    path = write_jsonl(tmp_path / "q.jsonl", rows)
    config = DataConfig(
        source="dataset",
        path=str(path),
        prompt_column="question",
        reference_column="answer",
        max_train_prompts=7,
        max_eval_prompts=2,
        eval_fraction=0.2,
    )
    train, evaluation = load_prompt_sets(config, None, tokenizer)
    assert (len(train), len(evaluation)) == (7, 2)
    task = ArithmeticTask()
    assert all(task.utility(p.text, p.reference) == 1.0 for p in train.prompts)


def test_chat_template_and_system_prompt(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "tldr.jsonl", tldr_rows(40))
    config = dataset_config(path, chat_template=True, system_prompt="Be brief.")
    train, _ = load_prompt_sets(config, None, tokenizer)
    decoded = tokenizer.decode(list(train.prompts[0].token_ids))
    assert decoded.startswith("<|system|>\nBe brief.\n<|user|>\nSUBREDDIT") and decoded.endswith("<|assistant|>\n")
    assert train.prompts[0].text.startswith("SUBREDDIT")  # the oracle sees the raw prompt


def test_long_and_empty_prompts_are_skipped_and_counted(tokenizer):
    items = [PromptItem("1+1="), PromptItem(""), PromptItem("   "), PromptItem("9" * 500), PromptItem("2+2=")]
    prompts = encode_prompts(items, tokenizer, DataConfig(max_prompt_tokens=16), "train")
    assert [p.text for p in prompts.prompts] == ["1+1=", "2+2="]
    assert (prompts.skipped_empty, prompts.skipped_too_long) == (2, 1)
    assert all(len(p.token_ids) <= 16 for p in prompts.prompts)  # skipped, never truncated


@pytest.mark.parametrize(
    ("setup", "overrides", "message"),
    [
        ("none", {"path": "missing.jsonl"}, "data.path: no such file 'missing.jsonl'"),
        ("none", {"path": "./missing_folder"}, "data.path: no such file or folder './missing_folder'"),
        ("none", {"path": "data/a/b"}, "data.path: no such file or folder 'data/a/b'"),
        ("rows", {"prompt_column": "question"}, "data.prompt_column: column 'question' not in split 'train'"),
        ("rows", {"reference_column": "summary"}, "data.reference_column: column 'summary' not in split 'train'"),
        ("rows", {"train_split": "dev"}, "data.train_split: split 'dev' not in"),
        ("empty", {}, "data.path: 'rows.jsonl' is empty; add prompts to it"),
        (
            "long",
            {"max_prompt_tokens": 4},
            "no usable train prompts: 38 read, 0 empty, 38 longer than data.max_prompt_tokens=4",
        ),
        (
            "numbers",
            {"prompt_column": "extra"},
            "data.prompt_column: 'rows.jsonl' row 1 (line 1) holds an int, not text",
        ),
        ("rows", {"path": "data.txt"}, "data.path: no such file 'data.txt'"),
        ("text", {"path": "notes.txt"}, "data.path: unsupported file type '.txt'"),
    ],
)
def test_bad_data_gives_one_clear_error(tmp_path, tokenizer, monkeypatch, setup, overrides, message):
    monkeypatch.chdir(tmp_path)
    if setup in ("rows", "long", "numbers"):
        write_jsonl(tmp_path / "rows.jsonl", tldr_rows(40))
    if setup == "text":
        (tmp_path / "notes.txt").write_text("hello")
    if setup == "empty":
        (tmp_path / "rows.jsonl").write_text("")
    path = overrides.pop("path", "rows.jsonl")
    config = dataset_config(path, **overrides)
    with pytest.raises(DataError) as error:
        load_prompt_sets(config, None, tokenizer)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_hub_dataset_names_use_the_hub_path(tokenizer):
    # offline (HF_DATASETS_OFFLINE=1): the real load_dataset call is made and its failure reported in one line
    with pytest.raises(DataError, match=r"data.path: cannot load 'someone/some-dataset'"):
        load_prompt_sets(DataConfig(source="dataset", path="someone/some-dataset"), None, tokenizer)


def test_task_prompts_and_stream(tokenizer):
    train, evaluation = load_prompt_sets(DataConfig(), ArithmeticTask(), tokenizer)
    assert len(evaluation) == 256 and all(p.reference for p in evaluation.prompts)
    stream = PromptStream(train.prompts[:10], seed=1)
    first_epoch = stream.next(10)
    assert sorted(p.text for p in first_epoch) == sorted(p.text for p in train.prompts[:10])
    again = PromptStream(train.prompts[:10], seed=1).next(25)
    assert [p.text for p in again[:10]] == [p.text for p in first_epoch]
