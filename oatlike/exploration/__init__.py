"""Exploration plug-ins chosen by ``explore=`` (see :mod:`oatlike.exploration.base`)."""

from __future__ import annotations

from oatlike.config import ExploreConfig
from oatlike.errors import ConfigError
from oatlike.exploration.base import BestWorstExplorer, Explorer, PassiveExplorer

EXPLORERS: dict[str, type[Explorer]] = {"passive": PassiveExplorer, "best_worst": BestWorstExplorer}


def build_explorer(config: ExploreConfig) -> Explorer:
    if config.name not in EXPLORERS:
        raise ConfigError("explore.name", f"unknown explorer {config.name!r}; choose one of {sorted(EXPLORERS)}")
    return EXPLORERS[config.name]()


__all__ = ["EXPLORERS", "BestWorstExplorer", "Explorer", "PassiveExplorer", "build_explorer"]
