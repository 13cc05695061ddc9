"""Loading policies, reward models and tokenizers by hub name or local folder.

The same path serves the built-in tiny model (a local folder the warm start wrote) and any causal LM:
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``. A local folder is checked
first (a folder with a ``config.json``, weights files that are whole), so a bad one gives one line naming
the file. Two things never happen unless asked: code shipped with a model (``auto_map``) is not run without
``model.trust_remote_code=true``, and pickled weights are never unpickled beyond tensors (``weights_only``).
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from oatlike.errors import ConfigError, first_line

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

TRUST_REMOTE_CODE_KEY = "model.trust_remote_code"
"""The config key that lets the policy's folders (model, tokenizer, explore backbone) run their own code."""

LOAD_ERRORS = (OSError, ValueError, RuntimeError, EOFError, SafetensorError)
"""What ``from_pretrained`` raises for a model or tokenizer it cannot load (missing, malformed, cut short)."""


def _local_path(name: str) -> Path | None:
    """The local file or folder ``name`` names, or ``None`` for a hub name (``owner/model``)."""
    path = Path(name).expanduser()
    return path if path.exists() or name.startswith((".", "/", "~")) else None


def _load_error(key: str, name: str, error: Exception) -> ConfigError:
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        return ConfigError(key, f"no such folder {name!r}; give a local model folder or a hub name (owner/model)")
    where = "local folder" if Path(name).expanduser().exists() else "local folder or Hugging Face hub model"
    return ConfigError(key, f"cannot load {name!r} as a {where}: {first_line(error)}")


def _check_folder(name: str, key: str) -> Path | None:
    """The local folder ``name`` names (``None`` for a hub name); a missing folder or a file is an error."""
    folder = _local_path(name)
    if folder is None:
        return None
    if not folder.exists():
        raise ConfigError(key, f"no such folder {name!r}; give a local model folder or a hub name (owner/model)")
    if not folder.is_dir():
        raise ConfigError(
            key, f"{name!r} is a file, not a model folder; give the folder that holds it and its config.json"
        )
    return folder


def _refuse_custom_code(file: Path, key: str, trust_remote_code: bool, trust_key: str | None) -> None:
    """Refuse a config file whose ``auto_map`` names code shipped with the model, unless it is trusted."""
    if trust_remote_code or not file.is_file():
        return
    try:
        config = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(key, f"'{file}' is not valid JSON ({first_line(error)}); copy or save it again") from None
    if isinstance(config, dict) and "auto_map" in config:
        how = (
            f"which oatlike runs only when asked: set {trust_key}=true if you trust that code"
            if trust_key
            else "which oatlike does not run here: give a model of an architecture transformers knows"
        )
        raise ConfigError(key, f"'{file}' names custom code (auto_map), {how}")


def damaged_weights(folder: Path) -> str | None:
    """What is wrong with the safetensors files in ``folder`` (cut short, empty, not safetensors), if anything.

    Opening a file reads only its header, which must describe the whole file, so this is cheap."""
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            size = file.stat().st_size
            return f"'{file}' ({size} bytes) is not a whole safetensors file ({first_line(error)})"
    return None


def check_model_folder(
    name_or_path: str,
    key: str = "model.pretrain",
    trust_remote_code: bool = False,
    trust_key: str | None = None,
) -> None:
    """Check a local model folder before loading it: a folder (not a file) with a ``config.json`` that names
    no custom code (unless trusted) and whole safetensors files. Hub names are left to ``from_pretrained``."""
    folder = _check_folder(name_or_path, key)
    if folder is None:
        return
    if not (folder / "config.json").is_file():
        raise ConfigError(
            key, f"{name_or_path!r} has no config.json; give a folder written by save_pretrained (config and weights)"
        )
    _refuse_custom_code(folder / "config.json", key, trust_remote_code, trust_key)
    damage = damaged_weights(folder)
    if damage:
        raise ConfigError(key, f"{damage}; copy or save the model again")


def _unpickling_refused(key: str, name: str, error: pickle.UnpicklingError) -> ConfigError:
    """The one line for pickled weights that hold more than tensors: name the file; never unpickle it."""
    folder = Path(name).expanduser()
    culprit = next((f for f in sorted(folder.glob("pytorch_model*.bin")) if not _loads_safely(f)), None)
    reason = re.search(r"Unsupported[^.\n]*", str(error))  # what the safe loader met that is not a tensor
    detail = reason.group(0).strip() if reason else "the safe loader rejected it"
    return ConfigError(
        key,
        f"refusing to unpickle '{culprit or folder}': it holds more than tensors ({detail}) and oatlike never "
        "unpickles code; if you trust it, convert it to model.safetensors elsewhere "
        "(safetensors.torch.save_file(torch.load(file, weights_only=False), 'model.safetensors'))",
    )


def _loads_safely(file: Path) -> bool:
    """Whether ``file`` unpickles with the safe loader (tensors and plain containers only)."""
    try:
        torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, *LOAD_ERRORS):
        return False
    return True


def load_tokenizer(
    name_or_path: str,
    key: str = "model.tokenizer",
    trust_remote_code: bool = False,
    trust_key: str | None = None,
) -> PreTrainedTokenizerBase:
    """A tokenizer that pads on the left (for generation) and has a pad token (EOS when it had none).

    Custom code runs only with ``trust_remote_code`` (``trust_key``: the config key that sets it, if any)."""
    folder = _check_folder(name_or_path, key)
    if folder is not None:
        for config in ("tokenizer_config.json", "config.json"):
            _refuse_custom_code(folder / config, key, trust_remote_code, trust_key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except LOAD_ERRORS as error:
        raise _load_error(key, name_or_path, error) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            where = f"'{folder / 'tokenizer_config.json'}'" if folder is not None else "its tokenizer_config.json"
            raise ConfigError(
                key,
                f"the tokenizer {name_or_path!r} has neither a pad token nor an EOS token; add "
                f'"eos_token" (or "pad_token"), a token of its vocabulary, to {where}',
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(
    auto_class: Any, name_or_path: str, dtype: str, key: str, trust_remote_code: bool, trust_key: str | None
) -> PreTrainedModel:
    check_model_folder(name_or_path, key, trust_remote_code, trust_key)
    try:
        return auto_class.from_pretrained(
            name_or_path, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code, weights_only=True
        )
    except pickle.UnpicklingError as error:  # transformers unpickles .bin weights with weights_only=True
        raise _unpickling_refused(key, name_or_path, error) from None
    except LOAD_ERRORS as error:
        raise _load_error(key, name_or_path, error) from None


def load_causal_lm(
    name_or_path: str,
    dtype: str = "float32",
    key: str = "model.pretrain",
    trust_remote_code: bool = False,
    trust_key: str | None = None,
) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained`` with a one-line error naming the config key (and ``trust_key``,
    the config key that trusts the model's own code, if the caller has one)."""
    return _from_pretrained(AutoModelForCausalLM, name_or_path, dtype, key, trust_remote_code, trust_key)


def load_sequence_classifier(
    name_or_path: str,
    dtype: str = "float32",
    key: str = "oracle.model",
    trust_remote_code: bool = False,
    trust_key: str | None = None,
) -> PreTrainedModel:
    """``AutoModelForSequenceClassification.from_pretrained`` (a reward model) with a one-line error naming ``key``
    (``trust_key``: the config key that trusts the model's own code, if the caller has one)."""
    return _from_pretrained(AutoModelForSequenceClassification, name_or_path, dtype, key, trust_remote_code, trust_key)
