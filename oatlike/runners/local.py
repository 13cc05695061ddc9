"""The local runner: the whole online loop in this process (debugging, tests, laptops).

Each step follows the paper pseudo-code of online DAP (ALGORITHMS.md §2)::

    prompts  ← next M training prompts
    pairs    ← actor.step(prompts)            generate K → select → query oracle → label
    metrics  ← learner.learn(pairs)           buffer → DAP loss → DeepSpeed step
    every sync_every steps: actor weights ← learner weights       (0: never, the offline baseline)
    when the explorer says so: π_ref ← π_θ (learner and actor)    (BPO at every sync; SELM/COPO iterations)
    every eval.every steps: evaluate the learner's policy

The run stops after ``steps`` steps, when ``oracle.max_queries`` is spent, on Ctrl-C, or on a non-finite
loss; in every case what was collected stays in the run folder (metrics, eval generations, a checkpoint).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from oatlike.builder import Builder
from oatlike.config import Config
from oatlike.data import PromptStream
from oatlike.errors import NonFiniteLossError
from oatlike.tracking import Tracker, summary_table
from oatlike.types import PreferenceBatch

log = logging.getLogger(__name__)


def save_resolved_config(config: Config, run_dir: Path) -> dict[str, Any]:
    """Write ``config.yaml`` (every value resolved) to the run folder; returns it as a dict."""
    as_dict = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    assert isinstance(as_dict, dict)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(as_dict))
    return {str(k): v for k, v in as_dict.items()}


class LocalRunner:
    """Runs the experiment of ``config`` in one process and writes it to ``run_dir``."""

    def __init__(self, config: Config, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        self.builder = Builder(config, progress=config.tracking.progress)
        self.train_prompts, eval_prompts = self.builder.prompt_sets
        self.actor = self.builder.actor()
        self.learner = self.builder.learner()
        self.evaluator = self.builder.evaluator(run_dir / "eval")
        self.stream = PromptStream(self.train_prompts.prompts, seed=config.seed)
        run_config = save_resolved_config(config, run_dir)
        self.tracker = Tracker(run_dir, config.tracking, run_config, config.steps)
        self.first_eval: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.last_eval_step = -1
        self.sync_seconds = 0.0
        self.stop_reason = "completed"
        self.pairs_trained = 0
        self.tracker.log(0, self._data_metrics(eval_prompts))

    def _data_metrics(self, eval_prompts: Any) -> dict[str, Any]:
        return {
            "misc/train_prompts": len(self.train_prompts),
            "misc/eval_prompts": len(eval_prompts),
            "misc/prompts_skipped_too_long": self.train_prompts.skipped_too_long + eval_prompts.skipped_too_long,
            "misc/prompts_skipped_empty": self.train_prompts.skipped_empty + eval_prompts.skipped_empty,
            "misc/policy": self.builder.policy_path,
        }

    def run(self) -> dict[str, Any]:
        """Run every step; returns the summary (also in ``summary.json``)."""
        step = 0
        try:
            self._evaluate(0)
            for step in range(1, self.config.steps + 1):
                if self._budget_spent():
                    self.stop_reason = "oracle.max_queries reached"
                    step -= 1
                    break
                self._step(step)
                self.tracker.advance()
        except NonFiniteLossError:
            self.stop_reason = "non-finite loss"
            self._save_checkpoint("last")
            self.tracker.close()
            raise
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self.tracker.message("interrupted: saving the policy and metrics collected so far")
            self._save_checkpoint("last")
            self.tracker.close()
            raise
        return self._finish(step)

    def _budget_spent(self) -> bool:
        """Whether the next step could exceed ``oracle.max_queries`` (the budget is never overrun)."""
        budget = self.config.oracle.max_queries
        if budget is None:
            return False
        actor = self.config.actor
        scores = actor.num_samples if self.actor.explorer.needs_scores else 0
        most_next_step = actor.prompts_per_step * (1 + scores)
        return self.actor.oracle.queries + most_next_step > budget

    def _step(self, step: int) -> None:
        prompts = self.stream.next(self.actor.explorer.prompt_pool_size(self.config.actor.prompts_per_step))
        batch, metrics = self.actor.step(prompts)
        try:
            metrics.update(self.learner.learn(batch))
        except NonFiniteLossError as error:
            self._dump_batch(batch, "failed_batch.jsonl")
            self.tracker.message(f"stopping at step {step}: {error}")
            raise
        self.pairs_trained += sum(batch.loss_mask)
        metrics["misc/pairs_trained"] = self.pairs_trained
        synced = bool(self.config.sync_every) and step % self.config.sync_every == 0
        if synced:
            metrics.update(self._sync())
        if self.learner.explorer.reference_refresh_due(step, synced):
            metrics.update(self._refresh_reference())
        self.tracker.log(step, metrics)
        every = self.config.eval.every
        if (every and step % every == 0) or step == self.config.steps:
            self._evaluate(step)
        if self.config.learner.checkpoint_every and step % self.config.learner.checkpoint_every == 0:
            self._save_checkpoint(f"step_{step:06d}")

    def _sync(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.actor.engine.load_weights(self.learner.weights(), self.learner.version)
        seconds = time.perf_counter() - start
        self.sync_seconds += seconds
        return {"misc/sync_seconds": seconds, "misc/weights_version": self.learner.version}

    def _refresh_reference(self) -> dict[str, Any]:
        """π_ref ← π_θ in the learner and in the actor's reference copy (BPO; iterations of SELM / COPO)."""
        self.actor.load_reference_weights(self.learner.refresh_reference(), self.learner.version)
        return {"misc/reference_version": self.learner.version}

    def _evaluate(self, step: int) -> None:
        metrics = self.evaluator.evaluate(step, self.learner.weights(), self.learner.version)
        metrics["oracle/queries"] = self.actor.oracle.queries
        self.tracker.log(step, metrics)
        if not self.first_eval:
            self.first_eval = metrics
        self.last_eval, self.last_eval_step = metrics, step

    def _save_checkpoint(self, name: str) -> Path:
        folder = self.run_dir / "checkpoints" / name
        self.learner.save(folder, self.builder.tokenizer)
        return folder

    def _dump_batch(self, batch: PreferenceBatch, name: str) -> None:
        with open(self.run_dir / name, "w") as handle:
            for record in batch.records():
                handle.write(json.dumps(record) + "\n")

    def _finish(self, step: int) -> dict[str, Any]:
        if self.last_eval_step != step:
            self._evaluate(step)
        checkpoint = self._save_checkpoint("final")
        elapsed = self.tracker.elapsed()
        summary = {
            "stop_reason": self.stop_reason,
            "steps": step,
            "oracle_queries": self.actor.oracle.queries,
            "pairs_trained": self.pairs_trained,
            "seconds": round(elapsed, 1),
            "steps_per_second": round(step / max(elapsed, 1e-9), 3),
            "sync_seconds": round(self.sync_seconds, 3),
            "checkpoint": str(checkpoint),
            "run_dir": str(self.run_dir),
            **{f"initial/{k}": v for k, v in self.first_eval.items() if k.startswith("eval/")},
            **{f"final/{k}": v for k, v in self.last_eval.items() if k.startswith("eval/")},
        }
        totals = {k: summary[k] for k in ("stop_reason", "steps", "oracle_queries", "pairs_trained", "seconds")}
        totals["run folder"] = str(self.run_dir)
        self.tracker.finish(summary, summary_table(self.first_eval, self.last_eval, totals))
        return summary


def run_local(config: Config, run_dir: Path) -> dict[str, Any]:
    """Run ``config`` with every component in this process."""
    return LocalRunner(config, run_dir).run()
