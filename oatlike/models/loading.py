"""Loading policies, reward models and tokenizers by hub name or local folder.

The same path serves the built-in tiny model (a local folder the warm start wrote) and any causal LM:
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from oatlike.errors import ConfigError

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
