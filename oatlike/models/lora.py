"""LoRA through PEFT: adapters on a policy, an ensemble of them (BPO), and their weights merged for export.

The learner trains adapters; the actors, the evaluator, the reference and saved checkpoints get plain
model weights under the base model's names (:func:`export_weights`): ZeRO-3 partitions gathered, every
adapter merged into its layer.

Everything that knows how an adapter becomes a weight is PEFT's: which layers ``all-linear`` adapts (every
``nn.Linear`` and GPT-2-style ``Conv1D`` but the output head), and each layer's ``get_delta_weight``, which
knows that ``Conv1D`` stores its weight transposed (``fan_in_fan_out``), how the adapter is scaled and in
which dtype the product is taken. A merge here is ``copy of the base weight += layer.get_delta_weight(...)``,
the very operation of PEFT's ``merge_and_unload``, done on the CPU copies of a sync, so the live training
weights are never touched (merging in place and unmerging would drift in floating point) and the model is
never deep-copied.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from oatlike.errors import ConfigError
from oatlike.models.config import ALL_LINEAR, LoraConfig

if TYPE_CHECKING:
    from peft import LoraConfig as PeftLoraConfig
    from peft.tuners.lora import LoraLayer

TARGETS_KEY = "model.lora.target_modules"
LINEAR_LAYERS = (torch.nn.Linear, Conv1D)
"""The layer types PEFT's ``all-linear`` adapts, and the only ones :func:`export_weights` is tested on."""

MERGE_RULES = ("linear", "delta_mean")
MERGE_SLOT = "ensemble_merge"
"""BPO's ``linear`` merge: a frozen, never active adapter that holds the merged factors for PEFT's layers."""


def _peft_lora_config(config: LoraConfig) -> PeftLoraConfig:
    from peft import LoraConfig as PeftLoraConfig

    targets = list(config.target_modules)
    return PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets,
        task_type="CAUSAL_LM",
    )


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """The distinct short names (``q_proj``, ``c_attn``) of ``model``'s linear layers but its output head:
    what ``model.lora.target_modules`` may name."""
    head = model.get_output_embeddings() if isinstance(model, PreTrainedModel) else None
    names = {
        name.rpartition(".")[2]
        for name, module in model.named_modules()
        if isinstance(module, LINEAR_LAYERS) and module is not head
    }
    return sorted(names)


def check_target_modules(model: torch.nn.Module, peft_config: PeftLoraConfig) -> None:
    """Refuse, in one line naming the key, targets that match no linear layer of ``model`` by PEFT's own rule
    (a name matches a module whose full name is it or ends in ``.<name>``).

    PEFT stops (with a traceback) only when no target matches at all, silently skips a mistyped name among
    good ones, and fails deep inside on the name of a block (``mlp``).
    """
    from peft.tuners.tuners_utils import check_target_module_exists

    if peft_config.target_modules == ALL_LINEAR:
        return
    modules = list(model.named_modules())
    bad = []
    for target in sorted(peft_config.target_modules or ()):
        single = replace(peft_config, target_modules=[target])
        matched = [module for name, module in modules if check_target_module_exists(single, name)]
        if not matched or not all(isinstance(module, LINEAR_LAYERS) for module in matched):
            bad.append(target)
    if bad:
        names = linear_layer_names(model)
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ConfigError(
            TARGETS_KEY,
            f"{', '.join(bad)} {'names' if len(bad) == 1 else 'name'} no linear layer of this "
            f"{type(model).__name__}; its linear layers are {listed} "
            f"(or leave the default [{ALL_LINEAR}]: every linear layer but the output head)",
        )


