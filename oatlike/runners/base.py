"""The online loop, shared by every runner.

Each step follows the paper pseudo-code of online DAP (ALGORITHMS.md §2)::

    prompts  ← next M training prompts
    pairs    ← collect(prompts)        actors: generate K → select → query the oracle → label
    metrics  ← learn(pairs)            learner: buffer → DAP loss → DeepSpeed step
    every sync_every steps: sync()     behaviour policy ← learner weights   (0: never, the offline baseline)
    when the explorer says so: refresh_reference()   π_ref ← π_θ (learner and actors; BPO, SELM/COPO iterations)
    every eval.every steps: evaluate the learner's policy

A runner says *where* the parts run (:class:`~oatlike.runners.local.LocalRunner`: this process;
:class:`~oatlike.runners.ray_runner.RayRunner`: Ray actors). In ``runner.mode=async`` the loop starts
collecting step t+1 before it learns on step t, as long as the batch will be at most
``runner.max_staleness`` learner versions old when trained on.

The loop counts oracle queries from the batches it receives (a query spent by an actor that died before
returning its batch is re-requested, not counted twice), so ``oracle/queries`` always equals the number of
distinct pairs trained on. The run stops after ``steps`` steps, when ``oracle.max_queries`` could be
overrun, on Ctrl-C, or on a non-finite loss; in every case what was collected stays in the run folder.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from oatlike.builder import Builder
from oatlike.config import Config
from oatlike.data import PromptStream
from oatlike.errors import NonFiniteLossError, OatlikeError, OracleError
from oatlike.eval.evaluator import save_generations
from oatlike.tracking import Tracker, summary_table
from oatlike.types import PreferenceBatch, Prompt

log = logging.getLogger(__name__)

Collected = tuple[PreferenceBatch, dict[str, Any]]


def save_resolved_config(config: Config, run_dir: Path) -> dict[str, Any]:
    """Write ``config.yaml`` (every value resolved) to the run folder; returns it as a dict."""
    as_dict = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    assert isinstance(as_dict, dict)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(as_dict))
    return {str(k): v for k, v in as_dict.items()}


class Runner(ABC):
    """The online loop; subclasses place the actors, the learner and the evaluator."""

    def __init__(self, config: Config, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.builder = Builder(config, progress=config.tracking.progress)
        self.train_prompts, self.eval_prompts = self.builder.prompt_sets
        self.stream = PromptStream(self.train_prompts.prompts, seed=config.seed)
        self.tracker = Tracker(run_dir, config.tracking, save_resolved_config(config, run_dir), config.steps)
        # the driver's copy of the explorer answers the schedule questions (prompt pool, scores, refreshes)
        self.explorer = self.builder.explorer()
        self.queries = 0
        self.pairs_trained = 0
        self.sync_seconds = 0.0
        self.stop_reason = "completed"
        self.first_eval: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.last_eval_step = -1

    # ------------------------------------------------------------------------------ the parts a runner places

    @abstractmethod
    def start_collect(self, prompts: list[Prompt]) -> Any:
        """Start collecting one labelled pair per prompt; returns a handle for :meth:`finish_collect`."""

    @abstractmethod
    def finish_collect(self, handle: Any) -> Collected:
        """The batch and ``actor/`` + ``oracle/`` metrics of a collection started earlier."""

    @abstractmethod
    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        """Train on ``batch``; returns ``train/`` metrics."""

    @abstractmethod
    def sync(self) -> dict[str, Any]:
        """Give the actors the learner's weights; returns ``misc/`` metrics (time, version, probe)."""

    @abstractmethod
    def refresh_reference(self) -> dict[str, Any]:
        """π_ref ← π_θ in the learner and in the actors' reference copies; returns ``misc/`` metrics."""

    @abstractmethod
    def evaluate(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Evaluate the learner's policy: ``eval/`` metrics and one record per evaluation prompt."""

    @abstractmethod
    def save_checkpoint(self, name: str) -> Path:
        """Save the learner's policy as a Hugging Face folder under ``run_dir/checkpoints/name``."""

    @property
    @abstractmethod
    def learner_version(self) -> int:
        """Learner steps taken so far (the version of the weights it would sync)."""

    @property
    @abstractmethod
    def actor_version(self) -> int:
        """Version of the weights the actors sample with."""

    def close(self) -> None:  # noqa: B027 - optional hook: the local runner starts nothing
        """Release what the runner started (processes, clusters)."""

    def extra_summary(self) -> dict[str, Any]:
        """Runner-specific figures for the summary."""
        return {}

    # ------------------------------------------------------------------------------------------- the loop

    def run(self) -> dict[str, Any]:
        """Run every step; returns the summary (also in ``summary.json``)."""
        try:
            return self._finish(self._loop())
        finally:
            self.close()

    def _loop(self) -> int:
        """The steps; returns the last one taken. Failures keep what was collected, then propagate."""
        self.tracker.log(0, self._data_metrics())
        step = 0
        try:
            self._evaluate(0)
            pending = None
            for step in range(1, self.config.steps + 1):
                if pending is None:
                    if self._budget_spent(in_flight=0):
                        self.stop_reason = "oracle.max_queries reached"
                        return step - 1
                    pending = self.start_collect(self._next_prompts())
                batch, metrics = self.finish_collect(pending)
                pending = self._prefetch(step)
                self._step(step, batch, metrics)
                self.tracker.advance()
        except NonFiniteLossError:
            self._stop("non-finite loss")
            raise
        except KeyboardInterrupt:
            self.tracker.message("interrupted: saving the policy and the metrics collected so far")
            self._stop("interrupted")
            raise
        except OatlikeError as raised:  # an oracle that stopped answering, a dead learner, ...
            # a worker's error comes wrapped by Ray (with its remote traceback): report the error itself
            cause = getattr(raised, "cause", None)
            error = cause if isinstance(cause, OatlikeError) else raised
            reason = "oracle failed" if isinstance(error, OracleError) else "error"
            self.tracker.message(f"stopping at step {step} ({reason}): saving what was collected")
            self._stop(reason)
            error.args = (
                f"{error}; the run stopped at step {step}, its metrics and policy (checkpoints/last) are in "
                f"{self.run_dir}",
            )
            raise error from None
        return step

    def _next_prompts(self) -> list[Prompt]:
        return self.stream.next(self.explorer.prompt_pool_size(self.config.actor.prompts_per_step))

    def _prefetch(self, step: int) -> Any:
        """In async mode, start collecting the next step now (bounded staleness and budget permitting)."""
        if self.config.runner.mode != "async" or step >= self.config.steps or self._budget_spent(in_flight=1):
            return None
        staleness_when_trained = self.learner_version + 1 - self.actor_version
        if staleness_when_trained > self.config.runner.max_staleness:
            return None
        return self.start_collect(self._next_prompts())

    def _step(self, step: int, batch: PreferenceBatch, metrics: dict[str, Any]) -> None:
        self.queries += int(metrics.get("oracle/step_queries", 0))
        metrics["oracle/queries"] = self.queries
        metrics["misc/staleness"] = self.learner_version - batch.weights_version
        try:
            metrics.update(self.learn(batch))
        except NonFiniteLossError as error:
            self._dump_batch(batch, "failed_batch.jsonl")
            self.tracker.message(f"stopping at step {step}: {error}")
            raise
        self.pairs_trained += sum(batch.loss_mask)
        metrics["misc/pairs_trained"] = self.pairs_trained
        synced = bool(self.config.sync_every) and step % self.config.sync_every == 0
        if synced:
            sync_metrics = self.sync()
            self.sync_seconds += sync_metrics.get("misc/sync_seconds", 0.0)
            metrics.update(sync_metrics)
        if self.explorer.reference_refresh_due(step, synced):
            metrics.update(self.refresh_reference())
        self.tracker.log(step, metrics)
        every = self.config.eval.every
        if (every and step % every == 0) or step == self.config.steps:
            self._evaluate(step)
        if self.config.learner.checkpoint_every and step % self.config.learner.checkpoint_every == 0:
            self.save_checkpoint(f"step_{step:06d}")

    def _budget_spent(self, in_flight: int) -> bool:
        """Whether one more collection (on top of ``in_flight`` unfinished ones) could overrun the budget."""
        budget = self.config.oracle.max_queries
        if budget is None:
            return False
        actor = self.config.actor
        scores = actor.num_samples if self.explorer.needs_scores else 0
        most_per_step = actor.prompts_per_step * (1 + scores)
        return self.queries + (in_flight + 1) * most_per_step > budget

    def _evaluate(self, step: int) -> None:
        metrics, records = self.evaluate(step)
        if self.config.eval.save_generations and records:
            save_generations(self.run_dir / "eval", step, records)
        metrics["oracle/queries"] = self.queries
        self.tracker.log(step, metrics)
        if not self.first_eval:
            self.first_eval = metrics
        self.last_eval, self.last_eval_step = metrics, step

    def _data_metrics(self) -> dict[str, Any]:
        train, evaluation = self.train_prompts, self.eval_prompts
        return {
            "misc/train_prompts": len(train),
            "misc/eval_prompts": len(evaluation),
            "misc/prompts_skipped_too_long": train.skipped_too_long + evaluation.skipped_too_long,
            "misc/prompts_skipped_empty": train.skipped_empty + evaluation.skipped_empty,
            "misc/policy": self.builder.policy_path,
        }

    def _stop(self, reason: str) -> None:
        """Keep what was collected: the policy as it is and the metrics so far."""
        self.stop_reason = reason
        try:
            self.save_checkpoint("last")
        except Exception as error:  # the policy may be unreachable (a dead learner): keep the metrics anyway
            log.error("could not save the policy: %s", error)
        self.tracker.close()

    def _dump_batch(self, batch: PreferenceBatch, name: str) -> None:
        with open(self.run_dir / name, "w") as handle:
            for record in batch.records():
                handle.write(json.dumps(record) + "\n")

    def _finish(self, step: int) -> dict[str, Any]:
        if self.last_eval_step != step:
            self._evaluate(step)
        checkpoint = self.save_checkpoint("final")
        elapsed = self.tracker.elapsed()
        summary = {
            "stop_reason": self.stop_reason,
            "steps": step,
            "oracle_queries": self.queries,
            "pairs_trained": self.pairs_trained,
            "seconds": round(elapsed, 1),
            "steps_per_second": round(step / max(elapsed, 1e-9), 3),
            "sync_seconds": round(self.sync_seconds, 3),
            "checkpoint": str(checkpoint),
            "run_dir": str(self.run_dir),
            **self.extra_summary(),
            **{f"initial/{k}": v for k, v in self.first_eval.items() if k.startswith("eval/")},
            **{f"final/{k}": v for k, v in self.last_eval.items() if k.startswith("eval/")},
        }
        totals = {k: summary[k] for k in ("stop_reason", "steps", "oracle_queries", "pairs_trained", "seconds")}
        totals["run folder"] = str(self.run_dir)
        self.tracker.finish(summary, summary_table(self.first_eval, self.last_eval, totals))
        return summary
