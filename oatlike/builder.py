"""One builder for every runner: every component of an experiment, made from its :class:`Config`.

The local runner calls it once in its process; the distributed runner calls the same methods inside each
Ray actor, so a distributed bug always has a one-process repro. Nothing here runs the loop, and nothing
here knows a particular explorer, loss or oracle: each is built from its own config through its registry.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from oatlike.actors.actor import Actor
from oatlike.config import Config
from oatlike.data.prompts import PromptSet, encode_prompt_sets, read_prompt_items
from oatlike.engines.base import Engine, EngineSite, SamplingParams, build_engine
from oatlike.engines.hf import HFEngine
from oatlike.errors import ConfigError
from oatlike.eval.config import default_eval_oracle
from oatlike.eval.evaluator import Evaluator
from oatlike.exploration.base import LearnerExplorer, Need, build_actor_explorer, build_learner_explorer
from oatlike.exploration.features import FeatureBackbone
from oatlike.learner import ds
from oatlike.learner.ensemble import LoraEnsembleLearner
from oatlike.learner.learner import Learner
from oatlike.losses.loss import build_loss
from oatlike.models.loading import TRUST_REMOTE_CODE_KEY, check_model_folder, load_causal_lm, load_tokenizer
from oatlike.models.lora import apply_lora, apply_lora_ensemble
from oatlike.oracles.base import Oracle, OracleSite, build_oracle
from oatlike.seeding import stable_seed
from oatlike.tasks.base import Task, build_task
from oatlike.warmstart import default_cache_dir, ensure_policy_folder


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "device=cuda but no CUDA device is visible; use device=cpu or device=auto")
    return torch.device(name)


class Builder:
    """Builds the components of the experiment described by ``config``."""

    def __init__(self, config: Config, progress: bool = True) -> None:
        self.config = config
        self.progress = progress

    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    @cached_property
    def task(self) -> Task | None:
        return build_task(self.config.task)

    @cached_property
    def cache_dir(self) -> Path:
        return Path(self.config.cache_dir).expanduser() if self.config.cache_dir else default_cache_dir()

    @cached_property
    def policy_path(self) -> str:
        """Hub name or folder of the initial policy (the warm-started tiny model is built on first use)."""
        model = self.config.model
        if model.name == "tiny":
            return str(ensure_policy_folder(model, self.config.task, self.task, self.cache_dir, self.progress))
        assert model.pretrain is not None
        check_model_folder(model.pretrain, "model.pretrain", model.trust_remote_code, TRUST_REMOTE_CODE_KEY)
        return model.pretrain

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        model = self.config.model
        key = "model.tokenizer" if model.tokenizer else ("model.pretrain" if model.name == "hf" else "model")
        return load_tokenizer(model.tokenizer or self.policy_path, key, model.trust_remote_code, TRUST_REMOTE_CODE_KEY)

    @cached_property
    def prompt_sets(self) -> tuple[PromptSet, PromptSet]:
        """``(train, eval)`` prompts, encoded; read and checked before the tokenizer (the policy) is loaded."""
        items = read_prompt_items(self.config.data, self.task, self.config.seed)
        return encode_prompt_sets(items, self.tokenizer, self.config.data)

    @cached_property
    def _oracle(self) -> Oracle:
        return build_oracle(self.config.oracle, OracleSite(self.task, self.device, "oracle", self.cache_dir))

    def oracle(self) -> Oracle:
        """The training oracle, with its own counters (built once; copies share its model and cache)."""
        return self._oracle.fork()

    def eval_oracle(self) -> Oracle:
        """The evaluation oracle with counters of its own: ``eval.oracle``, by default the task's noiseless
        utility on a built-in task, else the training oracle (:func:`~oatlike.eval.config.default_eval_oracle`)."""
        config = default_eval_oracle(self.config.eval, self.config.oracle, self.task is not None)
        if config is None:
            return self.oracle()
        return build_oracle(config, OracleSite(self.task, self.device, "eval.oracle", self.cache_dir))

    def learner_explorer(self) -> LearnerExplorer:
        """The learner side of the explorer (every rank has its own)."""
        return build_learner_explorer(self.config.explore, self.config.loss, self.config.seed)

    def sampling(self) -> SamplingParams:
        actor = self.config.actor
        return SamplingParams(
            n=actor.num_samples,
            temperature=actor.temperature,
            top_p=actor.top_p,
            top_k=actor.top_k,
            max_new_tokens=actor.max_new_tokens,
        )

    def policy_model(self) -> PreTrainedModel:
        """A fresh copy of the initial policy (the configured dtype; no adapters)."""
        model = self.config.model
        return load_causal_lm(self.policy_path, model.dtype, trust_remote_code=model.trust_remote_code)

    def engine(self) -> Engine:
        """A generation engine holding a fresh copy of the initial policy (``engine=hf|vllm``)."""
        model = self.config.model
        site = EngineSite(
            self.policy_path, self.tokenizer, self.device, model.dtype, self.config.seed, model.trust_remote_code
        )
        return build_engine(self.config.engine, site)

    def hf_engine(self) -> HFEngine:
        """A Hugging Face engine holding a fresh copy of the initial policy (reference copies: they give the
        hidden features explorers read, whatever ``engine=`` says)."""
        return HFEngine(self.policy_model(), self.tokenizer, self.device, self.config.engine.max_batch_size)

    def backbone(self, reference: Engine | None) -> FeatureBackbone:
        """The frozen features of candidates: ``explore.backbone`` (a causal LM), else the reference engine."""
        path = getattr(self.config.explore, "backbone", None)
        if path is None:
            if reference is None:
                raise ValueError("the default feature backbone is the reference engine; none was built")
            return FeatureBackbone(reference)
        trust = self.config.model.trust_remote_code
        tokenizer = load_tokenizer(path, "explore.backbone", trust, TRUST_REMOTE_CODE_KEY)
        model = load_causal_lm(path, self.config.model.dtype, "explore.backbone", trust, TRUST_REMOTE_CODE_KEY)
        return FeatureBackbone(HFEngine(model, tokenizer, self.device, self.config.engine.max_batch_size), tokenizer)

    def actor(self, index: int = 0) -> Actor:
        explorer = build_actor_explorer(self.config.explore, stable_seed(self.config.seed, "explorer", index))
        oracle = self.oracle()
        if Need.ORACLE_SCORES in explorer.needs and not oracle.has_score:
            raise ConfigError(
                "explore",
                f"explore={explorer.name} needs pointwise scores, which oracle={oracle.name} does not give; "
                "choose a pairwise explorer (explore=passive) or a scoring oracle (rule, reward_model)",
            )
        reference = self.hf_engine() if Need.REFERENCE_ENGINE in explorer.needs else None
        return Actor(
            self.engine(),
            oracle,
            explorer,
            self.sampling(),
            label_mode=self.config.oracle.label_mode,
            seed=stable_seed(self.config.seed, "actor", index),
            true_utility=self.task.utility if self.task is not None else None,
            best_utility=self.task.best_utility if self.task is not None else None,
            reference_engine=reference,
            backbone=self.backbone(reference) if Need.CANDIDATE_FEATURES in explorer.needs else None,
        )

    def total_optimizer_steps(self) -> int:
        """Optimizer steps over the run (the buffer fills up during the first steps; ranks step together)."""
        cfg = self.config
        per_step = cfg.actor.prompts_per_step
        global_batch = cfg.learner.train_batch_size * cfg.learner.num
        return sum(
            cfg.learner.epochs * (min(t * per_step, cfg.buffer_size) // global_batch) for t in range(1, cfg.steps + 1)
        )

    def learner(self, world: ds.World | None = None) -> Learner:
        cfg = self.config
        loss = build_loss(cfg.loss)
        explorer = self.learner_explorer()
        model = self.policy_model()
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        reference = self.policy_model() if loss.needs_reference else None
        options: dict[str, Any] = {
            "pad_token_id": int(self.tokenizer.pad_token_id),
            "buffer_size": cfg.buffer_size // cfg.learner.num,
            "total_optimizer_steps": self.total_optimizer_steps(),
            "device": self.device,
            "seed": cfg.seed + (world.rank if world else 0),  # rank 0: the run seed, as in one process
            "explorer": explorer,
            "world": world,
        }
        ensemble = explorer.adapter_ensemble
        if ensemble is not None:
            members = apply_lora_ensemble(model, cfg.model.lora, ensemble.size, seed=cfg.seed)
            return LoraEnsembleLearner(
                cfg.learner, members, reference, loss, merge=ensemble.merge, merged_model=self.policy_model(), **options
            )
        policy = apply_lora(model, cfg.model.lora) if cfg.model.lora.enabled else model
        return Learner(cfg.learner, policy, reference, loss, **options)

    def evaluator(self) -> Evaluator:
        cfg = self.config
        return Evaluator(
            self.engine(),
            self.prompt_sets[1].prompts,
            cfg.eval.max_new_tokens or cfg.actor.max_new_tokens,
            oracle=self.eval_oracle(),
            task=self.task,
        )
