"""BPO's LoRA ensemble (docs/algorithms.md §5): K adapters on one frozen base, each stepped separately.

Every member has its own DeepSpeed engine with its own AdamW, LR schedule and gradient clipping over its
own adapter. Each micro-batch goes through every member in turn, with the same pairs and the same cached
behaviour-reference log-probs (computed once per pair), so member k steps on its own loss only::

    for each micro-batch:  for k in members:  adapter k on → s_θk(y_w), s_θk(y_l) → ℓ_DAP → engine_k.step()

The model that samples, serves as the (behaviour) reference and is evaluated is the members' uniform
merge, by the rule of ``explore.merge`` (:func:`~oatlike.models.lora.merge_lora_ensemble`, PEFT's deltas on
any architecture); it is also what the weight-sync probe scores on the learner side, in a plain copy of the
base model.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import torch
from torch import nn

from oatlike.learner.learner import Learner
from oatlike.models.lora import add_merge_slot, merge_lora_ensemble
from oatlike.models.sequences import model_sequence_logps, pack_sequences


class AdapterView(nn.Module):
    """One ensemble member: the shared PEFT model run with this member's adapter active.

    Only the member's own adapter parameters are registered here, so its engine's gradient clipping, norm
    and zeroing see those alone (the shared model is held, not registered, as a submodule).
    """

    ensemble: Any

    def __init__(self, ensemble: nn.Module, adapter: str) -> None:
        super().__init__()
        self.__dict__["ensemble"] = ensemble
        self.adapter = adapter
        own = [p for name, p in ensemble.named_parameters() if "lora_" in name and f".{adapter}." in name]
        self.adapter_parameters = nn.ParameterList(own)

    def forward(self, **inputs: Any) -> Any:
        self.ensemble.base_model.set_adapter(self.adapter)
        return self.ensemble(**inputs)

    def train(self, mode: bool = True) -> AdapterView:
        self.ensemble.train(mode)
        return super().train(mode)


class LoraEnsembleLearner(Learner):
    """A :class:`Learner` whose policy is an ensemble of LoRA adapters, one engine and optimizer each."""

    def __init__(self, *args: Any, merge: str, merged_model: nn.Module, **kwargs: Any) -> None:
        """``merged_model``: a plain copy of the base model, which the probe loads the merge into."""
        self.merge = merge
        super().__init__(*args, **kwargs)
        self.merged_model = merged_model.to(self.device).eval().requires_grad_(False)

    def _build_engine(
        self, module: nn.Module, total_optimizer_steps: int, parameters: list[nn.Parameter] | None = None
    ) -> tuple[Any, Any]:
        """One DeepSpeed engine per adapter of ``module`` (a PEFT model); the first one is ``self.engine``."""
        self.ensemble = module
        self.adapters = list(module.peft_config)  # type: ignore[arg-type]
        if self.merge == "linear":  # before the engines: PEFT's new adapter resets which adapters are trainable
            add_merge_slot(module, self.adapters)
        self.members = []
        for adapter in self.adapters:
            view = AdapterView(module, adapter)
            # PEFT leaves only the active adapter trainable; ZeRO-1/2 partition only what requires grad.
            view.adapter_parameters.requires_grad_(True)
            self.members.append(super()._build_engine(view, total_optimizer_steps, list(view.adapter_parameters)))
        return self.members[0]

    @property
    def policy(self) -> nn.Module:
        """The PEFT model holding every adapter."""
        return self.ensemble

    def _train_micro_batch(self, indices: np.ndarray) -> dict[str, float]:
        part, cached = self.buffer.rows(indices, self.device)
        member_stats = [self._step(engine, part, cached) for engine, _ in self.members]
        losses = [stats["loss"] for stats in member_stats]
        self.explorer.log(
            member_loss_std=statistics.pstdev(losses),
            member_forward_passes=len(self.members),
        )
        return {key: statistics.fmean(stats[key] for stats in member_stats) for key in member_stats[0]}

    def weights(self) -> dict[str, torch.Tensor]:
        """The merged ensemble under the base model's names (what samples, is the reference, is evaluated)."""
        return merge_lora_ensemble(self.ensemble, self.adapters, self.merge, self.config.zero_stage)

    def weight_views(self) -> dict[str, torch.Tensor]:
        """The merged ensemble (a fresh merge: nothing to save by not copying)."""
        return self.weights()

    @torch.no_grad()
    def probe_logps(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        """Summed response log-probs under the merged ensemble, the policy the actors sample with."""
        self.merged_model.load_state_dict(self.weights())
        packed = pack_sequences(prompt_ids, response_ids, self.pad_token_id).to(self.device)
        return model_sequence_logps(self.merged_model, packed).tolist()

    def _engines(self) -> list[Any]:
        return [engine for engine, _ in self.members]
