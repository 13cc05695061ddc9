"""Frozen feature backbones for explorers that model rewards (SEA's ``φ(x, y)``).

A backbone scores every candidate once, in the actor, with the last hidden state at its last token. By
default it is the actor's reference engine (the initial policy, same tokenizer: the token ids are reused);
``explore.backbone`` names another causal LM, which reads the prompt and response texts with its own tokenizer.
"""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedTokenizerBase

from oatlike.engines.base import Engine
from oatlike.types import Rollout


class FeatureBackbone:
    """``φ(x, y_j)`` ``[M, K, H]`` for every candidate of a rollout, from a frozen engine."""

    def __init__(self, engine: Engine, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        """The backbone's own tokenizer when it differs from the policy's (texts are re-tokenized)."""

    def features(self, rollout: Rollout) -> np.ndarray:
        groups = rollout.candidates
        if self.tokenizer is None:
            prompts = [list(p.token_ids) for p, group in zip(rollout.prompts, groups, strict=True) for _ in group]
            responses = [list(g.token_ids) for group in groups for g in group]
        else:
            encode = self.tokenizer
            eos = [encode.eos_token_id] if encode.eos_token_id is not None else []
            prompts = [
                encode(p.text).input_ids for p, group in zip(rollout.prompts, groups, strict=True) for _ in group
            ]
            responses = [encode(g.text, add_special_tokens=False).input_ids + eos for group in groups for g in group]
        scores = self.engine.score(prompts, responses, features=True)
        assert scores.features is not None
        return scores.features.reshape(len(groups), len(groups[0]), -1)
