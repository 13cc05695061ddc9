"""The explorers' own models: SEA's reward ensemble (actor side) and COPO's coin-flip network (learner side)
learn as specified and round-trip through their state exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import toy_rollout

from oatlike.exploration import sea
from oatlike.exploration.base import BonusInputs
from oatlike.exploration.config import COPOExploreConfig, SEAExploreConfig
from oatlike.exploration.copo import COPOLearner
from oatlike.exploration.sea import SEAActor
from oatlike.losses.config import DPOLossConfig
from oatlike.losses.loss import PairLogps
from oatlike.types import PreferenceBatch, Rollout


def featured_rollout(num_prompts: int, num_candidates: int, seed: int) -> Rollout:
    """Candidates whose 16-d features carry their utility in the first coordinate (so an ERM can learn)."""
    rollout = toy_rollout(num_prompts, num_candidates)
    features = np.random.default_rng(seed).normal(size=(num_prompts, num_candidates, 16)).astype(np.float32)
    rollout.extras["features"] = features
    return rollout


def labelled(explorer: SEAActor, rollout: Rollout, rng: np.random.Generator) -> tuple[np.ndarray, PreferenceBatch]:
    """Select pairs and label them by the first feature coordinate; returns (chosen, rejected) and the mask."""
    pairs = explorer.select(rollout, None, rng).pairs
    first = rollout.extras["features"][:, :, 0]
    rows = np.arange(len(rollout))
    a_wins = first[rows, pairs[:, 0]] >= first[rows, pairs[:, 1]]
    chosen_first = np.where(a_wins[:, None], pairs, pairs[:, ::-1])
    distinct = [bool(x != y) for x, y in pairs]
    size = len(rollout)
    batch = PreferenceBatch(
        [""] * size,
        [[]] * size,
        [""] * size,
        [""] * size,
        [[]] * size,
        [[]] * size,
        [1.0] * size,
        distinct,
        [0] * size,
        [0] * size,
    )
    return chosen_first, batch


def test_sea_anchor_is_scaled_by_the_pairs_drawn_not_the_configured_batch(monkeypatch):
    """λ·(B/Q_t)·drift with B the pairs of the step's minibatch: at the first update 32 pairs exist, not
    explore.batch_size = 128 (which made the anchor 4× too strong)."""
    seen: list[int] = []
    real = sea.enn_loss

    def recording(*args, **kwargs):
        seen.append(args[5])  # batch_size
        return real(*args, **kwargs)

    monkeypatch.setattr(sea, "enn_loss", recording)
    explorer = SEAActor(SEAExploreConfig(ensemble_size=4, hidden_dim=8, sgd_steps=2, batch_size=128), seed=0)
    rng = np.random.default_rng(0)
    rollout = featured_rollout(32, 4, seed=0)
    explorer.update(rollout, *labelled(explorer, rollout, rng))
    assert seen == [32, 32]
    rollout = featured_rollout(32, 4, seed=1)
    explorer.update(rollout, *labelled(explorer, rollout, rng))
    assert seen[2:] == [64, 64]  # the buffer holds 64 pairs now; still below 128


def test_sea_ensemble_state_round_trip():
    config = SEAExploreConfig(ensemble_size=4, hidden_dim=8, sgd_steps=3, batch_size=16)
    original, rng = SEAActor(config, seed=0), np.random.default_rng(0)
    for seed in range(3):
        rollout = featured_rollout(16, 4, seed)
        original.update(rollout, *labelled(original, rollout, rng))
    state = original.state_dict()
    restored = SEAActor(config, seed=7)
    restored.load_state_dict(state)
    assert restored.queries == original.queries > 0
    rollout = featured_rollout(16, 4, seed=3)
    pairs = [explorer.select(rollout, None, np.random.default_rng(1)).pairs for explorer in (original, restored)]
    assert np.array_equal(*pairs)
    for explorer in (original, restored):
        explorer.update(rollout, *labelled(explorer, rollout, np.random.default_rng(1)))
    a, b = original.model.state_dict(), restored.model.state_dict()  # type: ignore[union-attr]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same minibatches, optimizer moments and anchor


def copo_bonus_inputs(features: torch.Tensor) -> BonusInputs:
    size = len(features)
    logps = PairLogps(*(torch.full((size,), -10.0) for _ in range(4)), torch.ones(size), torch.ones(size))
    return BonusInputs(logps, torch.full((size,), -5.0), torch.full((size,), -5.5), features)


def test_copo_cfn_state_round_trip():
    config = COPOExploreConfig(cfn_steps=3, cfn_batch_size=8)
    original = COPOLearner(config, DPOLossConfig(), seed=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        original.learner_update({"own_features": torch.randn(8, 16, generator=generator)}, reference_version=0)
    state = original.state_dict()
    restored = COPOLearner(config, DPOLossConfig(), seed=5)
    restored.load_state_dict(state)
    features = torch.randn(8, 16, generator=generator)
    for learner in (original, restored):
        learner.learner_update({"own_features": features}, reference_version=0)
    bonuses = [learner.bonus(copo_bonus_inputs(features)) for learner in (original, restored)]
    assert torch.equal(*bonuses) and float(bonuses[0].abs().sum()) > 0


@pytest.mark.parametrize("data", ["cumulative", "current_iteration"])
def test_copo_cfn_data_scope_follows_the_reference_version(data):
    learner = COPOLearner(COPOExploreConfig(cfn_data=data), DPOLossConfig(), seed=0)
    for version in (0, 0, 1):
        learner.learner_update({"own_features": torch.randn(4, 16)}, reference_version=version)
    assert learner.counter is not None
    assert len(learner.counter.features) == (12 if data == "cumulative" else 4)  # restarted at the refresh