@contextmanager
def _peft_sets_fan_in_fan_out() -> Iterator[None]:
    """PEFT sets ``fan_in_fan_out`` itself for each ``Conv1D`` (GPT-2) and warns that it did: nothing for the
    user to do, so that warning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to")
        yield


def _get_peft_model(model: PreTrainedModel, peft_config: PeftLoraConfig, adapter_name: str) -> Any:
    from peft import get_peft_model

    check_target_modules(model, peft_config)
    with _peft_sets_fan_in_fan_out():
        return get_peft_model(model, peft_config, adapter_name=adapter_name)


def apply_lora(model: PreTrainedModel, config: LoraConfig) -> torch.nn.Module:
    """Wrap ``model`` with trainable LoRA adapters (base weights frozen)."""
    return _get_peft_model(model, _peft_lora_config(config), "default")


def apply_lora_ensemble(model: PreTrainedModel, config: LoraConfig, size: int, seed: int = 0) -> torch.nn.Module:
    """Wrap ``model`` with ``size`` LoRA adapters ``member_0`` … on its frozen weights (BPO's ensemble).

    Each adapter's random factor is drawn from its own seed, so the members start at the same model
    (``B = 0``) but move apart.
    """
    peft_config = _peft_lora_config(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ensemble = _get_peft_model(model, peft_config, "member_0")
        for index in range(1, size):
            torch.manual_seed(seed + index)
            with _peft_sets_fan_in_fan_out():
                ensemble.add_adapter(f"member_{index}", _peft_lora_config(config))
    return ensemble


def _lora_layers(model: torch.nn.Module) -> Iterator[tuple[str, LoraLayer]]:
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            yield name, module


def merged_weights(
    policy: torch.nn.Module, zero_stage: int, delta: Callable[[LoraLayer], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The plain model's weights (CPU copies, base-model names) with ``delta(layer)`` added to the weight of
    every LoRA layer of the PEFT model ``policy``; the adapters' own tensors are left out.

    Under ZeRO-3 every rank must call it (the partitions are gathered for the copies and the deltas).
    """
    from oatlike.learner import ds

    base = policy.get_base_model()  # type: ignore[operator]
    layers = dict(_lora_layers(base))
    with ds.gathered(base, zero_stage):
        weights: dict[str, torch.Tensor] = {}
        for key, tensor in base.state_dict().items():
            parts = key.split(".")
            owner = next((i for i in range(1, len(parts)) if ".".join(parts[:i]) in layers), None)
            if owner is not None and parts[owner] != "base_layer":
                continue  # an adapter's factor: not a weight of the plain model
            plain = key if owner is None else ".".join(parts[:owner] + parts[owner + 1 :])
            weights[plain] = tensor.detach().to("cpu", copy=True)
        with torch.no_grad():
            for name, layer in layers.items():
                # PEFT's merge: ``base_layer.weight.data += delta`` (here into the copy)
                weights[f"{name}.weight"] += delta(layer).to("cpu")
    return weights


def _delta_weight(layer: Any, adapter: str) -> torch.Tensor:
    """PEFT's ``ΔW`` of ``adapter`` in ``layer``, shaped as the base weight (transposed for ``Conv1D``)."""
    if adapter in layer.lora_variant or layer.lora_bias.get(adapter):
        raise ValueError(f"LoRA adapter {adapter!r} uses a PEFT variant (DoRA, LoRA bias) that export does not merge")
    return layer.get_delta_weight(adapter)


def export_weights(policy: torch.nn.Module, zero_stage: int) -> dict[str, torch.Tensor]:
    """The policy's full weights under base-model names (ZeRO-3 gathered, LoRA merged), on the CPU.

    With LoRA, each layer's weight is PEFT's merge of the active adapter, as ``merge_and_unload`` computes it.
    """
    from oatlike.learner import ds

    if not getattr(policy, "peft_config", None):
        return ds.gathered_state_dict(policy, zero_stage)
    adapter: str = policy.active_adapter  # type: ignore[assignment]
    return merged_weights(policy, zero_stage, lambda layer: _delta_weight(layer, adapter))


def add_merge_slot(ensemble: torch.nn.Module, adapters: list[str]) -> None:
    """Give the ensemble PEFT's adapter for the ``linear`` merge of ``adapters`` (once; frozen, never active).

    PEFT's ``add_weighted_adapter(combination_type="linear")`` chooses its rank and scaling; its random
    initialisation draws from a forked stream, so the run's torch stream is untouched.
    """
    if MERGE_SLOT in ensemble.peft_config:  # type: ignore[operator]
        return
    with torch.random.fork_rng(), _peft_sets_fan_in_fan_out():
        ensemble.add_weighted_adapter(  # type: ignore[operator]
            adapters, [1.0 / len(adapters)] * len(adapters), MERGE_SLOT, combination_type="linear"
        )


def merge_lora_ensemble(
    ensemble: torch.nn.Module, adapters: list[str], rule: str, zero_stage: int = 0
) -> dict[str, torch.Tensor]:
    """The plain model's weights with the ``adapters`` of ``ensemble`` merged uniformly into each layer.

    ``delta_mean`` is the exact mean of the members' deltas, ``ΔW = (1/K)·Σ_k ΔW_k`` with ``ΔW_k`` PEFT's
    ``get_delta_weight``. ``linear`` is PEFT's ``add_weighted_adapter(combination_type="linear")`` with
    weights 1/K, which merges *factors*: ``A_m = Σ_k √(s_k/K)·A_k``, ``B_m = Σ_k √(s_k/K)·B_k``,
    ``ΔW = B_m·A_m`` (scaling 1), cross terms ``B_k·A_j`` included — what BPO's code runs. PEFT computes the
    factors (the per-layer step of ``add_weighted_adapter``) into the slot of :func:`add_merge_slot`, and
    the slot's ``get_delta_weight`` turns them into ``ΔW``.
    """
    if rule == "delta_mean":

        def delta(layer: Any) -> torch.Tensor:
            deltas = [_delta_weight(layer, adapter) for adapter in adapters]
            return sum(deltas[1:], deltas[0]) / len(adapters)

    elif rule == "linear":
        if MERGE_SLOT not in ensemble.peft_config:  # type: ignore[operator]
            raise ValueError(f"the linear merge needs add_merge_slot({adapters}) first")
        peft_model: Any = ensemble.base_model
        weights = [1.0 / len(adapters)] * len(adapters)

        def delta(layer: Any) -> torch.Tensor:
            # the loop body of PEFT's add_weighted_adapter for "linear" (peft 0.21, pinned in pyproject.toml)
            factor_a, factor_b = peft_model._generalized_task_arithmetic_weighted_adapter(
                "linear", adapters, weights, layer, None, None
            )
            layer.lora_A[MERGE_SLOT].weight.copy_(factor_a)
            layer.lora_B[MERGE_SLOT].weight.copy_(factor_b)
            return _delta_weight(layer, MERGE_SLOT)

    else:
        raise ValueError(f"unknown LoRA merge rule {rule!r}; choose one of {MERGE_RULES}")
    return merged_weights(ensemble, zero_stage, delta)
