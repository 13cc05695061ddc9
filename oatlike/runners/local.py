"""The local runner: every part of the loop in this process (debugging, tests, laptops).

The actor samples with its own copy of the policy and the evaluator with another, both fed with the
learner's weights through the same ``load_weights`` path the distributed runner uses, so every
distributed bug has a one-process repro.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from oatlike.config import Config
from oatlike.runners.base import Collected, Runner
from oatlike.types import PreferenceBatch, Prompt


class LocalRunner(Runner):
    """Runs the experiment of ``config`` in one process and writes it to ``run_dir``."""

    def __init__(self, config: Config, run_dir: Path) -> None:
        torch.manual_seed(config.seed)
        super().__init__(config, run_dir)
        self.actor = self.builder.actor()
        self.learner = self.builder.learner()
        self.evaluator = self.builder.evaluator(out_dir=None)

    def start_collect(self, prompts: list[Prompt]) -> Collected:
        return self.actor.step(prompts)

    def finish_collect(self, handle: Collected) -> Collected:
        return handle

    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        return self.learner.learn(batch)

    def sync(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.actor.engine.load_weights(self.learner.weights(), self.learner.version)
        return {"misc/sync_seconds": time.perf_counter() - start, "misc/weights_version": self.learner.version}

    def refresh_reference(self) -> dict[str, Any]:
        self.actor.load_reference_weights(self.learner.refresh_reference(), self.learner.version)
        return {"misc/reference_version": self.learner.version}

    def evaluate(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        metrics = self.evaluator.evaluate(step, self.learner.weights(), self.learner.version)
        return metrics, self.evaluator.last_records

    def save_checkpoint(self, name: str) -> Path:
        folder = self.run_dir / "checkpoints" / name
        self.learner.save(folder, self.builder.tokenizer)
        return folder

    @property
    def learner_version(self) -> int:
        return self.learner.version

    @property
    def actor_version(self) -> int:
        return self.actor.engine.weights_version


def run_local(config: Config, run_dir: Path) -> dict[str, Any]:
    """Run ``config`` with every component in this process."""
    return LocalRunner(config, run_dir).run()
