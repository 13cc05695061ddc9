"""The rule oracle (Bradley–Terry annotators over the true utility) and labels drawn from its probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oatlike.errors import ConfigError
from oatlike.oracles.base import OracleSite, build_oracle, draw_labels
from oatlike.oracles.config import RuleOracleConfig
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.arithmetic import ArithmeticTask


def test_bradley_terry_probabilities_and_query_count():
    oracle = RuleOracle(RuleOracleConfig(temperature=0.1), ArithmeticTask())
    p = oracle.compare(["85+47=", "85+47=", "1+1="], ["132", "122", "2"], ["122", "132", "2"])
    gap = 1.0 - 2 / 3
    np.testing.assert_allclose(p, [1 / (1 + math.exp(-gap / 0.1)), 1 / (1 + math.exp(gap / 0.1)), 0.5])
    assert oracle.queries == 3
    assert oracle.score(["85+47="], ["122"]).tolist() == pytest.approx([2 / 3])
    assert oracle.queries == 4
    assert oracle.has_score


def test_label_noise_mixes_towards_a_coin_flip():
    clean = RuleOracle(RuleOracleConfig(temperature=0.1, label_noise=0.0), ArithmeticTask()).compare(
        ["85+47="], ["132"], ["3"]
    )[0]
    noisy = RuleOracle(RuleOracleConfig(temperature=0.1, label_noise=0.2), ArithmeticTask()).compare(
        ["85+47="], ["132"], ["3"]
    )[0]
    assert noisy == pytest.approx(0.2 + 0.6 * clean)


def test_labels_sampled_are_seeded_and_threshold_is_deterministic():
    probabilities = np.array([0.9, 0.1, 0.5, 0.7] * 500)
    a = draw_labels(probabilities, "sampled", np.random.default_rng(0))
    b = draw_labels(probabilities, "sampled", np.random.default_rng(0))
    assert np.array_equal(a, b)
    assert a[::4].mean() == pytest.approx(0.9, abs=0.04) and a[1::4].mean() == pytest.approx(0.1, abs=0.04)
    assert draw_labels(np.array([0.9, 0.1, 0.5]), "threshold", np.random.default_rng(0)).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="unknown label mode"):
        draw_labels(probabilities, "vote", np.random.default_rng(0))


def test_build_oracle_needs_a_task():
    with pytest.raises(ConfigError, match="oracle=rule needs a built-in task"):
        build_oracle(RuleOracleConfig(), OracleSite(task=None))


def test_counters_round_trip_through_the_state_dict():
    oracle = RuleOracle(RuleOracleConfig(), ArithmeticTask())
    oracle.compare(["85+47="] * 3, ["132"] * 3, ["122"] * 3)
    oracle.count("failures", 2)
    oracle.count("tokens", 7)
    state = oracle.state_dict()
    restored = RuleOracle(RuleOracleConfig(), ArithmeticTask())
    restored.load_state_dict(state)
    assert restored.metrics() == oracle.metrics() and restored.metrics()["queries"] == 3
    oracle.compare(["1+1="], ["2"], ["3"])
    assert restored.queries == 3  # a copy, not the live counters
