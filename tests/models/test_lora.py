"""LoRA through PEFT: one adapter merged as PEFT merges it, an ensemble of adapters merged by BPO's rules
(docs/algorithms.md §5), on hand-computed matrices in ``nn.Linear`` and in GPT-2's transposed ``Conv1D``.
Every architecture end to end: tests/models/test_lora_architectures.py."""

from __future__ import annotations

import peft
import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from oatlike.errors import ConfigError
from oatlike.models.config import LoraConfig
from oatlike.models.loading import load_causal_lm
from oatlike.models.lora import (
    add_merge_slot,
    apply_lora,
    apply_lora_ensemble,
    export_weights,
    merge_lora_ensemble,
)


class Toy(nn.Module):
    """A 2×2 projection (``nn.Linear`` or ``Conv1D``, zero weights) and a head LoRA leaves alone."""

    def __init__(self, conv1d: bool) -> None:
        super().__init__()
        self.proj = Conv1D(2, 2) if conv1d else nn.Linear(2, 2, bias=False)
        self.head = nn.Linear(1, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.ones_(self.head.weight)


def toy_with_adapters(conv1d: bool, factors: dict[str, tuple[list[list[float]], list[list[float]]]], alpha: int):
    """``Toy`` with one rank-1 adapter per entry of ``factors`` (``name: (A [1, in], B [out, 1])``)."""
    config = peft.LoraConfig(r=1, lora_alpha=alpha, target_modules=["proj"], fan_in_fan_out=conv1d)
    names = list(factors)
    model = peft.get_peft_model(Toy(conv1d), config, adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, config)
    with torch.no_grad():
        for name, (a, b) in factors.items():
            model.base_model.model.proj.lora_A[name].weight.copy_(torch.tensor(a))
            model.base_model.model.proj.lora_B[name].weight.copy_(torch.tensor(b))
    return model


@pytest.mark.parametrize(
    ("conv1d", "expected"),
    [(False, [[2.0, 4.0], [1.0, 2.0]]), (True, [[2.0, 1.0], [4.0, 2.0]])],  # Conv1D stores W as [in, out]
    ids=["linear", "conv1d"],
)
def test_lora_merge_on_hand_computed_matrices(conv1d, expected):
    # s = alpha / r = 2, B·A = [[1, 2], [0.5, 1]]
    model = toy_with_adapters(conv1d, {"default": ([[1.0, 2.0]], [[1.0], [0.5]])}, alpha=2)
    merged = export_weights(model, zero_stage=0)
    assert merged.keys() == Toy(conv1d).state_dict().keys()  # the plain model's names (Conv1D has a bias)
    torch.testing.assert_close(merged["proj.weight"], torch.tensor(expected))
    assert torch.equal(merged["head.weight"], torch.ones(1, 1))
    plain = Toy(conv1d)
    plain.load_state_dict(merged)
    inputs = torch.tensor([[1.0, -3.0], [0.5, 2.0]])
    torch.testing.assert_close(plain.proj(inputs), model.base_model.model.proj(inputs))  # the adapted layer's output


def test_lora_merge_equals_peft_merge_and_unload(tiny_untrained):
    model = load_causal_lm(str(tiny_untrained))
    peft_model = apply_lora(model, LoraConfig(enabled=True, r=4, alpha=8, target_modules=["q_proj", "down_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # PEFT initialises B at zero; make the merge non-trivial
    merged = export_weights(peft_model, zero_stage=0)
    live = {k: v.clone() for k, v in peft_model.state_dict().items()}
    reference = peft_model.merge_and_unload().state_dict()
    assert merged.keys() == reference.keys()
    assert all(torch.equal(merged[key], reference[key]) for key in reference)  # PEFT's own operation, bitwise
    assert any("lora_B" in key for key in live)  # the export left the adapters in place (merged a copy)


@pytest.mark.parametrize("conv1d", [False, True], ids=["linear", "conv1d"])
def test_lora_merge_rules_on_the_hand_computed_matrices(conv1d):
    # r = 1, s = 1, K = 2: B1 = (1, 0)ᵀ, A1 = (1, 0); B2 = (0, 1)ᵀ, A2 = (0, 1) (docs/algorithms.md §5)
    factors = {"member_0": ([[1.0, 0.0]], [[1.0], [0.0]]), "member_1": ([[0.0, 1.0]], [[0.0], [1.0]])}
    ensemble = toy_with_adapters(conv1d, factors, alpha=1)
    add_merge_slot(ensemble, list(factors))
    mean = merge_lora_ensemble(ensemble, list(factors), "delta_mean")
    linear = merge_lora_ensemble(ensemble, list(factors), "linear")
    torch.testing.assert_close(mean["proj.weight"], torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    torch.testing.assert_close(linear["proj.weight"], torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    assert not any("lora" in key for key in linear)
    with pytest.raises(ValueError, match="unknown LoRA merge rule"):
        merge_lora_ensemble(ensemble, list(factors), "ties")


def test_linear_merge_is_what_peft_add_weighted_adapter_computes(tiny_untrained):
    ensemble = apply_lora_ensemble(load_causal_lm(str(tiny_untrained)), LoraConfig(r=4, alpha=8), size=3, seed=0)
    members = list(ensemble.peft_config)
    add_merge_slot(ensemble, members)
    with torch.no_grad():
        for name, parameter in ensemble.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)  # B starts at zero; give every member a delta
    ours = {rule: merge_lora_ensemble(ensemble, members, rule) for rule in ("linear", "delta_mean")}
    ensemble.add_weighted_adapter(members, [1 / 3] * 3, "merged", combination_type="linear")
    ensemble.set_adapter("merged")
    peft_merged = ensemble.merge_and_unload(adapter_names=["merged"]).state_dict()
    changed = [k for k in peft_merged if "q_proj" in k]
    assert changed
    for key in changed:
        torch.testing.assert_close(ours["linear"][key], peft_merged[key], atol=1e-6, rtol=1e-5)
    assert any(not torch.allclose(ours["delta_mean"][k], peft_merged[k], atol=1e-5) for k in changed)  # cross terms


def test_a_target_that_names_no_linear_layer_is_one_line_with_the_layer_names(tiny_untrained):
    model = load_causal_lm(str(tiny_untrained))
    for targets in (["q_proj", "c_attn"], ["mlp"]):  # a typo among good names; a block, not a layer
        with pytest.raises(ConfigError) as caught:
            apply_lora(model, LoraConfig(enabled=True, target_modules=targets))
        message = str(caught.value)
        assert message.startswith("model.lora.target_modules: ") and "\n" not in message
        assert f"{targets[-1]} names no linear layer of this LlamaForCausalLM" in message
        assert "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj" in message
        assert "lm_head" not in message
    with pytest.raises(ConfigError, match="all-linear stands alone"):
        LoraConfig(target_modules=["all-linear", "q_proj"])
