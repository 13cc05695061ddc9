"""Loading policies and tokenizers by hub name or local folder, LoRA through PEFT, exporting weights.

The same path serves the built-in tiny model (a local folder the warm start wrote) and any causal LM:
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from oatlike.config import LoraConfig
from oatlike.errors import ConfigError

if TYPE_CHECKING:
    from peft import LoraConfig as PeftLoraConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _load_error(key: str, name: str, error: Exception) -> ConfigError:
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        return ConfigError(key, f"no such folder {name!r}; give a local model folder or a hub name (owner/model)")
    where = "local folder" if Path(name).exists() else "local folder or Hugging Face hub model"
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ConfigError(key, f"cannot load {name!r} as a {where}: {detail}")


def load_tokenizer(name_or_path: str, key: str = "model.tokenizer") -> PreTrainedTokenizerBase:
    """A tokenizer that pads on the left (for generation) and has a pad token (EOS when it had none)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise _load_error(key, name_or_path, error) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(auto_class: Any, name_or_path: str, dtype: str, key: str) -> PreTrainedModel:
    try:
        return auto_class.from_pretrained(name_or_path, dtype=DTYPES[dtype])
    except (OSError, ValueError) as error:
        raise _load_error(key, name_or_path, error) from None


def load_causal_lm(name_or_path: str, dtype: str = "float32", key: str = "model.pretrain") -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained`` with a one-line error naming the config key."""
    return _from_pretrained(AutoModelForCausalLM, name_or_path, dtype, key)


def load_sequence_classifier(name_or_path: str, dtype: str = "float32", key: str = "oracle.model") -> PreTrainedModel:
    """``AutoModelForSequenceClassification.from_pretrained`` (a reward model) with a one-line error naming ``key``."""
    return _from_pretrained(AutoModelForSequenceClassification, name_or_path, dtype, key)


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
