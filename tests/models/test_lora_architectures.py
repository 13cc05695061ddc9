"""Any causal LM, full fine-tuning or LoRA: tiny Llama, GPT-2, GPT-NeoX (Pythia), Qwen2 and OPT, built from
configs, each through the real loop (``model=hf model.pretrain=<folder> runner=local``, the rule oracle on
arithmetic). Each run shows (a) training moved the weights (with LoRA, every linear layer but the head, the
default ``all-linear``), (b) the LoRA export gives the logits of PEFT's own ``merge_and_unload``, (c) the
actor's engine holds the learner's export bitwise after the sync, (d) ``checkpoints/final`` reloads with
``from_pretrained`` and gives the learner's logits, (e) dropout is off in the learner. BPO's ensemble is
merged by PEFT on the same architectures (``explore.merge`` linear and delta_mean)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import transformers
from helpers import run_local
from transformers import AutoModelForCausalLM, AutoTokenizer

from oatlike.learner.learner import disable_dropout
from oatlike.warmstart import ensure_tokenizer

TINY = {"num_hidden_layers": 2, "num_attention_heads": 4}
FAMILIES = {
    "llama": lambda: transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_key_value_heads=2, attention_dropout=0.1, **TINY
    ),
    "gpt2": lambda: transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128),  # dropout 0.1 ×3
    "gpt_neox": lambda: transformers.GPTNeoXConfig(
        hidden_size=32, intermediate_size=64, attention_dropout=0.1, hidden_dropout=0.1, **TINY
    ),
    "qwen2": lambda: transformers.Qwen2Config(
        hidden_size=32, intermediate_size=64, num_key_value_heads=2, attention_dropout=0.1, **TINY
    ),
    "opt": lambda: transformers.OPTConfig(
        hidden_size=32, ffn_dim=64, word_embed_proj_dim=32, dropout=0.1, attention_dropout=0.1, layerdrop=0.1, **TINY
    ),
}
LINEAR_LAYERS = {  # what the default all-linear adapts: every linear layer but the output head
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "gpt2": {"c_attn", "c_proj", "c_fc"},
    "gpt_neox": {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"},
    "qwen2": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "opt": {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"},
}
RUN = (
    "steps=2",
    "eval.every=0",
    "actor.prompts_per_step=8",
    "actor.max_new_tokens=6",
    "learner.micro_batch_size=4",
    "learner.lr=0.01",  # large steps on purpose: LoRA's B far from 0, so a wrong merge shows in the logits
    "task.num_eval=8",
    "weight_sync.probe_prompts=4",
)
INPUTS = torch.randint(3, 1000, (2, 12), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory, cache_dir) -> dict[str, Path]:
    """A tiny randomly initialised model of each family (hidden 32, 2 layers) with the shared tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(ensure_tokenizer(cache_dir))
    ids = {"bos_token_id": 1, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    folders = {}
    for family, make_config in FAMILIES.items():
        config = make_config()
        config.update({"vocab_size": 1024, **ids})
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(family)
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[family] = folder
    return folders


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=INPUTS).logits


def plain_model(folder: Path, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.load_state_dict(weights)
    return model


def max_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_trains_merges_syncs_and_saves(tmp_path, model_folders, family, lora):
    folder = model_folders[family]
    overrides = ("model.lora.enabled=true", "model.lora.r=4") if lora else ()
    done = run_local(tmp_path, "model=hf", f"model.pretrain={folder}", *RUN, *overrides)
    learner, policy = done.learner, done.learner.policy
    exported = learner.weights()
    initial = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    assert exported.keys() == initial.keys()

    # (a) two optimizer steps moved the weights; with LoRA, exactly the linear layers but the head
    assert done.summary["steps"] == 2 and learner.optimizer_steps == 2
    changed = {key for key in initial if not torch.equal(exported[key], initial[key])}
    if lora:
        assert {key.split(".")[-2] for key in changed} == LINEAR_LAYERS[family]
        assert all(key.endswith(".weight") for key in changed)
    else:
        assert len(changed) > len(initial) // 2

    # (b) the export is PEFT's merge: the logits of merge_and_unload and of the adapters themselves
    merged = plain_model(folder, exported)
    if lora:
        assert max_gap(logits(merged), logits(copy.deepcopy(policy).merge_and_unload())) < 1e-5
        assert max_gap(logits(merged), logits(copy.deepcopy(policy))) < 1e-5
        assert any("lora_B" in name and p.abs().max() > 1e-3 for name, p in policy.named_parameters())

    # (c) the last sync left the actor's engine with the learner's export, bitwise
    assert done.actor.policy_version == learner.version == 2
    actor = done.actor.engine.model.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(exported[key], actor[key]) for key in exported)

    # (d) checkpoints/final is a standard folder with the learner's weights
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoints" / "final")
    assert torch.equal(logits(final), logits(merged))
    assert max_gap(logits(final), logits(copy.deepcopy(policy))) < 1e-5

    # (e) dropout is off in the learner: two training-mode passes agree; the model as configured does not
    torch.manual_seed(0)
    policy.train()
    with torch.no_grad():
        assert torch.equal(policy(input_ids=INPUTS).logits, policy(input_ids=INPUTS).logits)
    configured = AutoModelForCausalLM.from_pretrained(folder).train()
    with torch.no_grad():
        assert not torch.equal(configured(input_ids=INPUTS).logits, configured(input_ids=INPUTS).logits)


