"""W&B online that cannot start, with ``tracking.wandb.fallback=error``: one line before anything is trained,
the key never printed. (The default fallback, offline, is a success: ``tests/tracking/test_wandb.py``.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faults.harness import Fault

ARGS = (
    "steps=2",
    "eval.every=0",
    "tracking.wandb.mode=online",
    "tracking.wandb.fallback=error",
    "tracking.wandb.init_timeout=1",
)
UNREACHABLE = "http://127.0.0.1:1"
"""A W&B server that refuses every connection."""
WELL_FORMED_KEY = "k" * 40
MALFORMED_KEY = "not-a-w&b-key!"


def isolated_wandb(folder: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """W&B as on a machine that never logged in (no ``WANDB_*`` variable, no netrc, settings and caches in
    ``folder``), online unless told otherwise, with ``env`` set on top."""
    for name in [name for name in os.environ if name.startswith("WANDB_")] + ["NETRC"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(folder / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(folder / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(folder / "wandb-data"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def no_key(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_wandb(folder, monkeypatch)


def unreachable_server(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_wandb(folder, monkeypatch, WANDB_API_KEY=WELL_FORMED_KEY, WANDB_BASE_URL=UNREACHABLE)


def malformed_key(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_wandb(folder, monkeypatch, WANDB_API_KEY=MALFORMED_KEY)


KEPT = ("config.yaml",)
"""The run refuses before anything is trained: what it has is its config (and no metrics.jsonl, so the same
run_dir can be run again)."""

CASES = [
    Fault(
        "wandb-online-without-api-key",
        ARGS,
        r"tracking\.wandb\.mode: online: no W&B API key \(set WANDB_API_KEY or run `wandb login`\); "
        r"or log offline and sync later: tracking\.wandb\.fallback=offline$",
        prepare=no_key,
        kept=KEPT,
    ),
    Fault(
        "wandb-server-unreachable",
        ARGS,
        r"tracking\.wandb\.mode: online: W&B at http://127\.0\.0\.1:1 could not start the run in "
        r"tracking\.wandb\.init_timeout=1 s: .*connection refused; or log offline and sync later: "
        r"tracking\.wandb\.fallback=offline$",
        prepare=unreachable_server,
        kept=KEPT,
    ),
    Fault(
        "wandb-malformed-api-key",
        ARGS,
        r"tracking\.wandb\.mode: online: W&B at https://\S+ could not start the run: WANDB_API_KEY invalid: API key "
        r"may only contain the letters A-Z, digits and underscores; or log offline and sync later: "
        r"tracking\.wandb\.fallback=offline$",
        prepare=malformed_key,
        kept=KEPT,
    ),
]
