"""The learner through real DeepSpeed engines (CPU, gloo, world size 1)."""

from __future__ import annotations

import pytest
import torch

from oatlike.config import LearnerConfig, LoraConfig
from oatlike.errors import NonFiniteLossError
from oatlike.learner import Learner
from oatlike.losses import build_loss
from oatlike.models.loading import apply_lora, load_causal_lm, load_tokenizer
from oatlike.types import PreferenceBatch


def make_batch(tokenizer, size: int = 8, identical: int = 0) -> PreferenceBatch:
    prompts = [tokenizer(f"{10 + i}+{20 + i}=").input_ids for i in range(size)]
    chosen = [
        [*tokenizer(str(30 + 2 * i), add_special_tokens=False).input_ids, tokenizer.eos_token_id] for i in range(size)
    ]
    rejected = [
        [*tokenizer(str(31 + 2 * i), add_special_tokens=False).input_ids, tokenizer.eos_token_id] for i in range(size)
    ]
    for i in range(identical):
        rejected[i] = list(chosen[i])
    return PreferenceBatch(
        prompts=[tokenizer.decode(p, skip_special_tokens=True) for p in prompts],
        prompt_ids=prompts,
        chosen=[tokenizer.decode(c, skip_special_tokens=True) for c in chosen],
        rejected=[tokenizer.decode(r, skip_special_tokens=True) for r in rejected],
        chosen_ids=chosen,
        rejected_ids=rejected,
        preference_prob=[1.0] * size,
        loss_mask=[i >= identical for i in range(size)],
    )


def make_learner(policy_dir, loss="dpo", lora=False, **options) -> Learner:
    config = LearnerConfig(**{"micro_batch_size": 4, "grad_accum_steps": 2, "lr": 1e-3, **options})
    policy = load_causal_lm(str(policy_dir))
    if lora:
        policy = apply_lora(policy, LoraConfig(enabled=True, r=4, alpha=8))
    loss_fn = build_loss(loss, beta=2.0 if loss == "simpo" else 0.1)
    reference = load_causal_lm(str(policy_dir)) if loss_fn.needs_reference else None
    return Learner(
        config,
        policy,
        reference,
        loss_fn,
        pad_token_id=0,
        buffer_size=8,
        total_optimizer_steps=10,
        device=torch.device("cpu"),
    )


@pytest.mark.parametrize("zero_stage", [0, 1, 2, 3])
def test_learning_raises_the_chosen_margin_under_every_zero_stage(tiny_untrained, zero_stage):
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained, zero_stage=zero_stage)
    batch = make_batch(tokenizer)
    before = learner.weights()
    first = learner.learn(batch)
    for _ in range(4):
        last = learner.learn(batch)
    after = learner.weights()
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(after[k].shape == before[k].shape for k in before)  # ZeRO-3 partitions are gathered
    assert last["train/reward_margin"] > first["train/reward_margin"]
    assert last["train/optimizer_steps"] == 5 and learner.version == 5
    assert first["train/grad_norm"] > 0


def test_zero_learning_rate_changes_nothing(tiny_untrained):
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained, lr=0.0)
    before = learner.weights()
    learner.learn(make_batch(tokenizer))
    after = learner.weights()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_identical_pairs_are_masked_and_count_in_the_mean(tiny_untrained):
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained, lr=0.0)
    all_masked = learner.learn(make_batch(tokenizer, identical=8))
    assert all_masked["train/loss"] == 0.0
    half = make_learner(tiny_untrained, lr=0.0).learn(make_batch(tokenizer, identical=4))
    full = make_learner(tiny_untrained, lr=0.0).learn(make_batch(tokenizer, identical=0))
    # at initialisation every pair has loss log 2: masking half the pairs halves the mean
    assert half["train/loss"] == pytest.approx(full["train/loss"] / 2, rel=1e-4)
    assert full["train/loss"] == pytest.approx(0.693147, abs=1e-5)


def test_non_finite_loss_stops_before_touching_the_weights(tiny_untrained, monkeypatch):
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained)
    before = learner.weights()
    # a fake: the loss turns NaN, as it would after a numerical blow-up
    monkeypatch.setattr(learner.loss, "per_pair", lambda logps: logps.policy_chosen * float("nan"))
    with pytest.raises(NonFiniteLossError, match="the dpo loss is nan at learner step 1"):
        learner.learn(make_batch(tokenizer))
    after = learner.weights()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_reference_free_loss_skips_the_reference(tiny_untrained):
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained, loss="simpo")
    assert learner.reference is None
    metrics = learner.learn(make_batch(tokenizer))
    assert metrics["train/loss"] > 0


def test_lora_learner_exports_merged_base_weights(tiny_untrained, tmp_path):
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained, lora=True, lr=1e-2)
    base = load_causal_lm(str(tiny_untrained)).state_dict()
    for _ in range(3):
        learner.learn(make_batch(tokenizer))
    weights = learner.weights()
    assert weights.keys() == base.keys()
    changed = [k for k in base if not torch.equal(base[k], weights[k])]
    assert changed and all("proj" in k for k in changed)  # only adapted projections moved
    learner.save(tmp_path / "ckpt", tokenizer)
    reloaded = load_causal_lm(str(tmp_path / "ckpt")).state_dict()
    assert all(torch.equal(reloaded[k], weights[k]) for k in weights)
    assert (tmp_path / "ckpt" / "tokenizer.json").exists()
