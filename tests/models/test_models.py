"""Tokenizer and tiny models built without a hub; loading them back."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from oatlike.errors import ConfigError
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.models.tiny import TINY_SIZES, build_tiny_llama
from oatlike.models.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["12+35=47", "sort 3 1 2: 1 2 3", "hello world, this is text"] * 20, vocab_size=300)


def test_tokenizer_splits_digits_adds_bos_and_round_trips(tokenizer, tmp_path):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("123+45=").input_ids)
    assert tokens[0] == "<s>"
    assert tokens[1:4] == ["1", "2", "3"]
    assert tokenizer.decode(tokenizer("sort 12 5:").input_ids, skip_special_tokens=True) == "sort 12 5:"
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("99+1=").input_ids == tokenizer("99+1=").input_ids
    assert reloaded.pad_token == "<pad>" and reloaded.eos_token == "</s>" and reloaded.padding_side == "left"
    chat = reloaded.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|user|>\nhi\n<|assistant|>\n"


@pytest.mark.parametrize(("size", "low", "high"), [("1m", 0.5e6, 1.5e6), ("10m", 7e6, 13e6), ("50m", 40e6, 60e6)])
def test_tiny_sizes(tokenizer, size, low, high):
    """Each size's built model has about the parameters its name says, with the spec's shape."""
    model = build_tiny_llama(size, tokenizer, seed=0)
    spec = TINY_SIZES[size]
    config = model.config
    assert config.hidden_size == spec.hidden_size and config.num_hidden_layers == spec.num_hidden_layers
    assert config.vocab_size % 64 == 0 and config.vocab_size >= len(tokenizer)
    assert low <= sum(p.numel() for p in model.parameters()) <= high


def test_tiny_model_builds_deterministically_and_reloads(tokenizer, tmp_path):
    a, b = build_tiny_llama("1m", tokenizer, seed=3), build_tiny_llama("1m", tokenizer, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    a.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([tokenizer("1+2=").input_ids])
    torch.testing.assert_close(reloaded(ids).logits, a(ids).logits)


def test_loading_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"model.pretrain: no such folder .*nowhere"):
        load_causal_lm(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"model.pretrain: cannot load 'someone/model' as a local folder or Hugging"):
        load_causal_lm("someone/model")
    with pytest.raises(ConfigError, match=r"model.tokenizer: cannot load"):
        load_tokenizer(str(tmp_path))
