"""The warm start: a tiny Llama taught by SFT on a task's imperfect demonstrations, cached on disk.

Online alignment starts from an SFT model. For the built-in tasks oatlike makes one itself: it trains a
byte-level BPE tokenizer (shared by all tasks), builds the tiny Llama of the configured size, and fits it
to the demonstrator's answers (which carry systematic mistakes, see :mod:`oatlike.tasks`), so the policy
starts mediocre but competent. The result is a standard Hugging Face folder under the cache
(``$OATLIKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/oatlike`` or ``~/.cache/oatlike``), named by a hash of its
recipe: a changed recipe (task options, size, SFT settings, this module's ``RECIPE_VERSION``) builds a new
one. SFT settings left null take the size's recipe (``WARM_START_RECIPES``), filled in before the hash; a
build is announced by one warning line with its estimated time, since a first use of a larger size spends
minutes here. Builds are atomic (made in a scratch folder, then renamed into place) and serialised by a file
lock, so concurrent runs never see half a model and a build killed midway leaves nothing that passes for one. A
cached folder that was damaged since (a file missing, cut short or not parseable) is rebuilt, with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from oatlike.errors import writing
from oatlike.models.config import WARM_START_RECIPES, ModelConfig, WarmStartConfig
from oatlike.models.loading import damaged_weights
from oatlike.models.sequences import pack_sequences, sequence_logps
from oatlike.models.tiny import build_tiny_llama
from oatlike.models.tokenizer import generic_corpus, train_tokenizer
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.tasks.base import Task
from oatlike.tasks.config import TaskConfig
from oatlike.tasks.sorting import SortingTask

log = logging.getLogger(__name__)

RECIPE_VERSION = 1
TOKENIZER_VOCAB_SIZE = 1024
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
MODEL_FILES = ("config.json", "model.safetensors", *TOKENIZER_FILES)
"""The files a cached folder must hold (the warm-started one also ``warm_start.json``)."""


def default_cache_dir() -> Path:
    """``$OATLIKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/oatlike``, else ``~/.cache/oatlike``."""
    if os.environ.get("OATLIKE_CACHE_DIR"):
        return Path(os.environ["OATLIKE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "oatlike"


def _digest(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def cache_damage(folder: Path, required: tuple[str, ...]) -> str | None:
    """What makes ``folder`` unusable as a cached build, if anything: a ``required`` file missing or empty,
    a JSON file that does not parse, a safetensors file cut short (cheap: the weights are not read)."""
    if not folder.is_dir():
        return "it is not a folder"
    for name in required:
        file = folder / name
        if not file.is_file() or file.stat().st_size == 0:
            return f"{name} is missing" if not file.is_file() else f"{name} is empty"
    for file in sorted(folder.glob("*.json")):
        try:
            json.loads(file.read_text())
        except (ValueError, UnicodeDecodeError):
            return f"{file.name} is not valid JSON"
    return damaged_weights(folder)


def _build_once(target: Path, build: Callable[[Path], None], required: tuple[str, ...]) -> Path:
    """Run ``build(scratch_folder)`` unless ``target`` holds a whole build, then rename the result into place.

    A damaged ``target`` is rebuilt (with a warning). Scratch folders of builds that were killed are removed.
    A cache that cannot be written (read-only, full) is one :class:`~oatlike.errors.StorageError` line."""
    if cache_damage(target, required) is None:
        return target
    fix = "set OATLIKE_CACHE_DIR to a writable folder with free space (a cached build is only read)"
    with writing(target.parent, "the model cache", fix):
        return _build_locked(target, build, required)


def _build_locked(target: Path, build: Callable[[Path], None], required: tuple[str, ...]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        damage = cache_damage(target, required)  # another process may have built it meanwhile
        if damage is None:
            return target
        for leftover in [*target.parent.glob(f"{target.name}.tmp-*"), *target.parent.glob(f"{target.name}.old-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        if target.exists():
            log.warning("the cached %s is damaged (%s); building it again", target, damage)
        scratch = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        build(scratch)
        if target.exists():  # a folder with files cannot be replaced in one rename: move it aside first
            old = target.with_name(f"{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(scratch, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(scratch, target)
    return target


def tokenizer_recipe() -> dict[str, Any]:
    return {
        "kind": "tokenizer",
        "version": RECIPE_VERSION,
        "vocab_size": TOKENIZER_VOCAB_SIZE,
        "python": list(sys.version_info[:2]),  # the generic corpus is the builtins' docstrings
    }


def ensure_tokenizer(cache_dir: Path) -> Path:
    """The shared tiny-model tokenizer folder, trained on first use (about 1 s)."""

    def build(folder: Path) -> None:
        corpus = ArithmeticTask().corpus() + SortingTask().corpus() + generic_corpus()
        train_tokenizer(corpus, TOKENIZER_VOCAB_SIZE).save_pretrained(folder)

    return _build_once(cache_dir / "tokenizers" / f"bpe-{_digest(tokenizer_recipe())}", build, TOKENIZER_FILES)


def warm_start_recipe(
    task_config: TaskConfig, size: str, warm_start: WarmStartConfig, task: Task | None = None
) -> dict[str, Any]:
    recipe = {
        "kind": "warm_start",
        "version": RECIPE_VERSION,
        "task": _task_recipe(task_config),
        "size": size,
        "sft": dataclasses.asdict(warm_start),
        "tokenizer": tokenizer_recipe(),
    }
    if task is not None and task.source_digest is not None:  # a user's task: its code is part of the recipe
        recipe["task_source"] = task.source_digest
    return recipe


def _task_recipe(task_config: TaskConfig) -> dict[str, Any]:
    """The task settings that decide the SFT data: all but ``eval_split`` (which held-out split is evaluated
    does not change the training prompts), and ``num_tuning`` only when there is a tuning split (so the
    recipes, and cached warm starts, of tasks without one are those from before the key existed)."""
    settings = dataclasses.asdict(task_config)
    del settings["eval_split"]
    if not settings["num_tuning"]:
        del settings["num_tuning"]
    return settings


def ensure_policy_folder(
    model_config: ModelConfig,
    task_config: TaskConfig,
    task: Task | None,
    cache_dir: Path,
    progress: bool = True,
) -> Path:
    """The folder of the built-in tiny policy: warm-started on ``task`` (built on first use) or untrained."""
    from transformers import AutoTokenizer

    tokenizer_dir = ensure_tokenizer(cache_dir)
    warm = model_config.warm_start
    if not warm.enabled or task is None:
        recipe = {
            "kind": "untrained",
            "size": model_config.size,
            "seed": warm.seed,
            "tokenizer": tokenizer_recipe(),
        }

        def build_untrained(folder: Path) -> None:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
            build_tiny_llama(model_config.size, tokenizer, seed=warm.seed).save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        return _build_once(
            cache_dir / "models" / f"tiny-{model_config.size}-untrained-{_digest(recipe)}", build_untrained, MODEL_FILES
        )

    warm = warm.resolved(model_config.size)  # the size's recipe, before hashing: the name holds the numbers used
    recipe = warm_start_recipe(task_config, model_config.size, warm, task)
    name = f"tiny-{model_config.size}-{task_config.name}-sft-{_digest(recipe)}"
    target = cache_dir / "models" / name

    def build(folder: Path) -> None:
        log.warning(build_warning(model_config.size, task.name, warm, target))
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        model = build_tiny_llama(model_config.size, tokenizer, seed=warm.seed)
        report = supervised_fine_tune(model, tokenizer, task, warm, progress)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "warm_start.json").write_text(json.dumps({"recipe": recipe, **report}, indent=2))
        log.info("the %s warm start took %.0f s; cached in %s", model_config.size, report["seconds"], target)

    return _build_once(target, build, (*MODEL_FILES, "warm_start.json"))


def estimated_seconds(size: str, warm_start: WarmStartConfig) -> float:
    """How long the SFT of a resolved ``warm_start`` of tiny size ``size`` should take on one thread of a
    2-core machine: the size's measured seconds per step (:data:`WARM_START_RECIPES`), scaled by the batch
    size (a step's cost is about linear in it at these sizes)."""
    recipe = WARM_START_RECIPES[size]
    assert warm_start.steps is not None and warm_start.batch_size is not None, "resolve the config first"
    return warm_start.steps * recipe.seconds_per_step * warm_start.batch_size / recipe.batch_size


def build_warning(size: str, task_name: str, warm_start: WarmStartConfig, target: Path) -> str:
    """The one line said before a warm start is trained: what, how long (estimated), and that it happens once.

    A first run of a larger size spends most of its time here, which would otherwise look like a hang."""
    seconds = estimated_seconds(size, warm_start)
    duration = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(1.0, seconds):.0f} s"
    return (
        f"building the {size} warm start on {task_name}: {warm_start.steps} SFT steps of {warm_start.batch_size} "
        f"demonstrations, about {duration} on one thread of a 2-core CPU; done once, then cached in {target}"
    )


