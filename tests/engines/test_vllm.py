"""The vLLM engine (the CPU build here) against the HF engine: both report the same ``Generation.logprob``."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from oatlike.engines.base import SamplingParams
from oatlike.engines.config import VLLMEngineConfig
from oatlike.engines.hf import HFEngine
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.tasks.arithmetic import ArithmeticTask

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (the cpu-vllm extra)"),
]


@torch.no_grad()
def sampling_logprob(model: torch.nn.Module, prompt: list[int], response: list[int], temperature: float) -> float:
    """Summed log-probability of ``response`` under softmax(logits / temperature): the sampling distribution."""
    ids = torch.tensor([prompt + response])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    return float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(response)[:, None]).sum())


@pytest.mark.parametrize("engine_name", ["hf", "vllm"])
def test_generation_logprob_is_under_the_sampling_distribution(warm_policy, monkeypatch, engine_name):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    tokenizer, model = load_tokenizer(str(warm_policy)), load_causal_lm(str(warm_policy))
    if engine_name == "vllm":
        from oatlike.engines.vllm_engine import VLLMEngine

        engine = VLLMEngine(str(warm_policy), tokenizer, VLLMEngineConfig(dtype="float32"), torch.device("cpu"))
    else:
        engine = HFEngine(load_causal_lm(str(warm_policy)), tokenizer)
    prompts = [tokenizer(item.text).input_ids for item in ArithmeticTask().split("eval")[:8]]
    temperature = 0.5
    torch.manual_seed(0)
    groups = engine.generate(prompts, SamplingParams(n=2, temperature=temperature, max_new_tokens=8, logprobs=True))
    gaps_to_sampling, gaps_to_model = [], []
    for prompt, group in zip(prompts, groups, strict=True):
        for generation in group:
            gaps_to_sampling.append(
                abs(generation.logprob - sampling_logprob(model, prompt, generation.token_ids, 0.5))
            )
            gaps_to_model.append(abs(generation.logprob - sampling_logprob(model, prompt, generation.token_ids, 1.0)))
    assert max(gaps_to_sampling) < 2e-3, gaps_to_sampling
    assert max(gaps_to_model) > 0.05  # the raw model's log-prob is another quantity: the test tells them apart
