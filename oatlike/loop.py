"""The online loop, on one screen: :meth:`Loop.train` reads as the online-DAP pseudo-code (docs/algorithms.md §2).

It drives the three roles of :mod:`oatlike.roles` and knows nothing of where they run. Around it,
:class:`Loop` keeps the run's books: it counts oracle queries from the batches that arrive (a query spent
by an actor that died before returning its batch is re-requested, not counted twice), so
``oracle/queries`` always equals the number of distinct pairs trained on; it never lets a step start that
could overrun ``oracle.max_queries``; and whatever stops the run (the last step, the budget, Ctrl-C, a
non-finite loss, an oracle that stopped answering, a dead worker) it keeps what was collected: metrics,
evaluations, the policy (``checkpoints/last``) and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from oatlike.builder import Builder
from oatlike.config import Config, save_resolved_config
from oatlike.data.prompts import PromptStream
from oatlike.errors import NonFiniteLossError, OatlikeError, OracleError
from oatlike.eval.evaluator import save_generations
from oatlike.roles import Roles
from oatlike.runners.config import RUNNERS
from oatlike.tracking.tracker import Tracker, summary_table
from oatlike.types import PreferenceBatch, Prompt

log = logging.getLogger(__name__)


class Loop:
    """One run of ``config`` on ``roles``, written to ``run_dir`` through ``tracker``."""

    def __init__(
        self,
        config: Config,
        roles: Roles,
        prompts: PromptStream,
        tracker: Tracker,
        run_dir: Path,
        data_metrics: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.roles, self.prompts, self.tracker, self.run_dir = config, roles, prompts, tracker, run_dir
        self.data_metrics = data_metrics or {}
        self.queries = self.pairs_trained = self.last_step = 0
        self.sync_seconds = 0.0
        self.stop_reason = "completed"
        self.evaluations: dict[int, dict[str, Any]] = {}
        self.batch: PreferenceBatch | None = None  # the one being learnt (dumped if its loss blows up)

    def train(self) -> int:
        """The steps after :attr:`last_step` (0, or a restored state's); returns the last one taken."""
        actors, learner, sync, explore = self.roles.actors, self.roles.learner, self.roles.sync, self.config.explore
        if self.last_step == 0:
            self.evaluate(0)
        pending = None
        for step in range(self.last_step + 1, self.config.steps + 1):
            if pending is None:
                if self.budget_spent(in_flight=0):
                    self.stop_reason = "oracle.max_queries reached"
                    return step - 1
                pending = actors.submit(self.next_prompts())
            self.batch, metrics = actors.collect(pending)  # actors: generate K → select → query → label
            pending = actors.submit(self.next_prompts()) if self.may_prefetch(step) else None  # async: t+1 now
            metrics.update(self.count(self.batch, metrics))
            metrics.update(learner.learn(self.batch))  # learner: buffer → DAP loss (+ bonus) → optimizer step
            synced = self.config.sync_every > 0 and step % self.config.sync_every == 0
            if synced:  # behaviour policy ← learner (0: never, the offline baseline)
                metrics.update(sync.push("policy"))
            if explore.reference_refresh_due(step, synced):  # π_ref ← π_θ (BPO, SELM / COPO iterations)
                learner.refresh_reference()
                metrics.update(sync.push("reference"))
            self.log(step, metrics)
            if step == self.config.steps or (self.config.eval.every and step % self.config.eval.every == 0):
                self.evaluate(step)
            if self.config.learner.checkpoint_every and step % self.config.learner.checkpoint_every == 0:
                learner.save(str(self.run_dir / "checkpoints" / f"step_{step:06d}"))
        return self.config.steps

    # ------------------------------------------------------------------------------------------ the books

    def next_prompts(self) -> list[Prompt]:
        return self.prompts.next(self.config.explore.prompt_pool_size(self.config.actor.prompts_per_step))

    def may_prefetch(self, step: int) -> bool:
        """Async mode: start collecting step ``step + 1`` now, when the batch will be at most
        ``runner.max_staleness`` learner versions old when trained on and the budget allows it."""
        if self.config.runner.mode != "async" or step >= self.config.steps or self.budget_spent(in_flight=1):
            return False
        staleness_when_trained = self.roles.learner.version + 1 - self.roles.actors.policy_version
        return staleness_when_trained <= self.config.runner.max_staleness

    def budget_spent(self, in_flight: int) -> bool:
        """Whether one more collection (on top of ``in_flight`` unfinished ones) could overrun the budget."""
        budget = self.config.oracle.max_queries
        if budget is None:
            return False
        actor = self.config.actor
        scores = actor.num_samples if self.config.explore.scores_candidates else 0
        most_per_step = actor.prompts_per_step * (1 + scores)
        return self.queries + (in_flight + 1) * most_per_step > budget

    def count(self, batch: PreferenceBatch, metrics: dict[str, Any]) -> dict[str, Any]:
        """The run's query and pair counts with this batch, and its staleness."""
        self.queries += int(metrics.get("oracle/step_queries", 0))
        self.pairs_trained += sum(batch.loss_mask)
        return {
            "oracle/queries": self.queries,
            "misc/pairs_trained": self.pairs_trained,
            "misc/staleness": self.roles.learner.version - batch.oldest_behaviour_version,
            "misc/behaviour_version": batch.oldest_behaviour_version,
            "misc/pair_reference_version": min(batch.reference_versions),
        }

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.last_step = step
        self.sync_seconds += metrics.get("misc/sync_seconds", 0.0)
        self.tracker.log(step, metrics)
        self.tracker.advance()

    def evaluate(self, step: int) -> None:
        metrics, records = self.roles.learner.evaluate()
        if self.config.eval.save_generations and records:
            save_generations(self.run_dir / "eval", step, records)
        metrics["oracle/queries"] = self.queries
        self.tracker.log(step, metrics)
        self.evaluations[step] = metrics

    # ----------------------------------------------------------------------------------- start and stop

    def run(self) -> dict[str, Any]:
        """Train, then evaluate, save and summarise; returns the summary (also in ``summary.json``)."""
        try:
            self.tracker.log(0, self.data_metrics)
            step = self._train_keeping_what_was_collected()
            if step not in self.evaluations:
                self.evaluate(step)
            checkpoint = self.run_dir / "checkpoints" / "final"
            self.roles.learner.save(str(checkpoint))
            return self._summarise(step, checkpoint)
        finally:
            self.roles.close()

    def _train_keeping_what_was_collected(self) -> int:
        try:
            return self.train()
        except NonFiniteLossError as error:
            if self.batch is not None:
                with open(self.run_dir / "failed_batch.jsonl", "w") as handle:
                    handle.writelines(json.dumps(record) + "\n" for record in self.batch.records())
            self.tracker.message(f"stopping at step {self.last_step + 1}: {error}")
            self._stop("non-finite loss")
            raise
        except KeyboardInterrupt:
            self.tracker.message("interrupted: saving the policy and the metrics collected so far")
            self._stop("interrupted")
            raise
        except OatlikeError as raised:  # an oracle that stopped answering, a dead learner, ...
            # a worker's error comes wrapped by Ray (with its remote traceback): report the error itself
            cause = getattr(raised, "cause", None)
            failure = cause if isinstance(cause, OatlikeError) else raised
            step, reason = self.last_step + 1, "oracle failed" if isinstance(failure, OracleError) else "error"
            self.tracker.message(f"stopping at step {step} ({reason}): saving what was collected")
            self._stop(reason)
            failure.args = (
                f"{failure}; the run stopped at step {step}, its metrics and policy (checkpoints/last) are in "
                f"{self.run_dir}",
            )
            raise failure from None

    def _stop(self, reason: str) -> None:
        """Keep what was collected: the policy as it is and the metrics so far."""
        self.stop_reason = reason
        try:
            self.roles.learner.save(str(self.run_dir / "checkpoints" / "last"))
        except Exception as error:  # the policy may be unreachable (a dead learner): keep the metrics anyway
            log.error("could not save the policy: %s", error)
        self.tracker.close()

    def _summarise(self, step: int, checkpoint: Path) -> dict[str, Any]:
        first, last = self.evaluations[min(self.evaluations)], self.evaluations[step]
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
            **self.roles.summary(),
            **{f"initial/{k}": v for k, v in first.items() if k.startswith("eval/")},
            **{f"final/{k}": v for k, v in last.items() if k.startswith("eval/")},
        }
        totals = {k: summary[k] for k in ("stop_reason", "steps", "oracle_queries", "pairs_trained", "seconds")}
        totals["run folder"] = str(self.run_dir)
        self.tracker.finish(summary, summary_table(first, last, totals))
        return summary

    def state_dict(self) -> dict[str, Any]:
        """The books (step, counters, prompt stream position) and every role's state, between two steps.

        The actors' weights are not in it, only their versions: a restored run gives the actors the learner's
        policy (and π_ref) again, which is exact when they held the learner's current weights (a step that
        synced: every step at ``sync_every=1``) or the initial ones.
        """
        return {
            "last_step": self.last_step,
            "actor_versions": {
                "policy": self.roles.actors.policy_version,
                "reference": self.roles.actors.reference_version,
            },
            "queries": self.queries,
            "pairs_trained": self.pairs_trained,
            "sync_seconds": self.sync_seconds,
            "prompts": self.prompts.state_dict(),
            "actors": self.roles.actors.state_dict(),
            "learner": self.roles.learner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step, self.queries, self.pairs_trained = state["last_step"], state["queries"], state["pairs_trained"]
        self.sync_seconds = state["sync_seconds"]
        self.prompts.load_state_dict(state["prompts"])
        self.roles.actors.load_state_dict(state["actors"])
        self.roles.learner.load_state_dict(state["learner"])
        held = state["actor_versions"]
        if held["policy"]:
            if held["policy"] != self.roles.learner.version:
                log.warning(
                    "restored between two syncs: the actors held policy version %d and take the learner's %d",
                    held["policy"],
                    self.roles.learner.version,
                )
            self.roles.sync.push("policy")
        if held["reference"]:
            self.roles.sync.push("reference")


def build_loop(config: Config, run_dir: Path) -> Loop:
    """The run of ``config`` ready to start: its roles built by its runner, its folder and tracker open."""
    run_dir.mkdir(parents=True, exist_ok=True)
    builder = Builder(config, progress=config.tracking.progress)
    train_prompts, eval_prompts = builder.prompt_sets
    tracker = Tracker(run_dir, config.tracking, save_resolved_config(config, run_dir), config.steps)
    try:
        roles = RUNNERS.get(config.runner.name).implementation()(builder, run_dir, tracker.message)
    except BaseException:
        tracker.close()
        raise
    data = {
        "misc/train_prompts": len(train_prompts),
        "misc/eval_prompts": len(eval_prompts),
        "misc/prompts_skipped_too_long": train_prompts.skipped_too_long + eval_prompts.skipped_too_long,
        "misc/prompts_skipped_empty": train_prompts.skipped_empty + eval_prompts.skipped_empty,
        "misc/policy": builder.policy_path,
    }
    return Loop(config, roles, PromptStream(train_prompts.prompts, seed=config.seed), tracker, run_dir, data)


def run(config: Config, run_dir: Path) -> dict[str, Any]:
    """Run the experiment of ``config`` with its runner, writing to ``run_dir``; returns the summary."""
    return build_loop(config, run_dir).run()
