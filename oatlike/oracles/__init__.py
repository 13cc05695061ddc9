"""Preference oracles behind one interface, chosen by ``oracle=`` (see :mod:`oatlike.oracles.base`).

| ``oracle=``      | module                               | answers with                                         |
|------------------|--------------------------------------|------------------------------------------------------|
| ``rule``         | :mod:`oatlike.oracles.rule`          | Bradley–Terry over a built-in task's true utility     |
| ``reward_model`` | :mod:`oatlike.oracles.reward_model`  | Bradley–Terry over a sequence-classification model    |
| ``pairrm``       | :mod:`oatlike.oracles.pairrm`        | llm-blender's PairRM, both orders                     |
| ``judge``        | :mod:`oatlike.oracles.judge`         | an LLM judge behind an OpenAI-compatible endpoint     |
| ``remote``       | :mod:`oatlike.oracles.remote`        | any of these, served by ``oatlike serve-oracle``      |

Each kind's module is imported when it is built, so choosing ``rule`` loads nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from oatlike.config import OracleConfig
from oatlike.errors import ConfigError
from oatlike.oracles.base import Oracle, bradley_terry, draw_labels
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.base import Task


@dataclass(frozen=True)
class OracleSite:
    """Where an oracle is built: the run's task, device and cache, and its config key (for error messages)."""

    task: Task | None = None
    device: torch.device | str = "cpu"
    key: str = "oracle"
    cache_dir: Path | None = None


def _rule(config: OracleConfig, site: OracleSite) -> Oracle:
    if site.task is None:
        raise ConfigError(site.key, f"{site.key}=rule needs a built-in task (task=arithmetic|sorting)")
    return RuleOracle.from_config(config, site.task)  # type: ignore[arg-type]


def _reward_model(config: OracleConfig, site: OracleSite) -> Oracle:
    from oatlike.oracles.reward_model import RewardModelOracle

    return RewardModelOracle.from_config(config, site.device, site.key)  # type: ignore[arg-type]


def _pairrm(config: OracleConfig, site: OracleSite) -> Oracle:
    from oatlike.oracles.pairrm import PairRMOracle

    return PairRMOracle.from_config(config, site.device, site.key)  # type: ignore[arg-type]


def _judge(config: OracleConfig, site: OracleSite) -> Oracle:
    from oatlike.oracles.judge import JudgeOracle

    return JudgeOracle.from_config(config, site.key, site.cache_dir)  # type: ignore[arg-type]


def _remote(config: OracleConfig, site: OracleSite) -> Oracle:
    from oatlike.oracles.remote import RemoteOracle

    return RemoteOracle.from_config(config, site.key)  # type: ignore[arg-type]


ORACLES: dict[str, Callable[[OracleConfig, OracleSite], Oracle]] = {
    "rule": _rule,
    "reward_model": _reward_model,
    "pairrm": _pairrm,
    "judge": _judge,
    "remote": _remote,
}
"""Builders of each oracle kind, by the name ``oracle=`` chooses."""


def build_oracle(
    config: OracleConfig,
    task: Task | None,
    device: torch.device | str = "cpu",
    key: str = "oracle",
    cache_dir: Path | None = None,
) -> Oracle:
    """The oracle described by ``config``: ``task`` for the rule oracle, ``device`` for models,
    ``cache_dir`` for the judge's verdicts; ``key`` is where the config sits (``oracle``, ``eval.oracle``).
    """
    if config.name not in ORACLES:
        raise ConfigError(f"{key}.name", f"unknown oracle {config.name!r}; choose one of {', '.join(ORACLES)}")
    return ORACLES[config.name](config, OracleSite(task, device, key, cache_dir))


__all__ = ["ORACLES", "Oracle", "OracleSite", "RuleOracle", "bradley_terry", "build_oracle", "draw_labels"]
