"""The learner through real DeepSpeed engines (CPU, gloo, world size 1)."""

from __future__ import annotations

import pytest
import torch
from helpers import make_batch, make_learner

from oatlike.errors import NonFiniteLossError
from oatlike.models.loading import load_causal_lm, load_tokenizer


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
    assert learner.references.model is None
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


def test_dropout_is_off_in_the_policy(tmp_path, tiny_untrained):
    """A GPT-2-shaped model has dropout in its config; with policy = reference every pair's DPO loss must be
    log 2 exactly (dropout in the policy's forward pass would make the two log-probs differ)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = load_tokenizer(str(tiny_untrained))
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=64)
    assert config.resid_pdrop == config.attn_pdrop == config.embd_pdrop == 0.1
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    learner = make_learner(tmp_path / "gpt2", lr=0.0)
    metrics = learner.learn(make_batch(tokenizer))
    assert metrics["train/loss"] == pytest.approx(0.693147, abs=1e-6)
    assert metrics["train/reward_margin"] == 0.0


def test_pairs_are_scored_by_the_reference_version_their_actor_held(tiny_untrained):
    """π_ref refreshed to version 1 while pairs collected with version 0 are still to come (async, BPO): those
    pairs get the initial reference's log-probs, later ones the refreshed reference's, and old versions go."""
    tokenizer = load_tokenizer(str(tiny_untrained))
    learner = make_learner(tiny_untrained, lr=1e-2)
    initial = learner.weights()
    learner.learn(make_batch(tokenizer))
    learner.refresh_reference()  # version 1: the policy after one step
    refreshed = learner.weights()
    assert any(not torch.equal(initial[k], refreshed[k]) for k in initial)

    def reference_logps(weights):
        model = load_causal_lm(str(tiny_untrained))
        model.load_state_dict(weights)
        batch = make_batch(tokenizer)
        with torch.no_grad():
            return learner._forward(model.eval(), batch)["chosen"]

    stale = make_batch(tokenizer, reference_version=0)
    learner.learn(stale)
    torch.testing.assert_close(learner.buffer.cached["reference_chosen"], reference_logps(initial), rtol=0, atol=1e-5)
    assert learner.references.available() == [0, 1]  # a pair of version 0 came: version 1 is still needed
    learner.learn(make_batch(tokenizer, reference_version=1))
    torch.testing.assert_close(learner.buffer.cached["reference_chosen"], reference_logps(refreshed), rtol=0, atol=1e-5)
    assert learner.references.available() == [1]  # no pair can need version 0 any more