def test_layerdrop_is_off_too(model_folders):
    # OPT skips each layer with probability layerdrop in training (4 equally likely patterns at 0.5)
    config = transformers.OPTConfig.from_pretrained(model_folders["opt"], dropout=0.0, attention_dropout=0.0)
    config.layerdrop = 0.5
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).train()
    with torch.no_grad():
        before = [model(input_ids=INPUTS).logits for _ in range(6)]
        disable_dropout(model)
        after = [model(input_ids=INPUTS).logits for _ in range(6)]
    assert not all(torch.equal(before[0], other) for other in before[1:])
    assert all(torch.equal(after[0], other) for other in after[1:])


PEFT_COMBINATION = {"linear": "linear", "delta_mean": "cat"}
"""PEFT's own ``add_weighted_adapter`` rule for each ``explore.merge``: ``cat`` with weights 1/K concatenates
the factors, so its ΔW is exactly the mean of the members' deltas."""


BPO_CASES = [("gpt2", "linear")] + [  # GPT-2's transposed Conv1D in `make test-fast`; the rest ~35 s more
    pytest.param(family, merge, marks=pytest.mark.slow)
    for family, merge in [(f, "linear") for f in FAMILIES if f != "gpt2"]
    + [("gpt2", "delta_mean"), ("opt", "delta_mean")]
]


@pytest.mark.parametrize(("family", "merge"), BPO_CASES)
def test_bpo_ensemble_merges_on_every_architecture(tmp_path, model_folders, family, merge):
    folder = model_folders[family]
    overrides = ("algo=bpo", "explore.ensemble_size=2", f"explore.merge={merge}", "model.lora.r=4")
    done = run_local(tmp_path, "model=hf", f"model.pretrain={folder}", *RUN, *overrides)
    learner = done.learner
    exported = learner.weights()
    actor = done.actor.engine.model.state_dict()  # type: ignore[attr-defined]
    assert done.actor.policy_version == 2 and all(torch.equal(exported[key], actor[key]) for key in exported)
    ensemble = copy.deepcopy(learner.policy)
    members = list(learner.adapters)
    assert members == ["member_0", "member_1"]
    ensemble.add_weighted_adapter(members, [0.5, 0.5], "peft", combination_type=PEFT_COMBINATION[merge])
    ensemble.set_adapter("peft")
    peft_merged = logits(ensemble.merge_and_unload(adapter_names=["peft"]))
    ours = logits(plain_model(folder, exported))
    assert max_gap(ours, peft_merged) < 1e-5
    assert max_gap(ours, logits(AutoModelForCausalLM.from_pretrained(folder))) > 1e-3  # the members moved


@pytest.mark.slow  # two runs, ~12 s
def test_lora_export_gathers_zero3_partitions(tmp_path, model_folders):
    folder = model_folders["gpt2"]
    lora = ("model=hf", f"model.pretrain={folder}", *RUN, "model.lora.enabled=true", "model.lora.r=4")
    runs = {stage: run_local(tmp_path / f"zero{stage}", *lora, f"learner.zero_stage={stage}") for stage in (0, 3)}
    assert runs[3].learner.engine.zero_optimization_stage() == 3
    exported = {stage: done.learner.weights() for stage, done in runs.items()}
    actor = runs[3].actor.engine.model.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(exported[3][key], actor[key]) for key in exported[3])
    zero3, zero0 = (logits(plain_model(folder, exported[stage])) for stage in (3, 0))
    assert max_gap(zero3, zero0) < 1e-4  # the same two steps, partitioned or not
    assert max_gap(zero3, logits(AutoModelForCausalLM.from_pretrained(folder))) > 1e-2  # and they moved it
