"""Runners: ``local`` (one process) and ``ray`` (Ray actors); both run :class:`~oatlike.runners.base.Runner`'s loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oatlike.config import Config
from oatlike.errors import ConfigError


def run(config: Config, run_dir: Path) -> dict[str, Any]:
    """Run the experiment with the configured runner; returns its summary."""
    if config.runner.name == "local":
        from oatlike.runners.local import run_local

        return run_local(config, run_dir)
    if config.runner.name == "ray":
        from oatlike.runners.ray_runner import run_ray

        return run_ray(config, run_dir)
    raise ConfigError("runner.name", f"unknown runner {config.runner.name!r}; choose local or ray")


__all__ = ["run"]
