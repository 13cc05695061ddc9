"""Explorers inside the real loop: what the actor generates and asks, what the learner caches (once),
reference refreshes, query counting, the LoRA ensemble, and every ``algo=`` preset through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import RENDEZVOUS_ENV, make_batch, make_config, oatlike, read_metrics, run_local

from oatlike.builder import Builder
from oatlike.engines.base import SamplingParams
from oatlike.exploration.sea import MODEL_DATA
from oatlike.learner.config import LearnerConfig
from oatlike.learner.ensemble import LoraEnsembleLearner
from oatlike.learner.learner import Learner
from oatlike.losses.config import DPOLossConfig
from oatlike.losses.loss import build_loss
from oatlike.models.config import LoraConfig
from oatlike.models.loading import load_causal_lm
from oatlike.models.lora import apply_lora, apply_lora_ensemble
from oatlike.models.sequences import model_sequence_logps, pack_sequences
from oatlike.types import OWN_RESPONSE_IDS


def built(tmp_path: Path, *overrides: str) -> Builder:
    return Builder(make_config(tmp_path, *overrides), progress=False)


def test_selm_actor_sends_the_reference_models_greedy_response(tmp_path):
    builder = built(tmp_path, "algo=selm")
    actor = builder.actor()
    assert actor.reference_engine is not None and actor.backbone is None
    prompts = builder.prompt_sets[0].prompts[:8]
    batch, metrics = actor.step(prompts)
    greedy = SamplingParams(n=1, greedy=True, max_new_tokens=builder.config.actor.max_new_tokens)
    expected = actor.reference_engine.generate([list(p.token_ids) for p in prompts], greedy)
    assert batch.extras[OWN_RESPONSE_IDS] == [group[0].token_ids for group in expected]
    assert metrics["explorer/reference_generated"] == 8


def test_xpo_pairs_a_policy_sample_with_a_reference_sample(tmp_path, tiny_untrained):
    builder = built(tmp_path, "algo=xpo")
    actor = builder.actor()
    assert actor.reference_engine is not None
    # an untrained reference rambles to max_new_tokens; the warm-started policy answers and stops
    actor.reference_engine.load_weights(load_causal_lm(str(tiny_untrained)).state_dict(), 0)
    rollout = actor.rollout(builder.prompt_sets[0].prompts[:16])
    assert [len(group) for group in rollout.candidates] == [2] * 16
    assert rollout.extras["from_reference"] == [[False, True]] * 16
    finished = np.array([[g.finished for g in group] for group in rollout.candidates]).mean(axis=0)
    assert finished[0] > 0.9 and finished[1] < 0.5
    chosen_first = np.array([[1, 0], [0, 1]] * 8)
    assert actor.explorer.pair_extras(rollout, chosen_first)["chosen_from_reference"] == [True, False] * 8


def test_reference_quantities_are_computed_once_per_pair(tmp_path, tiny_untrained):
    """SELM's s_ref(own) is cached when a pair enters the buffer; training passes never run the reference."""
    builder = built(tmp_path, "algo=selm")
    explorer = builder.learner_explorer()
    policy, reference = load_causal_lm(str(tiny_untrained)), load_causal_lm(str(tiny_untrained))
    rows: dict[str, list[int]] = {"reference": [], "policy": []}
    for name, model in (("reference", reference), ("policy", policy)):
        model.register_forward_pre_hook(
            lambda m, a, kw, name=name: rows[name].append(len(kw["input_ids"])), with_kwargs=True
        )
    learner = Learner(
        LearnerConfig(micro_batch_size=4, grad_accum_steps=2, epochs=3, lr=1e-3),
        policy,
        reference,
        build_loss(DPOLossConfig()),
        pad_token_id=0,
        buffer_size=8,
        total_optimizer_steps=10,
        device=torch.device("cpu"),
        explorer=explorer,
    )
    batch = make_batch(builder.tokenizer)
    batch.extras[OWN_RESPONSE_IDS] = [[*ids, 7] for ids in batch.chosen_ids]
    metrics = learner.learn(batch)
    assert rows["reference"] == [3 * 4, 3 * 4]  # chosen, rejected and own of the 8 pairs, once each
    assert rows["policy"] == [3 * 4] * 6  # 3 epochs × 2 micro-batches, the own response in the same pass
    packed = pack_sequences(batch.prompt_ids, batch.extras[OWN_RESPONSE_IDS], 0)
    with torch.no_grad():
        expected = model_sequence_logps(load_causal_lm(str(tiny_untrained)), packed)
    torch.testing.assert_close(learner.buffer.cached["reference_own"], expected)
    assert "explorer/bonus" in metrics and "explorer/own_logps" in metrics


