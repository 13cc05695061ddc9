"""The learner: trains the policy on preference pairs through a DeepSpeed engine.

One :meth:`Learner.learn` is the learning half of the online loop::

    buffer.add(pairs, reference pass)               the reference runs once per pair, never again
    explorer.learner_update(cached)                 an explorer's own model learns first (COPO's CFN)
    for each epoch, for each micro-batch of the buffer:
        s_θ(chosen), s_θ(rejected) [, s_θ(own)] ← one forward pass over the 2·B (3·B) sequences
        loss = mean_b (mask_b·ℓ_DAP(b) + bonus_b)     masked pairs stay in the denominator (as oat)
        engine.backward(loss); engine.step()         DeepSpeed accumulates and steps the optimizer

The reference pass caches, per pair: ``reference_chosen`` / ``reference_rejected``, and when the explorer
asks, ``reference_own`` (its own response ``batch.extras[OWN_RESPONSE_IDS]``) and ``own_features``. Each
pair is scored by the π_ref version its actor held (:class:`~oatlike.learner.reference.ReferenceVersions`);
:meth:`refresh_reference` makes the current policy the next version (BPO's behaviour model, an iteration
of SELM / COPO). Dropout is off in the policy (as in oat, TRL and the BPO code): the DAP loss compares
log-probs of the policy and the reference, which dropout would make noisy (an adapter's own LoRA dropout,
``model.lora.dropout``, stays as configured).

A NaN or infinite loss stops the run before the backward pass, non-finite gradients before the optimizer
step (ZeRO 1-3: DeepSpeed skips that step), so the weights stay intact; weights that a step made non-finite
stop it too (:class:`~oatlike.errors.NonFiniteLossError` says which).
The learner's whole state — weights, optimizer, schedule, references, buffer, random stream, counters,
explorer — round-trips through :meth:`state_dict` / :meth:`load_state_dict`.
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

from oatlike.errors import NonFiniteLossError, writing
from oatlike.exploration.base import BonusInputs, LearnerExplorer, Need
from oatlike.learner import ds
from oatlike.learner.buffer import PairBuffer
from oatlike.learner.config import LearnerConfig
from oatlike.learner.reference import ReferenceVersions
from oatlike.losses.loss import DAPLoss, PairLogps
from oatlike.models.lora import export_weights
from oatlike.models.sequences import model_logps_and_features, model_sequence_logps, pack_sequences
from oatlike.types import OWN_RESPONSE_IDS, PreferenceBatch

CACHED_NAMES = {"chosen": "reference_chosen", "rejected": "reference_rejected", "own": "reference_own"}


DROPOUT_ATTRIBUTES = ("attention_dropout", "dropout", "layerdrop")
"""Float probabilities that modules apply by hand: attention dropout passed to SDPA (Llama, Qwen2), OPT's
``F.dropout(p=self.dropout)``, and LayerDrop (OPT and other BART-style decoders skip whole layers)."""


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability of ``model`` to 0 (``nn.Dropout`` modules, as GPT-2's attn/resid/embd
    dropout, GPT-NeoX's and Phi's, and :data:`DROPOUT_ATTRIBUTES`), as TRL's ``disable_dropout_in_model``;
    LoRA's own dropout is left as configured."""
    for name, module in model.named_modules():
        if "lora_dropout" in name:
            continue
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for attribute in DROPOUT_ATTRIBUTES:
            if isinstance(getattr(module, attribute, None), float):
                setattr(module, attribute, 0.0)


