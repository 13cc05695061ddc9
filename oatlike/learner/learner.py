"""The learner: trains the policy on preference pairs through a DeepSpeed engine.

One :meth:`Learner.learn` is the learning half of the online loop::

    buffer.add(pairs, reference log-probs)          the reference runs once per pair, never again
    for each epoch, for each micro-batch of the buffer:
        s_θ(chosen), s_θ(rejected)   ← one forward pass over the 2·B sequences
        loss = mean_b mask_b · ℓ_DAP(b)              masked pairs stay in the denominator (as oat)
        engine.backward(loss); engine.step()         DeepSpeed accumulates and steps the optimizer

A NaN or infinite loss stops before the backward pass, so the weights (and everything saved) stay intact.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, get_scheduler

from oatlike.config import LearnerConfig
from oatlike.errors import NonFiniteLossError
from oatlike.learner import ds
from oatlike.learner.buffer import PairBuffer
from oatlike.losses import DAPLoss, PairLogps, model_sequence_logps, pack_sequences
from oatlike.models.loading import export_weights
from oatlike.types import PreferenceBatch


class Learner:
    """Owns the policy (in a DeepSpeed engine), the frozen reference, the loss and the buffer."""

    def __init__(
        self,
        config: LearnerConfig,
        policy: torch.nn.Module,
        reference: torch.nn.Module | None,
        loss: DAPLoss,
        pad_token_id: int,
        buffer_size: int,
        total_optimizer_steps: int,
        device: torch.device,
        seed: int = 0,
        world: ds.World | None = None,
    ) -> None:
        if loss.needs_reference and reference is None:
            raise ValueError(f"the {loss.name} loss needs a reference model")
        self.config = config
        self.loss = loss
        self.pad_token_id = pad_token_id
        self.device = device
        self.reference = reference.to(device).eval().requires_grad_(False) if reference is not None else None
        self.buffer = PairBuffer(buffer_size)
        self.rng = np.random.default_rng(seed)
        self.version = 0
        self.optimizer_steps = 0
        policy.to(device)
        model_config = getattr(policy, "config", None)
        if model_config is not None:
            model_config.use_cache = False
        optimizer = None
        if not config.offload:
            trainable = [p for p in policy.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)

        def make_scheduler(opt: torch.optim.Optimizer) -> Any:
            return get_scheduler(
                config.lr_scheduler,
                opt,
                num_warmup_steps=config.warmup_steps,
                num_training_steps=max(1, total_optimizer_steps),
            )

        self.world = world or ds.World()
        self.engine, self.scheduler = ds.initialize(policy, config, device, optimizer, make_scheduler, self.world)

    @property
    def policy(self) -> torch.nn.Module:
        """The trained module (unwrapped from DeepSpeed; a PEFT model when LoRA is on)."""
        return self.engine.module

    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        """Add ``batch`` to the buffer and train on the buffer; returns ``train/`` metrics."""
        start = time.perf_counter()
        reference_chosen, reference_rejected = self._reference_logps(batch)
        self.buffer.add(batch, reference_chosen, reference_rejected)
        self.engine.train()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for indices in self.buffer.minibatches(self.config.micro_batch_size, self.config.epochs, self.rng):
            for key, value in self._train_micro_batch(indices).items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
        self.version += 1
        metrics = {f"train/{k}": v / counts[k] for k, v in sums.items()}
        metrics.update(
            {
                "train/lr": float(self.scheduler.get_last_lr()[0]) if self.scheduler is not None else self.config.lr,
                "train/optimizer_steps": self.optimizer_steps,
                "train/pairs": len(batch),
                "train/buffer_pairs": len(self.buffer),
                "train/learn_seconds": time.perf_counter() - start,
            }
        )
        return metrics

    @torch.no_grad()
    def _reference_logps(self, batch: PreferenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``([B], [B])`` reference log-probs of chosen and rejected (zeros for reference-free losses)."""
        if self.reference is None or not self.loss.needs_reference:
            return torch.zeros(len(batch)), torch.zeros(len(batch))
        step = self.config.micro_batch_size
        parts = [
            self._pair_logps(self.reference, batch.select(list(range(start, min(start + step, len(batch))))))
            for start in range(0, len(batch), step)
        ]
        return torch.cat([c.float().cpu() for c, _, _ in parts]), torch.cat([r.float().cpu() for _, r, _ in parts])

    def _pair_logps(
        self, model: torch.nn.Module, part: PreferenceBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chosen and rejected summed log-probs ``[B]`` under ``model`` (one forward pass over 2·B
        right-padded sequences), and the ``[2B]`` response lengths."""
        packed = pack_sequences(part.prompt_ids * 2, part.chosen_ids + part.rejected_ids, self.pad_token_id)
        packed = packed.to(self.device)
        logps = model_sequence_logps(model, packed)
        size = len(part)
        return logps[:size], logps[size:], packed.response_lengths.to(torch.float32)

    def _train_micro_batch(self, indices: np.ndarray) -> dict[str, float]:
        part = self.buffer.pairs.select(indices.tolist())  # type: ignore[union-attr]
        policy_chosen, policy_rejected, lengths = self._pair_logps(self.engine, part)
        size = len(part)
        device = policy_chosen.device
        pair_logps = PairLogps(
            policy_chosen=policy_chosen,
            policy_rejected=policy_rejected,
            reference_chosen=self.buffer.reference_chosen[indices].to(device),
            reference_rejected=self.buffer.reference_rejected[indices].to(device),
            chosen_lengths=lengths[:size].clamp_min(1),
            rejected_lengths=lengths[size:].clamp_min(1),
        )
        mask = torch.tensor(part.loss_mask, dtype=torch.float32, device=device)
        per_pair = self.loss.per_pair(pair_logps)
        loss = (per_pair * mask).sum() / size
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the {self.loss.name} loss is {loss.item()} at learner step {self.version + 1} "
                f"(pair log-probs: chosen {pair_logps.policy_chosen.tolist()[:4]}..., "
                f"rejected {pair_logps.policy_rejected.tolist()[:4]}...); lower learner.lr or check the data"
            )
        self.engine.backward(loss)
        boundary = self.engine.is_gradient_accumulation_boundary()
        unclipped_norm = self._full_grad_norm() if boundary and self.config.zero_stage == 0 else None
        self.engine.step()
        if boundary:
            self.optimizer_steps += 1
        chosen_rewards, rejected_rewards = self.loss.rewards(pair_logps)
        valid = mask.bool()
        n_valid = max(int(valid.sum()), 1)
        stats = {
            "loss": float(loss.detach()),
            "rewards_chosen": float(chosen_rewards[valid].sum()) / n_valid,
            "rewards_rejected": float(rejected_rewards[valid].sum()) / n_valid,
            "reward_margin": float((chosen_rewards - rejected_rewards)[valid].sum()) / n_valid,
            "reward_accuracy": float((chosen_rewards > rejected_rewards)[valid].float().sum()) / n_valid,
            "logps_chosen": float(pair_logps.policy_chosen.detach()[valid].sum()) / n_valid,
            "logps_rejected": float(pair_logps.policy_rejected.detach()[valid].sum()) / n_valid,
        }
        if boundary:
            norm = self.engine.get_global_grad_norm()
            stats["grad_norm"] = _finite_or_nan(norm if norm is not None else unclipped_norm)
        return stats

    def _full_grad_norm(self) -> float:
        """Norm of the accumulated gradients (ZeRO-0 keeps them whole; DeepSpeed does not report it then)."""
        norms = [torch.linalg.vector_norm(p.grad) for p in self.engine.module.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0

    def save(self, folder: Path, tokenizer: PreTrainedTokenizerBase) -> None:
        """Write the policy (LoRA merged) and tokenizer as a Hugging Face folder, atomically.

        Every rank must call it (gathering ZeRO-3 partitions is collective); rank 0 writes.
        """
        weights = self.weights()
        if self.world.rank != 0:
            return
        policy: Any = self.policy
        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        scratch = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        base.save_pretrained(scratch, state_dict=weights)
        tokenizer.save_pretrained(scratch)
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)

    @torch.no_grad()
    def sequence_logps(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        """Summed response log-probs under the policy as trained (the sync probe). Collective under ZeRO-3."""
        packed = pack_sequences(prompt_ids, response_ids, self.pad_token_id).to(self.device)
        was_training = self.engine.training
        self.engine.eval()
        logps = model_sequence_logps(self.engine, packed).tolist()
        self.engine.train(was_training)
        return logps

    def weights(self) -> dict[str, torch.Tensor]:
        """The policy's full weights for the actors: gathered (ZeRO-3), LoRA merged, base-model names."""
        return export_weights(self.policy, self.config.zero_stage)


def _finite_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
