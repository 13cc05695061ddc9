"""Models that cannot be loaded: a ``model.pretrain`` folder with damaged or unsafe weights, a tokenizer
without pad and EOS tokens, a file or a folder without ``config.json``, custom code that was not trusted.

Each folder is a tiny model saved with ``save_pretrained`` and then damaged; each fails at start-up, before
the run trains anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from faults.harness import Fault

ARGS = ("model=hf", "steps=2", "eval.every=0")
MARKER = "code-ran"
"""The file the custom code and the pickle below would create if they ever ran."""


def save_tiny_model(folder: Path) -> Path:
    """A tiny Llama and the shared tokenizer, saved with ``save_pretrained`` into ``folder / "model"``."""
    from oatlike.models.loading import load_tokenizer
    from oatlike.models.tiny import build_tiny_llama
    from oatlike.warmstart import default_cache_dir, ensure_tokenizer

    model_dir = folder / "model"
    tokenizer = load_tokenizer(str(ensure_tokenizer(default_cache_dir())))
    build_tiny_llama("1m", tokenizer, seed=0).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


class RunsCode:
    """Unpickles into a call of ``Path.touch`` on its marker: what a pickle of an arbitrary object can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def write_code_pickle(model_dir: Path) -> Path:
    """Replace the weights by a ``pytorch_model.bin`` whose pickle runs code (it touches ``MARKER``)."""
    import torch

    (model_dir / "model.safetensors").unlink()
    weights = model_dir / "pytorch_model.bin"
    torch.save({"model.embed_tokens.weight": RunsCode(model_dir / MARKER)}, weights)
    return weights


def add_custom_code(model_dir: Path) -> None:
    """Make ``model_dir`` a model with its own code: a module (that touches ``MARKER``) named in ``auto_map``."""
    (model_dir / "modeling_custom.py").write_text(
        "from pathlib import Path\n"
        f"Path(__file__).with_name({MARKER!r}).touch()\n"
        "from transformers import LlamaForCausalLM\n\n\n"
        "class CustomForCausalLM(LlamaForCausalLM):\n"
        "    pass\n"
    )
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (model_dir / "config.json").write_text(json.dumps(config))


def drop_special_tokens(model_dir: Path) -> None:
    """Remove the pad and EOS tokens from the saved tokenizer's config."""
    path = model_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    del config["pad_token"], config["eos_token"]
    path.write_text(json.dumps(config))


def damaged(damage: Callable[[Path], object], point_at: str = "") -> Callable[[Path, pytest.MonkeyPatch], list[str]]:
    """A ``prepare`` that saves a tiny model, applies ``damage`` to its folder and points ``model.pretrain`` at
    the folder (or at ``point_at`` inside it)."""

    def prepare(folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        model_dir = save_tiny_model(folder)
        damage(model_dir)
        return [f"model.pretrain={model_dir / point_at if point_at else model_dir}"]

    return prepare


def truncate(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)


NOT_WHOLE = r"model\.pretrain: '[^']*/model/model\.safetensors' \({size} bytes\) is not a whole safetensors file .*"
AGAIN = "; copy or save the model again$"

CASES = [
    Fault(
        "weights-truncated",
        ARGS,
        NOT_WHOLE.format(size=r"\d+") + r"file not fully covered" + r"\)" + AGAIN,
        prepare=damaged(truncate),
    ),
    Fault(
        "weights-random-bytes",
        ARGS,
        NOT_WHOLE.format(size="4096") + AGAIN,
        prepare=damaged(lambda d: (d / "model.safetensors").write_bytes(os.urandom(4096))),
    ),
    Fault(
        "weights-empty",
        ARGS,
        NOT_WHOLE.format(size="0") + r"header too small\)" + AGAIN,
        prepare=damaged(lambda d: (d / "model.safetensors").write_bytes(b"")),
    ),
    Fault(
        "weights-pickle-runs-code",
        ARGS,
        r"model\.pretrain: refusing to unpickle '[^']*/model/pytorch_model\.bin': it holds more than tensors "
        r"\(Unsupported global: .*\) and oatlike never unpickles code; .*convert it to model\.safetensors",
        prepare=damaged(write_code_pickle),
    ),
    Fault(
        "tokenizer-without-pad-or-eos",
        ARGS,
        r"model\.pretrain: the tokenizer '[^']*/model' has neither a pad token nor an EOS token; add \"eos_token\" "
        r"\(or \"pad_token\"\), a token of its vocabulary, to '[^']*/model/tokenizer_config\.json'$",
        prepare=damaged(drop_special_tokens),
    ),
    Fault(
        "pretrain-is-a-file",
        ARGS,
        r"model\.pretrain: '[^']*/model/model\.safetensors' is a file, not a model folder; give the folder",
        prepare=damaged(lambda d: None, point_at="model.safetensors"),
    ),
    Fault(
        "pretrain-without-config",
        ARGS,
        r"model\.pretrain: '[^']*/model' has no config\.json; give a folder written by save_pretrained",
        prepare=damaged(lambda d: (d / "config.json").unlink()),
    ),
    Fault(
        "custom-code-not-trusted",
        ARGS,
        r"model\.pretrain: '[^']*/model/config\.json' names custom code \(auto_map\), which oatlike runs only when "
        r"asked: set model\.trust_remote_code=true if you trust that code$",
        prepare=damaged(add_custom_code),
    ),
]
