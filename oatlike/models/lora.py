"""LoRA through PEFT: adapters on a policy, an ensemble of them (BPO), and their weights merged for export.

The learner trains adapters; the actors, the evaluator, the reference and saved checkpoints get plain
model weights under the base model's names (:func:`export_weights`): ZeRO-3 partitions gathered, every
adapter merged into its layer.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel

from oatlike.models.config import LoraConfig

if TYPE_CHECKING:
    from peft import LoraConfig as PeftLoraConfig


def _peft_lora_config(config: LoraConfig) -> PeftLoraConfig:
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )


def apply_lora(model: PreTrainedModel, config: LoraConfig) -> torch.nn.Module:
    """Wrap ``model`` with trainable LoRA adapters (base weights frozen)."""
    from peft import get_peft_model

    return get_peft_model(model, _peft_lora_config(config))


def apply_lora_ensemble(model: PreTrainedModel, config: LoraConfig, size: int, seed: int = 0) -> torch.nn.Module:
    """Wrap ``model`` with ``size`` LoRA adapters ``member_0`` … on its frozen weights (BPO's ensemble).

    Each adapter's random factor is drawn from its own seed, so the members start at the same model
    (``B = 0``) but move apart.
    """
    from peft import get_peft_model

    peft_config = _peft_lora_config(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ensemble = get_peft_model(model, peft_config, adapter_name="member_0")
        for index in range(1, size):
            torch.manual_seed(seed + index)
            ensemble.add_adapter(f"member_{index}", peft_config)
    return ensemble


_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<factor>[AB])\.(?P<adapter>[^.]+)\.weight$")


def split_lora_state_dict(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, dict[str, torch.Tensor]]]]:
    """A PEFT ``state_dict`` split into its other weights and its LoRA factors ``{module: {adapter: {A, B}}}``."""
    factors: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    others: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _LORA_KEY.match(key)
        if match:
            factors.setdefault(match["module"], {}).setdefault(match["adapter"], {})[match["factor"]] = value
            continue
        others[key] = value
    return others, factors


def base_model_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A PEFT model's (merged) weights under the plain model's names."""
    return {key.removeprefix("base_model.model.").replace(".base_layer.", "."): v for key, v in state_dict.items()}


def merge_lora_state_dict(state_dict: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """Base-model weights with LoRA merged: ``W + scaling · B @ A`` for every adapted linear layer.

    Takes a PEFT model's ``state_dict`` (keys ``base_model.model.<name>``, adapted layers with
    ``.base_layer.weight``, ``.lora_A.<adapter>.weight`` and ``.lora_B.<adapter>.weight``) and returns the
    plain model's ``state_dict`` names and values.
    """
    merged, factors = split_lora_state_dict(state_dict)
    for module, adapters in factors.items():
        ab = next(iter(adapters.values()))
        weight_key = f"{module}.base_layer.weight"
        base = merged.pop(weight_key)
        delta = (ab["B"].float() @ ab["A"].float()) * scaling
        merged[f"{module}.weight"] = (base.float() + delta).to(base.dtype)
    return base_model_names(merged)


def export_weights(policy: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor]:
    """The policy's full weights under base-model names (ZeRO-3 gathered, LoRA merged), on the CPU."""
    from oatlike.learner.ds import gathered_state_dict

    state_dict = gathered_state_dict(policy, zero_stage)
    peft_config = getattr(policy, "peft_config", None)
    if peft_config:
        adapter = next(iter(peft_config.values()))
        scaling = adapter.lora_alpha / adapter.r
        return merge_lora_state_dict(state_dict, scaling)
    return state_dict


MERGE_RULES = ("linear", "delta_mean")


def merge_lora_delta(
    factors: list[tuple[torch.Tensor, torch.Tensor]], scalings: list[float], rule: str
) -> torch.Tensor:
    """``ΔW`` of K LoRA adapters ``(A_k [r, in], B_k [out, r])`` merged with weights 1/K.

    ``linear`` is PEFT's ``add_weighted_adapter(combination_type="linear")``, which merges *factors*:
    ``A_m = Σ_k √(s_k/K)·A_k``, ``B_m = Σ_k √(s_k/K)·B_k``, ``ΔW = B_m·A_m`` (scaling 1), cross terms
    ``B_k·A_j`` included — what BPO's code runs. ``delta_mean`` averages the deltas exactly:
    ``ΔW = (1/K)·Σ_k s_k·B_k·A_k``.
    """
    count = len(factors)
    if rule == "delta_mean":
        return (
            sum((s * b.float() @ a.float() for (a, b), s in zip(factors, scalings, strict=True)), torch.tensor(0.0))
            / count
        )
    if rule == "linear":
        weights = [math.sqrt(s / count) for s in scalings]
        a_merged = sum(w * a.float() for (a, _), w in zip(factors, weights, strict=True))
        b_merged = sum(w * b.float() for (_, b), w in zip(factors, weights, strict=True))
        return b_merged @ a_merged  # type: ignore[operator]
    raise ValueError(f"unknown LoRA merge rule {rule!r}; choose one of {MERGE_RULES}")


def merge_lora_ensemble(
    state_dict: dict[str, torch.Tensor], scalings: dict[str, float], rule: str
) -> dict[str, torch.Tensor]:
    """The plain model's weights with the adapters named in ``scalings`` merged into each adapted layer."""
    merged, factors = split_lora_state_dict(state_dict)
    adapters = list(scalings)
    for module, by_adapter in factors.items():
        base = merged.pop(f"{module}.base_layer.weight")
        pairs = [(by_adapter[name]["A"], by_adapter[name]["B"]) for name in adapters]
        delta = merge_lora_delta(pairs, [scalings[name] for name in adapters], rule)
        merged[f"{module}.weight"] = (base.float() + delta).to(base.dtype)
    return base_model_names(merged)
