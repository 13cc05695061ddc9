"""The HF engine on a real tiny model: generation, log-probs, weight loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oatlike.engines.base import SamplingParams
from oatlike.engines.hf import HFEngine
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.models.sequences import model_sequence_logps, pack_sequences
from oatlike.types import Prompt


@pytest.fixture(scope="module")
def engine(warm_policy):
    return HFEngine(load_causal_lm(str(warm_policy)), load_tokenizer(str(warm_policy)), max_batch_size=16)


def prompts_of(engine: HFEngine, texts: list[str]) -> list[Prompt]:
    return [Prompt(t, tuple(engine.tokenizer(t).input_ids)) for t in texts]


def test_generate_shapes_eos_and_text(engine):
    texts = ["12+34=", "85+47=", "9+9=", "50+50="]
    torch.manual_seed(0)
    groups = engine.generate(
        [list(p.token_ids) for p in prompts_of(engine, texts)], SamplingParams(n=3, max_new_tokens=8)
    )
    assert [len(g) for g in groups] == [3, 3, 3, 3]  # 12 sequences split into chunks of 16 // 3 = 5 prompts
    for group in groups:
        for generation in group:
            assert len(generation.token_ids) <= 8
            if generation.finished:
                assert generation.token_ids[-1] == engine.tokenizer.eos_token_id
                assert engine.tokenizer.eos_token_id not in generation.token_ids[:-1]
            assert generation.text == engine.tokenizer.decode(generation.token_ids, skip_special_tokens=True)
    assert np.mean([g.finished for group in groups for g in group]) > 0.9  # the SFT model learned to stop


def test_greedy_is_deterministic_and_batch_independent(engine):
    prompts = prompts_of(engine, ["12+34=", "85+47=", "9+9="])
    ids = [list(p.token_ids) for p in prompts]
    greedy = SamplingParams(greedy=True, max_new_tokens=8)
    together = [g[0].token_ids for g in engine.generate(ids, greedy)]
    alone = [engine.generate([i], greedy)[0][0].token_ids for i in ids]
    assert together == alone


def test_sampling_logprobs_match_the_model(engine):
    torch.manual_seed(1)
    prompt = prompts_of(engine, ["85+47="])[0]
    generation = engine.generate([list(prompt.token_ids)], SamplingParams(n=1, logprobs=True, max_new_tokens=8))[0][0]
    packed = pack_sequences([list(prompt.token_ids)], [generation.token_ids], engine.pad_token_id)
    with torch.no_grad():
        expected = model_sequence_logps(engine.model, packed).item()
    assert generation.logprob == pytest.approx(expected, abs=1e-3)  # temperature 1, top-p 1: the model's own


def test_load_weights_sets_weights_and_version(engine, tiny_untrained):
    other = load_causal_lm(str(tiny_untrained)).state_dict()
    original = {k: v.clone() for k, v in engine.model.state_dict().items()}
    engine.load_weights(other, version=7)
    assert engine.weights_version == 7
    assert all(torch.equal(engine.model.state_dict()[k], other[k]) for k in other)
    engine.load_weights(original, version=8)
    with pytest.raises(ValueError, match="weights do not fit"):
        engine.load_weights({"nope": torch.zeros(1)}, version=9)