class Learner:
    """Owns the policy (in a DeepSpeed engine), the versioned reference, the loss and the buffer."""

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
        explorer: LearnerExplorer | None = None,
    ) -> None:
        if loss.needs_reference and reference is None:
            raise ValueError(f"the {loss.name} loss needs a reference model")
        self.config = config
        self.loss = loss
        self.pad_token_id = pad_token_id
        self.device = device
        if reference is not None:
            reference = reference.to(device).eval().requires_grad_(False)
        self.references = ReferenceVersions(reference if loss.needs_reference else None)
        self.buffer = PairBuffer(buffer_size)
        self.rng = np.random.default_rng(seed)
        self.version = 0
        self.optimizer_steps = 0
        self.world = world or ds.World()
        self.explorer = explorer if explorer is not None else LearnerExplorer()
        self.own_logps = Need.OWN_LOGPS in self.explorer.needs
        self.own_features = Need.OWN_FEATURES in self.explorer.needs
        disable_dropout(policy)
        policy.to(device)
        model_config = getattr(policy, "config", None)
        if model_config is not None:
            model_config.use_cache = False
        self.engine, self.scheduler = self._build_engine(policy, total_optimizer_steps)

    def _build_engine(
        self, module: torch.nn.Module, total_optimizer_steps: int, parameters: list[torch.nn.Parameter] | None = None
    ) -> tuple[Any, Any]:
        """``(DeepSpeed engine, LR schedule)`` training ``parameters`` of ``module`` (default: its trainable ones)."""
        config = self.config
        optimizer = None
        if not config.offload:
            trainable = parameters if parameters is not None else [p for p in module.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)

        def make_scheduler(opt: torch.optim.Optimizer) -> Any:
            return get_scheduler(
                config.lr_scheduler,
                opt,
                num_warmup_steps=config.warmup_steps,
                num_training_steps=max(1, total_optimizer_steps),
            )

        return ds.initialize(module, config, self.device, optimizer, make_scheduler, self.world)

    @property
    def policy(self) -> torch.nn.Module:
        """The trained module (unwrapped from DeepSpeed; a PEFT model when LoRA is on)."""
        return self.engine.module

    @property
    def reference_version(self) -> int:
        """The newest π_ref version (0: the initial policy)."""
        return self.references.latest

    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        """Add ``batch`` to the buffer and train on the buffer; returns ``train/`` metrics."""
        start = time.perf_counter()
        cached = self._reference_pass(batch)
        self.buffer.add(batch, cached)
        self.explorer.learner_update(cached, max(batch.reference_versions))
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
                "train/reference_version": self.references.loaded,
                "train/learn_seconds": time.perf_counter() - start,
            }
        )
        metrics.update(self.explorer.collect_metrics())
        return metrics

    @torch.no_grad()
    def _reference_pass(self, batch: PreferenceBatch) -> dict[str, torch.Tensor]:
        """Per-pair reference quantities, computed once and cached with the pairs: ``reference_chosen`` and
        ``reference_rejected`` ``[B]`` (zeros for reference-free losses), ``reference_own`` ``[B]`` and
        ``own_features`` ``[B, H]`` when the explorer asks for them. Each pair is scored by the π_ref
        version it was collected with."""
        model = self.references.model
        if model is None:
            return {"reference_chosen": torch.zeros(len(batch)), "reference_rejected": torch.zeros(len(batch))}
        versions = np.array(batch.reference_versions)
        parts: list[tuple[np.ndarray, dict[str, torch.Tensor]]] = []
        for version in np.unique(versions):  # ascending: pairs arrive in collection order
            self.references.use(int(version))
            rows = np.flatnonzero(versions == version)
            for start in range(0, len(rows), self.config.micro_batch_size):
                chunk = rows[start : start + self.config.micro_batch_size]
                parts.append((chunk, self._forward(model, batch.select(chunk.tolist()), reference=True)))
        order = torch.as_tensor(np.argsort(np.concatenate([rows for rows, _ in parts]), kind="stable"))
        names = {**CACHED_NAMES, "own_features": "own_features"}
        return {
            names[key]: torch.cat([part[key].float().cpu() for _, part in parts])[order]
            for key in parts[0][1]
            if key in names
        }

    def _forward(
        self, model: torch.nn.Module, part: PreferenceBatch, reference: bool = False
    ) -> dict[str, torch.Tensor]:
        """Summed log-probs ``[B]`` of each side (``chosen``, ``rejected``, and ``own`` when the explorer needs
        it) under ``model``, in one forward pass over the right-padded sequences; ``lengths`` ``[n·B]``; and in
        the reference pass ``own_features`` ``[B, H]`` when asked for."""
        sides = [part.chosen_ids, part.rejected_ids] + ([part.extras[OWN_RESPONSE_IDS]] if self.own_logps else [])
        packed = pack_sequences(part.prompt_ids * len(sides), [r for side in sides for r in side], self.pad_token_id)
        packed = packed.to(self.device)
        outputs: dict[str, torch.Tensor] = {"lengths": packed.response_lengths.to(torch.float32)}
        if reference and self.own_features:
            logps, features = model_logps_and_features(model, packed, self.explorer.feature_position)
            outputs["own_features"] = features[-len(part) :]
        else:
            logps = model_sequence_logps(model, packed)
        for index, name in enumerate(("chosen", "rejected", "own")[: len(sides)]):
            outputs[name] = logps[index * len(part) : (index + 1) * len(part)]
        return outputs

    def _train_micro_batch(self, indices: np.ndarray) -> dict[str, float]:
        part, cached = self.buffer.rows(indices, self.device)
        return self._step(self.engine, part, cached)

    def _step(self, engine: Any, part: PreferenceBatch, cached: dict[str, torch.Tensor]) -> dict[str, float]:
        """One micro-batch through ``engine``: DAP loss plus the explorer's bonus, backward, optimizer step
        at the accumulation boundary; returns the micro-batch's ``train/`` statistics."""
        policy = self._forward(engine, part)
        size, lengths = len(part), policy["lengths"]
        pair_logps = PairLogps(
            policy_chosen=policy["chosen"],
            policy_rejected=policy["rejected"],
            reference_chosen=cached["reference_chosen"],
            reference_rejected=cached["reference_rejected"],
            chosen_lengths=lengths[:size].clamp_min(1).to(self.device),
            rejected_lengths=lengths[size : 2 * size].clamp_min(1).to(self.device),
        )
        mask = torch.tensor(part.loss_mask, dtype=torch.float32, device=self.device)
        per_pair = self.loss.per_pair(pair_logps) * mask
        bonus = self.explorer.bonus(
            BonusInputs(
                pair_logps, policy.get("own"), cached.get("reference_own"), cached.get("own_features"), part.extras
            )
        )
        loss = (per_pair if bonus is None else per_pair + bonus).sum() / size
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the {self.loss.name} loss is {loss.item()} at learner step {self.version + 1} "
                f"(pair log-probs: chosen {pair_logps.policy_chosen.tolist()[:4]}..., "
                f"rejected {pair_logps.policy_rejected.tolist()[:4]}...); lower learner.lr or check the data"
            )
        engine.backward(loss)
        boundary = engine.is_gradient_accumulation_boundary()
        unclipped_norm = self._full_grad_norm(engine) if boundary and self.config.zero_stage == 0 else None
        if unclipped_norm is not None and not math.isfinite(unclipped_norm):
            raise self._diverged(f"the gradients' norm is {unclipped_norm}")  # before the step: weights intact
        engine.step()
        if boundary and engine is self.engine:
            self.optimizer_steps += 1
        stats = self._pair_stats(pair_logps, mask, loss)
        if boundary:
            norm = _finite_or_nan(engine.get_global_grad_norm() if unclipped_norm is None else unclipped_norm)
            if not engine.was_step_applied():  # ZeRO 1-3 skip a step whose gradients are not finite
                raise self._diverged(f"the gradients' norm is {norm} (the step was skipped)")
            if not self._weights_finite(engine):
                raise self._diverged(f"the step made the weights non-finite (gradients' norm {norm})", intact=False)
            stats["grad_norm"] = norm
        return stats

    def _diverged(self, what: str, intact: bool = True) -> NonFiniteLossError:
        return NonFiniteLossError(
            f"training diverged at learner step {self.version + 1}: {what}; "
            f"lower learner.lr (now {self.config.lr:g}) or learner.max_grad_norm, or check the data",
            weights_intact=intact,
        )

    def _weights_finite(self, engine: Any) -> bool:
        """Whether every weight is finite after a step (this rank's partitions under ZeRO-3; every rank agrees)."""
        finite = all(bool(torch.isfinite(getattr(p, "ds_tensor", p)).all()) for p in engine.module.parameters())
        if self.world.size > 1 and torch.distributed.is_initialized():
            flag = torch.tensor([0.0 if finite else 1.0], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            finite = flag.item() == 0.0
        return finite

    def _pair_stats(self, pair_logps: PairLogps, mask: torch.Tensor, loss: torch.Tensor) -> dict[str, float]:
        chosen_rewards, rejected_rewards = self.loss.rewards(pair_logps)
        valid = mask.bool()
        n_valid = max(int(valid.sum()), 1)
        return {
            "loss": float(loss.detach()),
            "rewards_chosen": float(chosen_rewards[valid].sum()) / n_valid,
            "rewards_rejected": float(rejected_rewards[valid].sum()) / n_valid,
            "reward_margin": float((chosen_rewards - rejected_rewards)[valid].sum()) / n_valid,
            "reward_accuracy": float((chosen_rewards > rejected_rewards)[valid].float().sum()) / n_valid,
            "logps_chosen": float(pair_logps.policy_chosen.detach()[valid].sum()) / n_valid,
            "logps_rejected": float(pair_logps.policy_rejected.detach()[valid].sum()) / n_valid,
        }

    def _full_grad_norm(self, engine: Any) -> float:
        """Norm of the accumulated gradients (ZeRO-0 keeps them whole; DeepSpeed does not report it then)."""
        norms = [torch.linalg.vector_norm(p.grad) for p in engine.module.parameters() if p.grad is not None]
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
        with writing(folder, "the policy"):
            try:
                shutil.rmtree(scratch, ignore_errors=True)
                base.save_pretrained(scratch, state_dict=weights)
                tokenizer.save_pretrained(scratch)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            shutil.rmtree(folder, ignore_errors=True)
            scratch.rename(folder)

    @torch.no_grad()
    def probe_logps(self, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[float]:
        """Summed response log-probs under the policy as trained (the weight-sync probe). Collective under ZeRO-3."""
        packed = pack_sequences(prompt_ids, response_ids, self.pad_token_id).to(self.device)
        was_training = self.engine.training
        self.engine.eval()
        logps = model_sequence_logps(self.engine, packed).tolist()
        self.engine.train(was_training)
        return logps

    def weights(self) -> dict[str, torch.Tensor]:
        """The policy's full weights for the actors: gathered (ZeRO-3), LoRA merged, base-model names."""
        return export_weights(self.policy, self.config.zero_stage)

    def weight_views(self) -> dict[str, torch.Tensor]:
        """The weights of :meth:`weights` without copying them where no copy is needed (ZeRO 0-2, no LoRA:
        the live parameters, detached; read them before the next step). A weight sync reads them once, at
        once (into its buffers, or an engine's ``load_state_dict``), so the copy :meth:`weights` makes would
        be a second pass over every byte and a fresh allocation's page faults at every sync."""
        if self.config.zero_stage == 3 or getattr(self.policy, "peft_config", None):
            return self.weights()
        return {name: tensor.detach() for name, tensor in self.policy.state_dict().items()}

    def refresh_reference(self) -> None:
        """π_ref ← π_θ: the policy's current (merged) weights become π_ref's version :attr:`version`. Pairs
        collected before keep being judged against the version they were collected with."""
        self.references.refresh(self.weights(), self.version)

    def reference_weights(self) -> dict[str, torch.Tensor] | None:
        """π_ref's newest version's weights (``None`` while that is the initial policy of a reference-free loss)."""
        return self.references.weights()

    # ------------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (this rank's optimizer partition under ZeRO)."""
        return {
            "module": ds.gathered_state_dict(self.policy, self.config.zero_stage),
            "engines": [ds.engine_state(engine) for engine in self._engines()],
            "references": self.references.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "version": self.version,
            "optimizer_steps": self.optimizer_steps,
            "explorer": self.explorer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ds.load_module_state(self.policy, state["module"], self.config.zero_stage)
        for engine, engine_state in zip(self._engines(), state["engines"], strict=True):
            ds.load_engine_state(engine, engine_state, self.config.zero_stage)
        self.references.load_state_dict(state["references"])
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = state["rng"]
        self.version, self.optimizer_steps = state["version"], state["optimizer_steps"]
        self.explorer.load_state_dict(state["explorer"])

    def _engines(self) -> list[Any]:
        """The DeepSpeed engines this learner steps (one; an adapter ensemble has one per member)."""
        return [self.engine]


def _finite_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
