"""Helpers shared by the tests: compose a config exactly as the CLI does, read a run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir

from oatlike.cli import CONF_DIR
from oatlike.config import Config, load_config


def make_config(run_dir: Path, *overrides: str) -> Config:
    """The config the CLI would run for ``overrides`` (progress bar off, writing to ``run_dir``)."""
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=[f"run_dir={run_dir}", "tracking.progress=false", *overrides])
    return load_config(cfg)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def eval_records(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run_dir) if "eval/response_length" in r]


def eval_utilities(run_dir: Path, step: int | None = None) -> np.ndarray:
    """Per-prompt true utility of the greedy answers evaluated at ``step`` (default: the last evaluation)."""
    files = sorted((run_dir / "eval").glob("step_*.jsonl"))
    path = files[-1] if step is None else run_dir / "eval" / f"step_{step:06d}.jsonl"
    return np.array([json.loads(line)["utility"] for line in path.read_text().splitlines()])


def three_standard_errors(difference: np.ndarray) -> float:
    """Three standard errors of the mean of per-prompt ``difference`` (the learning tests' bar)."""
    return 3.0 * float(difference.std(ddof=1)) / math.sqrt(len(difference))
