"""The rule oracle (Bradley–Terry annotators over the true utility), labels, and pair selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oatlike.config import ExploreConfig, RuleOracleConfig
from oatlike.errors import ConfigError
from oatlike.exploration import BestWorstExplorer, PassiveExplorer, build_explorer
from oatlike.oracles import RuleOracle, build_oracle, draw_labels
from oatlike.tasks import ArithmeticTask
from oatlike.types import Generation, Prompt, Rollout


def test_bradley_terry_probabilities_and_query_count():
    oracle = RuleOracle(ArithmeticTask(), temperature=0.1)
    p = oracle.compare(["85+47=", "85+47=", "1+1="], ["132", "122", "2"], ["122", "132", "2"])
    gap = 1.0 - 2 / 3
    np.testing.assert_allclose(p, [1 / (1 + math.exp(-gap / 0.1)), 1 / (1 + math.exp(gap / 0.1)), 0.5])
    assert oracle.queries == 3
    assert oracle.score(["85+47="], ["122"]).tolist() == pytest.approx([2 / 3])
    assert oracle.queries == 4
    assert oracle.has_score


def test_label_noise_mixes_towards_a_coin_flip():
    clean = RuleOracle(ArithmeticTask(), 0.1, 0.0).compare(["85+47="], ["132"], ["3"])[0]
    noisy = RuleOracle(ArithmeticTask(), 0.1, 0.2).compare(["85+47="], ["132"], ["3"])[0]
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
        build_oracle(RuleOracleConfig(), None)


def rollout(num_prompts: int, num_candidates: int) -> Rollout:
    prompts = [Prompt(f"{i}+1=", (1,)) for i in range(num_prompts)]
    candidates = [[Generation([10 + j], str(j), True) for j in range(num_candidates)] for _ in prompts]
    return Rollout(prompts, candidates)


def test_passive_selection_is_a_uniform_pair_of_distinct_candidates():
    pairs = PassiveExplorer().select(rollout(3000, 4), None, np.random.default_rng(0)).pairs
    assert pairs.shape == (3000, 2) and np.all(pairs[:, 0] != pairs[:, 1])
    counts = np.bincount(pairs.ravel(), minlength=4) / pairs.size
    np.testing.assert_allclose(counts, 0.25, atol=0.02)


def test_best_worst_selection():
    scores = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5]])
    pairs = BestWorstExplorer().select(rollout(2, 4), scores, np.random.default_rng(0)).pairs
    assert pairs[0].tolist() == [1, 0]
    assert pairs[1, 0] != pairs[1, 1]  # all tied: a random distinct pair
    with pytest.raises(ValueError, match="needs the oracle's scores"):
        BestWorstExplorer().select(rollout(1, 2), None, np.random.default_rng(0))
    assert build_explorer(ExploreConfig(name="best_worst")).needs_scores
    with pytest.raises(ConfigError, match="unknown explorer"):
        build_explorer(ExploreConfig(name="magic"))
