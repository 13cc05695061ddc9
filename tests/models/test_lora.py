"""LoRA through PEFT: one adapter merged as PEFT merges it, an ensemble of adapters merged by BPO's rules
(docs/algorithms.md §5)."""

from __future__ import annotations

import pytest
import torch

from oatlike.models.config import LoraConfig
from oatlike.models.loading import load_causal_lm
from oatlike.models.lora import (
    apply_lora,
    apply_lora_ensemble,
    merge_lora_delta,
    merge_lora_ensemble,
    merge_lora_state_dict,
)


def test_lora_merge_equals_peft_merge_and_unload(tiny_untrained):
    model = load_causal_lm(str(tiny_untrained))
    peft_model = apply_lora(model, LoraConfig(enabled=True, r=4, alpha=8, target_modules=["q_proj", "down_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # PEFT initialises B at zero; make the merge non-trivial
    merged = merge_lora_state_dict(peft_model.state_dict(), scaling=8 / 4)
    reference = peft_model.merge_and_unload().state_dict()
    assert merged.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(merged[key], reference[key], atol=1e-6, rtol=0)


def test_lora_merge_on_hand_computed_matrices():
    state = {
        "base_model.model.proj.base_layer.weight": torch.zeros(2, 2),
        "base_model.model.proj.lora_A.default.weight": torch.tensor([[1.0, 2.0]]),
        "base_model.model.proj.lora_B.default.weight": torch.tensor([[1.0], [0.5]]),
        "base_model.model.head.weight": torch.ones(1),
    }
    merged = merge_lora_state_dict(state, scaling=2.0)
    torch.testing.assert_close(merged["proj.weight"], torch.tensor([[2.0, 4.0], [1.0, 2.0]]))
    assert torch.equal(merged["head.weight"], torch.ones(1))


def test_lora_merge_rules_on_the_hand_computed_matrices():
    factors = [
        (torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0], [0.0]])),
        (torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0], [1.0]])),
    ]
    torch.testing.assert_close(
        merge_lora_delta(factors, [1.0, 1.0], "delta_mean"), torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    )
    torch.testing.assert_close(merge_lora_delta(factors, [1.0, 1.0], "linear"), torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="unknown LoRA merge rule"):
        merge_lora_delta(factors, [1.0, 1.0], "ties")


def test_linear_merge_is_what_peft_add_weighted_adapter_computes(tiny_untrained):
    ensemble = apply_lora_ensemble(load_causal_lm(str(tiny_untrained)), LoraConfig(r=4, alpha=8), size=3, seed=0)
    with torch.no_grad():
        for name, parameter in ensemble.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)  # B starts at zero; give every member a delta
    state_dict = {k: v.detach().clone() for k, v in ensemble.state_dict().items()}
    scalings = {f"member_{k}": 8 / 4 for k in range(3)}
    ours = {
        name: merge_lora_ensemble(state_dict, scalings, rule)
        for name, rule in [("linear", "linear"), ("mean", "delta_mean")]
    }
    ensemble.add_weighted_adapter(list(scalings), [1 / 3] * 3, "merged", combination_type="linear")
    ensemble.set_adapter("merged")
    peft_merged = ensemble.merge_and_unload(adapter_names=["merged"]).state_dict()
    changed = [k for k in peft_merged if "q_proj" in k]
    assert changed
    for key in changed:
        torch.testing.assert_close(ours["linear"][key], peft_merged[key], atol=1e-6, rtol=1e-5)
    assert any(not torch.allclose(ours["mean"][k], peft_merged[k], atol=1e-5) for k in changed)  # cross terms
