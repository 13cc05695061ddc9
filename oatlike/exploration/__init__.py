"""Exploration plug-ins chosen by ``explore=`` (the interface: :mod:`oatlike.exploration.base`).

One module per method: :mod:`~oatlike.exploration.selm`, :mod:`~oatlike.exploration.xpo`,
:mod:`~oatlike.exploration.copo`, :mod:`~oatlike.exploration.sea`, :mod:`~oatlike.exploration.apl`,
:mod:`~oatlike.exploration.bpo`; the loss-term math in each is a pure function checked against the test
vectors of ALGORITHMS.md §3-§5.
"""

from __future__ import annotations

from oatlike.config import ExploreConfig
from oatlike.errors import ConfigError
from oatlike.exploration.apl import APLExplorer
from oatlike.exploration.base import (
    BestWorstExplorer,
    BonusInputs,
    Engines,
    Explorer,
    Need,
    PassiveExplorer,
    Selection,
)
from oatlike.exploration.bpo import BPOExplorer
from oatlike.exploration.copo import COPOExplorer
from oatlike.exploration.sea import SEAExplorer
from oatlike.exploration.selm import SELMExplorer
from oatlike.exploration.xpo import XPOExplorer

EXPLORERS: dict[str, type[Explorer]] = {
    "passive": PassiveExplorer,
    "best_worst": BestWorstExplorer,
    "selm": SELMExplorer,
    "xpo": XPOExplorer,
    "copo": COPOExplorer,
    "sea": SEAExplorer,
    "apl": APLExplorer,
    "bpo": BPOExplorer,
}


def build_explorer(config: ExploreConfig, beta: float = 0.1, seed: int = 0) -> Explorer:
    """The explorer of ``config``; ``beta`` is the loss's β (SELM scales its term by it), ``seed`` the run's."""
    if config.name not in EXPLORERS:
        raise ConfigError("explore.name", f"unknown explorer {config.name!r}; choose one of {sorted(EXPLORERS)}")
    return EXPLORERS[config.name].from_config(config, beta, seed)


__all__ = [
    "EXPLORERS",
    "BestWorstExplorer",
    "BonusInputs",
    "Engines",
    "Explorer",
    "Need",
    "PassiveExplorer",
    "Selection",
    "build_explorer",
]
