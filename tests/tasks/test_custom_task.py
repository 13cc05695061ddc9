"""``task=custom``: a user's Task class from a file outside the package, end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import oatlike

from oatlike.config import compose
from oatlike.errors import ConfigError
from oatlike.tasks.base import build_task

EXAMPLE = Path(__file__).parent / "example" / "reverse_task.py"


def task_of(*overrides: str):
    return build_task(compose("task=custom", *overrides).task)


def test_a_task_from_a_file_and_from_a_module(monkeypatch):
    task = task_of(f"task.target={EXAMPLE}:ReverseTask", "+task.options.length=5")
    assert task.name == "reverse" and task.length == 5
    prompt = task.split("eval")[0].text
    assert task.utility(prompt, task.best_response(prompt)) == 1.0 == task.best_utility(prompt)
    assert task.source_digest is not None
    monkeypatch.chdir(EXAMPLE.parent)  # as a module of the current folder
    monkeypatch.delitem(sys.modules, "reverse_task", raising=False)
    assert task_of("task.target=reverse_task:ReverseTask").name == "reverse"


@pytest.mark.parametrize(
    "target, message",
    [
        ("missing.py:Task", r"^task.target: no such file '.*missing.py'"),
        ("no_such_module:Task", r"^task.target: no module 'no_such_module' in the current folder or on sys.path"),
        (f"{EXAMPLE}:Nope", r"^task.target: .*reverse_task.py has no 'Nope' \(Task classes there: \['ReverseTask'"),
        (f"{EXAMPLE}:LETTERS", r"^task.target: .*:LETTERS is not a subclass of oatlike.tasks.base.Task"),
        ("oatlike.tasks.base:Task", r"^task.target: oatlike.tasks.base:Task does not implement all_problems, "),
        ("ReverseTask", r"^task.target: must be module:Class or file.py:Class, got 'ReverseTask'"),
    ],
)
def test_a_bad_target_is_one_line(target, message):
    with pytest.raises(ConfigError, match=message):
        task_of(f"task.target={target}")


@pytest.mark.slow
def test_a_custom_task_runs_end_to_end_through_the_cli(tmp_path):
    result = oatlike(
        "task=custom",
        f"task.target={EXAMPLE}:ReverseTask",
        "model.warm_start.steps=30",
        "steps=3",
        "eval.every=0",
        "data.max_eval_prompts=32",
        f"run_dir={tmp_path / 'run'}",
        "tracking.progress=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["oracle_queries"] > 0  # the rule oracle labelled with its utility
    assert 0 < summary["final/eval/utility"] < 1 and summary["cumulative_regret"] > 0
    generation = json.loads((tmp_path / "run" / "eval" / "step_000003.jsonl").read_text().splitlines()[0])
    assert generation["prompt"].startswith("reverse ")


def test_without_a_target_the_cli_says_what_to_give(capsys):
    from oatlike import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["task=custom"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "oatlike: error: task.target: has no default and must be given: add task.target=... "
        "(`oatlike --help` shows what it is)"
    )
    cli.main(["--help", "task=custom"])
    shown = capsys.readouterr().out
    assert "task.target = ??? (must be given)" in shown and "task.options = {}" in shown
