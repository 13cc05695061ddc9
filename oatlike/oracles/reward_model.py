"""The ``reward_model`` oracle: a sequence-classification reward model as a Bradley–Terry annotator.

``r(x, y)`` is the single logit of any ``AutoModelForSequenceClassification`` (hub name or local folder,
for example ``OpenAssistant/reward-model-deberta-v3-large-v2`` or ``Skywork/Skywork-Reward-Llama-3.1-8B``)
on the prompt and response, and ``P(a ≻ b) = σ((r(x, a) − r(x, b)) / T)``, the Bradley–Terry model such
reward models are trained under (Ouyang et al. 2022, eq. 1). The model runs on the actor's device in
batches of ``batch_size`` pairs (both responses of a pair in the same forward pass).

Inputs are ``prompt + response`` as the policy saw them, or, with ``chat_template``, a user/assistant
conversation through the tokenizer's chat template (as most open reward models were trained). Inputs
longer than ``max_length`` lose their start, so the response (what is judged) is kept.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from oatlike.errors import ConfigError
from oatlike.models.loading import load_sequence_classifier, load_tokenizer
from oatlike.oracles.base import ModelOracle, OracleSite, bradley_terry
from oatlike.oracles.config import RewardModelOracleConfig


class RewardModelOracle(ModelOracle):
    name = "reward_model"

    def __init__(
        self,
        config: RewardModelOracleConfig,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(config, model, tokenizer, device)
        self.chat_template = config.chat_template
        self.max_length = config.max_length
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"  # keep the response, which is what is judged
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # sequence classifiers read the logit at the last token that is not padding
        model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def build(cls, config: RewardModelOracleConfig, site: OracleSite) -> RewardModelOracle:
        """Load ``oracle.model`` (and its tokenizer) onto the site's device."""
        key = site.key
        assert config.model is not None  # validated by the config
        model = load_sequence_classifier(config.model, config.dtype, key=f"{key}.model")
        outputs = model.config.num_labels
        if outputs != 1:
            raise ConfigError(f"{key}.model", f"{config.model!r} has {outputs} outputs; a reward model has one")
        tokenizer_key = f"{key}.tokenizer" if config.tokenizer else f"{key}.model"
        tokenizer = load_tokenizer(config.tokenizer or config.model, key=tokenizer_key)
        if config.chat_template and not tokenizer.chat_template:
            raise ConfigError(
                f"{key}.chat_template", f"the tokenizer of {config.model!r} has no chat template; set it to false"
            )
        return cls(config, model, tokenizer, site.device)

    def format(self, prompt: str, response: str) -> str:
        """The reward model's input text for one response."""
        if not self.chat_template:
            return prompt + response
        conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False)
        assert isinstance(text, str)
        return text

    @torch.inference_mode()
    def rewards(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """``[N]`` reward of each response, in one forward pass (not counted: use :meth:`score`)."""
        texts = [self.format(p, r) for p, r in zip(prompts, responses, strict=True)]
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=not self.chat_template,  # a chat template writes its own BOS
            return_tensors="pt",
        ).to(self.device)
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits[:, 0].float().cpu().numpy().astype(np.float64)

    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        rewards = self.rewards(prompts + prompts, responses_a + responses_b)
        gap = rewards[: len(prompts)] - rewards[len(prompts) :]
        return bradley_terry(gap, self.temperature)

    def _score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return self.rewards(prompts, responses)
