"""Tiny Llama policies built from a config (no hub): about 1M, 10M and 50M parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


@dataclass(frozen=True)
class TinySize:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int


TINY_SIZES: dict[str, TinySize] = {
    "1m": TinySize(128, 512, 2, 4),
    "10m": TinySize(256, 1024, 8, 4),
    "50m": TinySize(512, 2048, 12, 8),
}


def tiny_llama_config(size: str, tokenizer: PreTrainedTokenizerBase, max_position_embeddings: int = 512) -> LlamaConfig:
    """A ``LlamaConfig`` of the named size whose vocabulary fits ``tokenizer`` (rounded up to 64)."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {sorted(TINY_SIZES)}")
    spec = TINY_SIZES[size]
    vocab_size = -(-len(tokenizer) // 64) * 64
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.0,
    )


def build_tiny_llama(size: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised tiny Llama of the named size (deterministic under ``seed``)."""
    config = tiny_llama_config(size, tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model