def test_copo_caches_eos_features_and_trains_its_cfn(tmp_path):
    learner = run_local(tmp_path, "algo=copo", "steps=2", "eval.every=0").learner
    features = learner.buffer.cached["own_features"]
    assert features.shape == (32, 128)  # one 1M-model hidden state per pair
    records = [r for r in read_metrics(tmp_path) if "train/loss" in r]
    assert all(r["explorer/cfn_examples"] == 32 * r["step"] for r in records)  # cumulative visits
    assert all(0 < r["explorer/count_bonus"] < 0.1 for r in records)  # κ = 0.1 times an RMS below 1


def test_iterative_reference_refresh_reaches_learner_and_actor(tmp_path):
    done = run_local(tmp_path, "algo=selm", "explore.reference_refresh_every=2", "steps=3", "eval.every=0")
    assert done.learner.reference_version == 2 and done.actor.reference_version == 2
    weights = done.learner.weights()
    reference = done.learner.references.model.state_dict()  # type: ignore[union-attr]
    actor_reference = done.actor.reference_engine.model.state_dict()  # type: ignore[union-attr]
    changed = [k for k in weights if not torch.equal(weights[k], reference[k])]
    assert changed  # step 3 trained after the refresh at step 2
    assert [r["misc/reference_version"] for r in read_metrics(tmp_path) if "misc/reference_version" in r] == [2]
    assert all(torch.equal(reference[k], actor_reference[k]) for k in reference)


def test_bpo_reference_is_the_behaviour_model_at_every_sync(tmp_path):
    done = run_local(tmp_path, "algo=bpo", "explore.ensemble_size=1", "sync_every=2", "steps=4", "eval.every=0")
    behaviour = done.actor.engine.model.state_dict()  # type: ignore[attr-defined]
    reference = done.learner.references.model.state_dict()  # type: ignore[union-attr]
    assert done.actor.policy_version == done.learner.reference_version == done.actor.reference_version == 4
    assert all(torch.equal(behaviour[k], reference[k]) for k in reference)
    records = [r for r in read_metrics(tmp_path) if "misc/reference_version" in r]
    assert [r["step"] for r in records] == [2, 4]


@pytest.mark.parametrize("labels", ["erm", "oracle"])
def test_sea_counts_only_real_oracle_queries(tmp_path, labels):
    builder = built(
        tmp_path,
        "algo=sea",
        "explore.model_rollout=true",
        "explore.burn_in_steps=1",
        "explore.max_model_data_ratio=0.5",
        f"explore.model_data_labels={labels}",
        "explore.ensemble_size=4",
    )
    actor = builder.actor()
    prompts = builder.prompt_sets[0].prompts
    actor.step(prompts[:32])  # burn-in: oracle labels only
    queries = actor.oracle.queries
    rollouts = []
    update = actor.explorer.update

    def keep_rollout(rollout, chosen_first, batch):
        rollouts.append(rollout)
        return update(rollout, chosen_first, batch)

    actor.explorer.update = keep_rollout  # type: ignore[method-assign]
    batch, metrics = actor.step(prompts[32:64])
    model_data = rollouts[0].extras[MODEL_DATA]
    distinct = np.array(batch.loss_mask)
    assert model_data.sum() == 16 and metrics["explorer/model_pairs"] == 16
    expected = distinct.sum() if labels == "oracle" else (distinct & ~model_data).sum()
    assert actor.oracle.queries - queries == metrics["oracle/step_queries"] == expected
    assert metrics["explorer/queries"] == actor.oracle.queries  # the ERM's Q_t is the oracle's own count


