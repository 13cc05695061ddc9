"""Shared test setup: an offline, quiet environment, a per-checkout cache of built models, and the order
in which ``pytest -n N`` (pytest-xdist, ``--dist loadscope``) hands modules to its workers.

The warm-started tiny policies and the trained reward model (minutes to build) are cached under
``.oatlike-cache/tests`` in the checkout (or ``$OATLIKE_TEST_CACHE``); a clean clone builds them once, in
the first test that needs them (builds are serialised by file locks, so workers never build twice).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OATLIKE_TEST_CACHE", ROOT / ".oatlike-cache" / "tests"))

for key, value in {
    "DS_ACCELERATOR": "cpu",
    "WANDB_MODE": "disabled",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OATLIKE_CACHE_DIR": str(CACHE),
}.items():
    os.environ.setdefault(key, value)

import pytest  # noqa: E402
import torch  # noqa: E402

# the tiny models gain little from a second thread: with N test workers, each gets its share of the cores
# (OMP_NUM_THREADS too: runner=local runs and the CLI's subprocesses take it, oatlike.runners.local)
# (set, not defaulted: the xdist workers inherit the environment of the controller, which reads this file too)
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)

from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE


@pytest.fixture(scope="session")
def tiny_untrained(cache_dir: Path) -> Path:
    """Folder of an untrained 1M tiny Llama with the shared tokenizer."""
    from oatlike.models.config import ModelConfig, WarmStartConfig
    from oatlike.tasks.config import ArithmeticTaskConfig
    from oatlike.warmstart import ensure_policy_folder

    model = ModelConfig(warm_start=WarmStartConfig(enabled=False))
    return ensure_policy_folder(model, ArithmeticTaskConfig(), None, cache_dir, progress=False)


@pytest.fixture(scope="session")
def warm_policy(cache_dir: Path) -> Path:
    """Folder of the default warm start: the 1M tiny Llama after SFT on arithmetic demonstrations."""
    from oatlike.models.config import ModelConfig
    from oatlike.tasks.arithmetic import ArithmeticTask
    from oatlike.tasks.config import ArithmeticTaskConfig
    from oatlike.warmstart import ensure_policy_folder

    return ensure_policy_folder(ModelConfig(), ArithmeticTaskConfig(), ArithmeticTask(), cache_dir, progress=False)


FIRST = (
    "oracles/test_oracles_in_the_loop.py",  # builds the sorting warm start and a reward model first (minutes)
    "runners/test_matrix.py::TestRayAsyncTwoRanksExplorers",
    "learning/test_learning_explorers.py",
    "runners/test_matrix.py::TestRayAsyncTwoRanksLosses",
    "test_resume.py",
    "runners/test_matrix.py::TestRaySync",
    "runners/test_ray.py",
    "learning/test_learning.py",
    "test_cli.py",
    "test_faults.py",
)
"""The longest work units of ``--dist loadscope`` (a module, or a class of one), longest first, so that the
workers start on them and finish together (the rest keep collection order). The Makefile passes
``--no-loadscope-reorder``: by default pytest-xdist orders units by their number of tests instead."""


def _unit_rank(item: pytest.Item) -> int:
    """Where ``item``'s unit (its module, or ``module::Class``) stands in FIRST (a module matches its classes)."""
    path, _, rest = item.nodeid.partition("::")
    unit = f"/{path}::{rest.split('::')[0]}" if "::" in rest else f"/{path}"
    return next(
        (i for i, name in enumerate(FIRST) if unit.endswith(f"/{name}") or f"/{path}".endswith(f"/{name}")), len(FIRST)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_unit_rank)  # stable: the order within a unit and among the rest is kept
