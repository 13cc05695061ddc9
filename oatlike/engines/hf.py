"""The ``hf`` engine: transformers ``generate`` on any device."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from oatlike.engines.base import Engine, EngineSite, SamplingParams, SequenceScores
from oatlike.engines.config import EngineConfig
from oatlike.errors import NonFiniteLossError
from oatlike.models.loading import load_causal_lm
from oatlike.models.sequences import model_logps_and_features, model_sequence_logps, pack_sequences
from oatlike.types import Generation


def left_pad(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``sequences`` padded on the left, the layout ``generate`` wants."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if sequence:
            input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[row, width - len(sequence) :] = 1
    return input_ids, attention_mask


def cut_at_eos(token_ids: list[int], eos_token_ids: set[int]) -> tuple[list[int], bool]:
    """The response up to and including its first EOS, and whether an EOS was found."""
    for position, token in enumerate(token_ids):
        if token in eos_token_ids:
            return token_ids[: position + 1], True
    return token_ids, False


class HFEngine(Engine):
    """Generates with ``model.generate``; requests larger than ``max_batch_size`` sequences are split."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: torch.device | str = "cpu",
        max_batch_size: int = 256,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval()
        torch.nn.Module.to(self.model, self.device)
        self.model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos if eos is not None else tokenizer.eos_token_id]
        self.eos_token_ids = {int(t) for t in eos_ids if t is not None}
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else next(iter(self.eos_token_ids)))
        self.weights_version = 0

    @classmethod
    def build(cls, config: EngineConfig, site: EngineSite) -> HFEngine:
        model = load_causal_lm(site.policy_path, site.dtype, trust_remote_code=site.trust_remote_code)
        return cls(model, site.tokenizer, site.device, config.max_batch_size)

    @torch.no_grad()
    def generate(self, prompt_token_ids: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        prompts_per_chunk = max(1, self.max_batch_size // params.n)
        results: list[list[Generation]] = []
        for start in range(0, len(prompt_token_ids), prompts_per_chunk):
            results.extend(self._generate_chunk(prompt_token_ids[start : start + prompts_per_chunk], params))
        return results

    def _generate_chunk(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        input_ids, attention_mask = left_pad(prompts, self.pad_token_id)
        options: dict[str, object] = (
            {"do_sample": False}
            if params.greedy
            else {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": params.top_k,  # 0 disables top-k (None would fall back to generate's default of 50)
            }
        )
        try:
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=1 if params.greedy else params.n,
                pad_token_id=self.pad_token_id,
                eos_token_id=sorted(self.eos_token_ids),
                return_dict_in_generate=True,
                output_scores=params.logprobs,
                **options,
            )
        except RuntimeError as error:
            if "probability tensor contains" not in str(error):
                raise
            raise NonFiniteLossError(
                f"the policy (weights version {self.weights_version}) gives non-finite token probabilities when "
                "generating: training diverged; lower learner.lr or learner.max_grad_norm",
                weights_intact=False,
            ) from None
        responses = output.sequences[:, input_ids.shape[1] :]
        token_logprobs = None
        if params.logprobs:
            token_logprobs = self.model.compute_transition_scores(
                output.sequences, output.scores, normalize_logits=True
            ).float()
        repeats = 1 if params.greedy else params.n
        generations: list[Generation] = []
        for row, ids in enumerate(responses.tolist()):
            ids, finished = cut_at_eos(ids, self.eos_token_ids)
            logprob = 0.0
            if token_logprobs is not None:
                logprob = float(token_logprobs[row, : len(ids)].clamp_min(-1e4).sum())
            text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            generations.append(Generation(ids, text, finished, logprob))
        grouped = [generations[i * repeats : (i + 1) * repeats] for i in range(len(prompts))]
        if params.greedy and params.n > 1:
            grouped = [group * params.n for group in grouped]
        return grouped

    @torch.no_grad()
    def score(
        self, prompt_token_ids: list[list[int]], response_token_ids: list[list[int]], features: bool = False
    ) -> SequenceScores:
        logps, hidden = [], []
        for start in range(0, len(prompt_token_ids), self.max_batch_size):
            end = start + self.max_batch_size
            packed = pack_sequences(prompt_token_ids[start:end], response_token_ids[start:end], self.pad_token_id)
            packed = packed.to(self.device)
            if features:
                chunk_logps, chunk_features = model_logps_and_features(self.model, packed)
                hidden.append(chunk_features.cpu())
            else:
                chunk_logps = model_sequence_logps(self.model, packed)
            logps.append(chunk_logps.cpu())
        return SequenceScores(
            torch.cat(logps).numpy() if logps else np.zeros(0),
            torch.cat(hidden).numpy() if features and hidden else None,
        )

    def weight_storage(self) -> dict[str, torch.Tensor]:
        """The model's own parameters and persistent buffers (not detached copies: the sync re-homes them)."""
        return dict(self.model.state_dict(keep_vars=True))

    @torch.no_grad()
    def load_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        """Copy ``state_dict`` into the model; tensors that already are the model's own (a sync received
        them into :meth:`weight_storage`) are skipped, so such a load costs nothing."""
        own = self.model.state_dict(keep_vars=True)
        to_copy = {
            name: tensor
            for name, tensor in state_dict.items()
            if name not in own or not (tensor.data_ptr() == own[name].data_ptr() and tensor.shape == own[name].shape)
        }
        missing, unexpected = self.model.load_state_dict(to_copy, strict=False)
        missing = [k for k in missing if k not in state_dict and not k.endswith("rotary_emb.inv_freq")]
        if unexpected or missing:
            raise ValueError(
                f"weights do not fit the engine's model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        self.weights_version = version
