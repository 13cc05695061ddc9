"""Preference oracles behind one interface, chosen by ``oracle=`` (see :mod:`oatlike.oracles.base`)."""

from __future__ import annotations

from oatlike.config import OracleConfig, RuleOracleConfig
from oatlike.errors import ConfigError
from oatlike.oracles.base import Oracle, draw_labels
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.base import Task


def build_oracle(config: OracleConfig, task: Task | None) -> Oracle:
    """The oracle described by ``config`` (``task`` is needed by the rule oracle)."""
    if isinstance(config, RuleOracleConfig):
        if task is None:
            raise ConfigError("oracle", "oracle=rule needs a built-in task (task=arithmetic|sorting)")
        return RuleOracle(task, config.temperature, config.label_noise)
    raise ConfigError("oracle.name", f"unknown oracle {config.name!r}")


__all__ = ["Oracle", "RuleOracle", "build_oracle", "draw_labels"]
