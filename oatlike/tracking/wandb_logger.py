"""Weights & Biases: the only module that imports ``wandb``.

``tracking.wandb.mode``: ``disabled`` (nothing is written), ``offline`` (a local ``wandb/`` folder that
``wandb sync`` uploads later; no network, no API key) or ``online``. The config sent to W&B is the resolved
run config, which never holds secrets (they come from the environment only).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oatlike.tracking.config import WandbConfig


class WandbLogger:
    """The run's W&B run; ``run_id`` continues an earlier one (a resumed run logs into the same W&B run)."""

    def __init__(self, config: WandbConfig, run_dir: Path, run_config: dict[str, Any], run_id: str | None = None):
        self.run = None
        if config.mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=config.project,
            entity=config.entity,
            group=config.group,
            name=config.name or run_dir.name,
            tags=list(config.tags),
            mode=config.mode,  # type: ignore[arg-type]  # validated: disabled|offline|online
            dir=str(run_dir),
            config=run_config,
            id=run_id,
            resume="allow" if run_id else None,
        )

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else str(self.run.id)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
