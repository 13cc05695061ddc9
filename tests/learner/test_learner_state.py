"""The learner's state round-trips: a learner restored from another's state trains on exactly as it would.

Each case trains a learner for two steps (with a π_ref refresh between them), takes its state, builds a
fresh learner from scratch (other seed, initial weights) and loads the state into it; then both learn the
same batch. Weights, metrics and the buffer must agree bitwise: the optimizer's moments, the LR schedule,
the references, the buffer and the minibatch order all came along.
"""

from __future__ import annotations

import pytest
import torch
from helpers import make_batch, make_learner

from oatlike.learner.config import LearnerConfig
from oatlike.learner.ensemble import LoraEnsembleLearner
from oatlike.learner.learner import Learner
from oatlike.losses.config import DPOLossConfig
from oatlike.losses.loss import build_loss
from oatlike.models.config import LoraConfig
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.models.lora import apply_lora_ensemble

TIMES = ("learn_seconds",)


def train_twice(learner: Learner, tokenizer) -> None:
    learner.learn(make_batch(tokenizer, size=8))
    learner.refresh_reference()
    learner.learn(make_batch(tokenizer, size=8, identical=2, reference_version=1))


def assert_continues_identically(make, tokenizer) -> None:
    original = make(seed=0)
    train_twice(original, tokenizer)
    state = original.state_dict()
    restored = make(seed=1)
    restored.load_state_dict(state)
    batch = make_batch(tokenizer, size=8, reference_version=1)
    expected, got = original.learn(batch), restored.learn(batch)
    assert {k: v for k, v in got.items() if not k.endswith(TIMES)} == {
        k: v for k, v in expected.items() if not k.endswith(TIMES)
    }
    a, b = original.weights(), restored.weights()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert restored.version == original.version == 3 and restored.optimizer_steps == original.optimizer_steps
    assert all(torch.equal(original.buffer.cached[k], restored.buffer.cached[k]) for k in original.buffer.cached)


@pytest.mark.parametrize(
    "options",
    [{"zero_stage": 0}, {"zero_stage": 1}, {"zero_stage": 2}, {"zero_stage": 3}, {"lora": True}, {"loss": "simpo"}],
    ids=["zero0", "zero1", "zero2", "zero3", "lora", "reference-free"],
)
def test_learner_state_round_trip(tiny_untrained, options):
    tokenizer = load_tokenizer(str(tiny_untrained))
    options = {"lr_scheduler": "linear", "warmup_steps": 1, **options}

    def make(seed: int) -> Learner:
        return make_learner(tiny_untrained, seed=seed, **options)

    assert_continues_identically(make, tokenizer)


def test_lora_ensemble_state_round_trip(tiny_untrained):
    tokenizer = load_tokenizer(str(tiny_untrained))

    def make(seed: int) -> LoraEnsembleLearner:
        members = apply_lora_ensemble(load_causal_lm(str(tiny_untrained)), LoraConfig(r=4, alpha=8), 2, seed=seed)
        return LoraEnsembleLearner(
            LearnerConfig(micro_batch_size=4, grad_accum_steps=2, lr=1e-2),
            members,
            load_causal_lm(str(tiny_untrained)),
            build_loss(DPOLossConfig()),
            merge="delta_mean",
            merged_model=load_causal_lm(str(tiny_untrained)),
            pad_token_id=0,
            buffer_size=8,
            total_optimizer_steps=10,
            device=torch.device("cpu"),
            seed=seed,
        )

    assert_continues_identically(make, tokenizer)
