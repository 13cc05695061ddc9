"""Pair selection of the baseline explorers: a random distinct pair, the oracle's best and worst."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import toy_rollout

from oatlike.errors import ConfigError
from oatlike.exploration.base import BestWorstActor, Need, PassiveActor, build_actor_explorer
from oatlike.exploration.config import BestWorstExploreConfig, PassiveExploreConfig


def test_passive_selection_is_a_uniform_pair_of_distinct_candidates():
    explorer = PassiveActor(PassiveExploreConfig(), seed=0)
    pairs = explorer.select(toy_rollout(3000, 4), None, np.random.default_rng(0)).pairs
    assert pairs.shape == (3000, 2) and np.all(pairs[:, 0] != pairs[:, 1])
    counts = np.bincount(pairs.ravel(), minlength=4) / pairs.size
    np.testing.assert_allclose(counts, 0.25, atol=0.02)
    assert Need.ORACLE_SCORES not in explorer.needs


def test_best_worst_selection():
    explorer = build_actor_explorer(BestWorstExploreConfig(), seed=0)
    assert isinstance(explorer, BestWorstActor) and Need.ORACLE_SCORES in explorer.needs
    scores = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.5, 0.5, 0.5]])
    pairs = explorer.select(toy_rollout(2, 4), scores, np.random.default_rng(0)).pairs
    assert pairs[0].tolist() == [1, 0]
    assert pairs[1, 0] != pairs[1, 1]  # all tied: a random distinct pair
    with pytest.raises(ValueError, match="needs the oracle's scores"):
        explorer.select(toy_rollout(1, 2), None, np.random.default_rng(0))


def test_an_unknown_explorer_names_the_key():
    with pytest.raises(ConfigError, match=r"explore\.name: unknown explore 'magic'"):
        build_actor_explorer(PassiveExploreConfig(name="magic"), seed=0)
