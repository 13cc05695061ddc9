"""The actor on a real tiny model: pairs chosen, identical pairs masked and not asked, labels, its state."""

from __future__ import annotations

import pytest
import torch

from oatlike.actors.actor import Actor
from oatlike.engines.base import SamplingParams
from oatlike.engines.hf import HFEngine
from oatlike.exploration.base import PassiveActor
from oatlike.exploration.config import PassiveExploreConfig
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.oracles.config import RuleOracleConfig
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.types import Prompt


@pytest.fixture(scope="module")
def engine(warm_policy):
    return HFEngine(load_causal_lm(str(warm_policy)), load_tokenizer(str(warm_policy)), max_batch_size=16)


def prompts_of(engine: HFEngine, texts: list[str]) -> list[Prompt]:
    return [Prompt(t, tuple(engine.tokenizer(t).input_ids)) for t in texts]


def make_actor(engine: HFEngine, label_mode: str = "sampled", seed: int = 0) -> Actor:
    task = ArithmeticTask()
    oracle = RuleOracle(RuleOracleConfig(), task)
    explorer = PassiveActor(PassiveExploreConfig(), seed)
    return Actor(engine, oracle, explorer, SamplingParams(n=2, max_new_tokens=8), label_mode, seed, task.utility)


def test_actor_step_labels_pairs_and_counts_queries(engine):
    task = ArithmeticTask()
    actor = make_actor(engine)
    oracle = actor.oracle
    prompts = prompts_of(engine, [p.text for p in task.split("train")[:32]])
    torch.manual_seed(0)
    batch, metrics = actor.step(prompts)
    assert len(batch) == 32
    identical = [c == r for c, r in zip(batch.chosen_ids, batch.rejected_ids, strict=True)]
    assert batch.loss_mask == [not i for i in identical]
    assert oracle.queries == sum(batch.loss_mask) == metrics["oracle/step_queries"]  # identical pairs not asked
    assert metrics["actor/identical_pairs"] == sum(identical)
    for i in range(32):
        if batch.loss_mask[i]:
            assert batch.preference_prob[i] == pytest.approx(
                oracle.compare([batch.prompts[i]], [batch.chosen[i]], [batch.rejected[i]])[0]
            )
        else:
            assert batch.preference_prob[i] == 0.5
    assert 0.0 <= metrics["actor/utility"] <= metrics["actor/best_of_k_utility"] <= 1.0
    assert batch.records()[0].keys() >= {"prompt", "chosen", "rejected", "preference_prob", "loss_mask"}


def test_threshold_labels_choose_the_better_response(engine):
    task = ArithmeticTask()
    actor = make_actor(engine, "threshold")
    torch.manual_seed(0)
    batch, _ = actor.step(prompts_of(engine, [p.text for p in task.split("train")[:32]]))
    for prompt, chosen, rejected in zip(batch.prompts, batch.chosen, batch.rejected, strict=True):
        assert task.utility(prompt, chosen) >= task.utility(prompt, rejected)


def test_batches_record_the_versions_that_made_them(engine):
    actor = make_actor(engine)
    actor.load_reference_weights(None, 3)  # no reference engine: only the version moves
    batch, _ = actor.step(prompts_of(engine, ["12+34=", "85+47="]))
    assert batch.behaviour_versions == [engine.weights_version] * 2 and batch.reference_versions == [3, 3]


def test_state_round_trip_continues_the_same_streams(engine):
    """An actor restored from another's state labels and samples exactly as the original goes on to."""
    prompts = prompts_of(engine, [p.text for p in ArithmeticTask().split("train")[:16]])
    original = make_actor(engine, seed=1)
    torch.manual_seed(5)
    original.step(prompts)
    state = original.state_dict()
    expected, expected_metrics = original.step(prompts)
    restored = make_actor(engine, seed=2)  # other seeds: everything that matters comes from the state
    torch.manual_seed(6)
    restored.load_state_dict(state)
    batch, metrics = restored.step(prompts)
    assert batch.chosen_ids == expected.chosen_ids and batch.rejected_ids == expected.rejected_ids
    assert batch.preference_prob == expected.preference_prob
    assert metrics["oracle/queries"] == expected_metrics["oracle/queries"] > 0  # the counters came along