def _demonstration_batch(
    task: Task, tokenizer: PreTrainedTokenizerBase, prompts: list[str], rng: random.Random
) -> tuple[list[list[int]], list[list[int]]]:
    prompt_ids = [tokenizer(p).input_ids for p in prompts]
    response_ids = [
        [*tokenizer(task.demonstration(p, rng), add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        for p in prompts
    ]
    return prompt_ids, response_ids


def supervised_fine_tune(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    config: WarmStartConfig,
    progress: bool,
) -> dict[str, Any]:
    """SFT ``model`` on the task's demonstrations (token-averaged NLL of the responses, AdamW, linear
    warm-up over 50 steps then linear decay to 10% of ``config.lr``). Returns a small report.

    ``config`` must be resolved (:meth:`WarmStartConfig.resolved`): its steps, batch size and lr set."""
    assert config.steps is not None and config.batch_size is not None and config.lr is not None, "resolve first"
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    prompts = [item.text for item in task.split("train")]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    steps = config.steps
    warmup = min(50, max(1, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * (1.0 - 0.9 * s / max(1, steps))
    )
    model.train()
    start, losses = time.perf_counter(), []
    bar = tqdm(
        range(config.steps), desc=f"warm start: SFT on {task.name} demonstrations", disable=None if progress else True
    )
    for _ in bar:
        prompt_ids, response_ids = _demonstration_batch(task, tokenizer, rng.sample(prompts, config.batch_size), rng)
        packed = pack_sequences(prompt_ids, response_ids, tokenizer.pad_token_id)
        logits = model(input_ids=packed.input_ids, attention_mask=packed.attention_mask).logits
        loss = -sequence_logps(logits, packed.input_ids, packed.response_mask).sum() / packed.response_lengths.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{statistics.fmean(losses[-20:]):.3f}")
    model.eval()
    return {
        "steps": config.steps,
        "final_loss": statistics.fmean(losses[-20:]) if losses else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