def test_apl_labels_the_highest_entropy_prompts_of_a_larger_pool(tmp_path):
    builder = built(tmp_path, "algo=apl")
    actor = builder.actor()
    assert builder.config.explore.prompt_pool_size(32) == 128
    batch, metrics = actor.step(builder.prompt_sets[0].prompts[:128])
    assert len(batch) == 32 and metrics["oracle/step_queries"] <= 32
    assert metrics["explorer/kept_entropy"] >= metrics["explorer/pool_entropy"]
    assert metrics["explorer/scored_sequences"] == 2 * 32 * 4  # policy and reference, kept prompts only


def test_lora_ensemble_members_step_like_separate_learners(tiny_untrained):
    """Member k of the ensemble moves exactly as a lone LoRA learner with the same init and data would."""
    from oatlike.models.loading import load_tokenizer

    config = LearnerConfig(micro_batch_size=4, grad_accum_steps=2, lr=1e-2)
    lora = LoraConfig(enabled=True, r=4, alpha=8)
    options = {"pad_token_id": 0, "buffer_size": 8, "total_optimizer_steps": 4, "device": torch.device("cpu")}
    ensemble = apply_lora_ensemble(load_causal_lm(str(tiny_untrained)), lora, size=2, seed=0)
    reference = load_causal_lm(str(tiny_untrained))
    merged_model = load_causal_lm(str(tiny_untrained))
    learner = LoraEnsembleLearner(
        config,
        ensemble,
        reference,
        build_loss(DPOLossConfig()),
        merge="delta_mean",
        merged_model=merged_model,
        **options,
    )
    torch.manual_seed(1)  # member_1's seed
    policy = apply_lora(load_causal_lm(str(tiny_untrained)), lora)
    alone = Learner(config, policy, load_causal_lm(str(tiny_untrained)), build_loss(DPOLossConfig()), **options)
    batch = make_batch(load_tokenizer(str(tiny_untrained)))
    first = learner.learn(batch)
    metrics = learner.learn(batch)
    alone.learn(batch)
    alone.learn(batch)
    members = dict(learner.ensemble.named_parameters())
    for name, parameter in alone.policy.named_parameters():
        if "lora_" in name:
            torch.testing.assert_close(members[name.replace(".default.", ".member_1.")], parameter)
    assert metrics["explorer/member_forward_passes"] == 2
    assert first["explorer/member_loss_std"] == 0 < metrics["explorer/member_loss_std"]  # B = 0 at first, then apart
    merged = learner.weights()  # the merged ensemble: base-model names
    assert merged.keys() == load_causal_lm(str(tiny_untrained)).state_dict().keys()


@pytest.mark.slow
def test_every_algorithm_preset_runs_through_the_cli(tmp_path):
    algos = ["copo", "bpo"]  # the CLI path; every preset runs in-process in tests/runners/test_matrix.py
    result = oatlike(
        "-m",
        f"algo={','.join(algos)}",
        "steps=2",
        "eval.every=0",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        drop_env=RENDEZVOUS_ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(runs) == len(algos)
    for summary_file in runs:
        summary = json.loads(summary_file.read_text())
        assert summary["steps"] == 2 and summary["oracle_queries"] > 0
        steps = [r for r in read_metrics(summary_file.parent) if "train/loss" in r]
        assert any(key.startswith("explorer/") for key in steps[-1]), summary_file.parent
