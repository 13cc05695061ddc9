"""The online loop, on one screen: :meth:`Loop.train` reads as the online-DAP pseudo-code (docs/algorithms.md §2).

It drives the three roles of :mod:`oatlike.roles` and knows nothing of where they run. Around it,
:class:`Loop` keeps the run's books: it counts oracle queries from the batches that arrive (a query spent
by an actor that died before returning its batch is re-requested, not counted twice), so
``oracle/queries`` always equals the number of distinct pairs trained on; it never lets a step start that
could overrun ``oracle.max_queries``; it writes full-state checkpoints (:mod:`oatlike.checkpoint`) every
``learner.checkpoint_every`` steps, at the end, and when it is stopped; and whatever stops the run (the last
step, the budget, SIGTERM, Ctrl-C, a non-finite loss, an oracle that stopped answering, a dead worker) it
keeps what was collected: metrics, evaluations, the policy (``checkpoints/last``) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import traceback
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

from oatlike import checkpoint
from oatlike.config import Config
from oatlike.data.prompts import PromptStream
from oatlike.errors import (
    NonFiniteLossError,
    OatlikeError,
    OracleError,
    RunCrashed,
    RunStopped,
    StorageError,
    first_line,
)
from oatlike.eval.config import describe_eval_oracle
from oatlike.eval.curves import regrets, sample_efficiency
from oatlike.eval.evaluator import save_generations
from oatlike.roles import Roles
from oatlike.tracking.tracker import Tracker, summary_table
from oatlike.types import PreferenceBatch, Prompt

log = logging.getLogger(__name__)


class Ready(NamedTuple):
    """A collection that has already arrived (restored from a checkpoint, or drained to write one)."""

    batch: PreferenceBatch
    metrics: dict[str, Any]


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
        config_dict: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.roles, self.prompts, self.tracker, self.run_dir = config, roles, prompts, tracker, run_dir
        self.data_metrics, self.config_dict = data_metrics or {}, config_dict or {}
        self.queries = self.pairs_trained = self.last_step = 0
        self.sync_seconds = 0.0
        self.cumulative_regret: float | None = None  # Σ regret/step (built-in tasks only)
        self.stop_reason = "completed"
        self.evaluations: dict[int, dict[str, Any]] = {}
        self.batch: PreferenceBatch | None = None  # the one being learnt (dumped if its loss blows up)
        self.pending: Ready | None = None  # a collection restored from a checkpoint, trained first
        self.draws: deque[dict[str, Any]] = deque()  # the prompt stream before each collection not learnt yet
        self.stop_requested: str | None = None  # "preempted" (SIGTERM) or "interrupted" (Ctrl-C)
        self.collection_failed = False

    def train(self) -> int:
        """The steps after :attr:`last_step` (0, or a restored state's); returns the last one taken."""
        learner, sync, explore = self.roles.learner, self.roles.sync, self.config.explore
        if self.last_step == 0:
            self.evaluate(0)
        pending: Any = self.pending
        for step in range(self.last_step + 1, self.config.steps + 1):
            if pending is None:
                if self.budget_spent(in_flight=0):
                    self.stop_reason = "oracle.max_queries reached"
                    return step - 1
                pending = self.submit()
            self.batch = None
            self.batch, metrics = self.collect(pending)  # actors: generate K → select → query → label
            pending = self.submit() if self.may_prefetch(step) else None  # async: collect step t+1 now
            queries_before = self.queries
            metrics.update(self.count(self.batch, metrics))
            metrics.update(learner.learn(self.batch))  # learner: buffer → DAP loss (+ bonus) → optimizer step
            self.draws.popleft()
            synced = self.config.sync_every > 0 and step % self.config.sync_every == 0
            if synced:  # behaviour policy ← learner (0: never, the offline baseline)
                metrics.update(sync.push("policy"))
            if explore.reference_refresh_due(step, synced):  # π_ref ← π_θ (BPO, SELM / COPO iterations)
                learner.refresh_reference()
                metrics.update(sync.push("reference"))
            self.log(step, metrics)
            if step == self.config.steps or self.config.eval.due(step, queries_before, self.queries):
                self.evaluate(step)  # on the step grid (eval.every) or the query grid (eval.every_queries)
            every = self.config.learner.checkpoint_every
            if self.stop_requested or (every and step % every == 0):  # full state: periodic, SIGTERM, Ctrl-C
                pending = self.save_state(step, pending)
                if self.stop_requested:
                    return step
        return self.config.steps

    # ------------------------------------------------------------------------------------------ the books

    def next_prompts(self) -> list[Prompt]:
        return self.prompts.next(self.config.explore.prompt_pool_size(self.config.actor.prompts_per_step))

    def submit(self) -> Any:
        """Draw the next prompts and start collecting them (the stream before the draw is kept until the
        batch is learnt, so a run that stops on a failed collection loses no prompt)."""
        self.draws.append(self.prompts.state_dict())
        try:
            return self.roles.actors.submit(self.next_prompts())  # the local pool collects right here
        except Exception:
            self.collection_failed = True
            raise

    def collect(self, pending: Any) -> tuple[PreferenceBatch, dict[str, Any]]:
        if isinstance(pending, Ready):
            return pending.batch, pending.metrics
        try:
            return self.roles.actors.collect(pending)
        except Exception:
            self.collection_failed = True
            raise

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
        books: dict[str, Any] = {}
        if "regret/step" in metrics:
            self.cumulative_regret = (self.cumulative_regret or 0.0) + metrics["regret/step"]
            books["regret/cumulative"] = self.cumulative_regret
        return {
            **books,
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
        if self.config.eval.save_generations:
            self.tracker.generations(step, records)
        self.evaluations[step] = metrics

    def save_state(self, step: int, pending: Any = None) -> Ready | None:
        """A full-state checkpoint after ``step``; a collection in flight (async) is drained into it and
        returned, to be trained on next as if nothing had happened."""
        if pending is not None and not isinstance(pending, Ready):
            pending = Ready(*self.roles.actors.collect(pending))
        state = {"loop": self.state_dict(pending), "tracker": self.tracker.state_dict(step)}
        folder = checkpoint.save(self.run_dir, step, state, self.config_dict, self.config.learner.keep_checkpoints)
        log.info("full-state checkpoint of step %d: %s", step, folder)
        return pending

    # ----------------------------------------------------------------------------------- start and stop

    def run(self) -> dict[str, Any]:
        """Train, then evaluate, save and summarise; returns the summary (also in ``summary.json``).

        SIGTERM and a first Ctrl-C stop the run after the step in progress, with a full-state checkpoint
        (:class:`~oatlike.errors.RunStopped`, exit code 75 or 130); a second Ctrl-C stops at once.
        """
        handlers = self._catch_signals()
        try:
            if self.last_step == 0:
                self.tracker.log(0, self.data_metrics)
            step = self._train_keeping_what_was_collected()
            if self.stop_requested:
                self._stop(self.stop_requested)
                code = 75 if self.stop_requested == "preempted" else 130
                raise RunStopped(f"{self.stop_requested} after step {step}: continue with resume={self.run_dir}", code)
            final = self.run_dir / "checkpoints" / "final"
            try:
                if step not in self.evaluations:
                    self.evaluate(step)
                self.save_state(step)  # resume=RUN_DIR steps=... goes on from the end
                self.roles.learner.save(str(final))
            except StorageError as error:  # a full disk at the end: the metrics and the summary are kept
                self._stop("error")
                error.args = (f"{error}; the run's {step} steps and metrics are in {self.run_dir}",)
                raise
            return self._summarise(step, final)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
            self.roles.close()

    def _catch_signals(self) -> dict[int, Any]:
        """SIGTERM and SIGINT request a stop at the next step boundary; a second one stops at once."""

        def request_stop(number: int, frame: Any) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = "preempted" if number == signal.SIGTERM else "interrupted"
            self.tracker.message(f"{self.stop_requested}: saving a full-state checkpoint after this step")

        try:
            return {number: signal.signal(number, request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
        except ValueError:  # not the main thread: signals stay as they are
            return {}

    def _train_keeping_what_was_collected(self) -> int:
        try:
            return self.train()
        except KeyboardInterrupt:
            self.tracker.message("interrupted: saving the policy and the metrics collected so far")
            self._stop("interrupted")
            raise
        except Exception as raised:
            # a worker's error comes wrapped by Ray (with its remote traceback): report the error itself
            cause = getattr(raised, "cause", None)
            failure = cause if isinstance(cause, OatlikeError) else raised
            step = self.last_step + 1
            if isinstance(failure, NonFiniteLossError):
                reason, keep_policy = "non-finite", failure.weights_intact
                if self.batch is not None:
                    with open(self.run_dir / "failed_batch.jsonl", "w") as handle:
                        handle.writelines(json.dumps(record) + "\n" for record in self.batch.records())
            else:
                reason = "oracle failed" if isinstance(failure, OracleError) else "error"
                keep_policy = True
                if not isinstance(failure, OatlikeError):  # a bug: its traceback goes to oatlike.log
                    reason = f"crashed ({type(failure).__name__})"
                    with open(self.run_dir / "oatlike.log", "a") as handle:
                        handle.write(f"the run crashed at step {step}:\n")
                        traceback.print_exception(failure, file=handle)
                self._save_state_before_failed_collection()
            self.tracker.message(f"stopping at step {step} ({reason}): saving what was collected")
            self._stop(reason, keep_policy)
            latest = checkpoint.latest(self.run_dir)
            kept = "its metrics and policy (checkpoints/last)" if keep_policy else "its metrics"
            then = ""
            if latest is not None and reason != "non-finite":  # (resuming would diverge again)
                then = f"; continue from its full-state checkpoint {latest.name} with resume={self.run_dir}"
            where = f"the run stopped at step {step}, {kept} are in {self.run_dir}{then}"
            if not isinstance(failure, OatlikeError):
                raise RunCrashed(
                    f"unexpected {type(failure).__name__}: {first_line(failure)} (the traceback is in "
                    f"{self.run_dir / 'oatlike.log'}); {where}"
                ) from failure
            failure.args = (f"{failure}; {where}",)
            raise failure from None

    def _save_state_before_failed_collection(self) -> bool:
        """After a collection failed (the learner untouched since the last step), the state as of that step,
        the prompts of the failed collections put back; the actors' random streams have moved on."""
        if not self.collection_failed:
            return False
        if self.draws:
            self.prompts.load_state_dict(self.draws[0])
            self.draws.clear()
        try:
            self.save_state(self.last_step)
        except Exception as error:  # a dead worker cannot give its state: the metrics are kept anyway
            log.error("could not save a full-state checkpoint: %s", error)
            return False
        return True

    def _stop(self, reason: str, keep_policy: bool = True) -> None:
        """Keep what was collected: the policy as it is (unless its weights are not finite), the metrics so
        far and a summary with the reason."""
        self.stop_reason = reason
        try:
            if keep_policy:
                self.roles.learner.save(str(self.run_dir / "checkpoints" / "last"))
        except Exception as error:  # the policy may be unreachable (a dead learner): keep the metrics anyway
            log.error("could not save the policy: %s", error)
        summary = self._books(self.last_step, self.run_dir / "checkpoints" / "last")
        self.tracker.finish({**summary, **sample_efficiency(self.evaluations, self.config.eval.target_utility)})

    def _books(self, step: int, policy: Path) -> dict[str, Any]:
        """What every summary starts with: why and when the run stopped, its counts, where its policy is."""
        latest = checkpoint.latest(self.run_dir)
        return {
            "stop_reason": self.stop_reason,
            "steps": step,
            "oracle_queries": self.queries,
            "pairs_trained": self.pairs_trained,
            "seconds": round(self.tracker.elapsed(), 1),
            "checkpoint": str(policy),
            "full_state_checkpoint": None if latest is None else str(latest),
            "run_dir": str(self.run_dir),
        }

    def _summarise(self, step: int, final: Path) -> dict[str, Any]:
        first, last = self.evaluations[min(self.evaluations)], self.evaluations[step]
        summary = {
            **self._books(step, final),
            "steps_per_second": round(step / max(self.tracker.elapsed(), 1e-9), 3),
            "sync_seconds": round(self.sync_seconds, 3),
            **regrets(self.cumulative_regret, last),
            "eval_oracle": describe_eval_oracle(self.config.eval, self.config.oracle, self.config.task.name != "none"),
            **sample_efficiency(self.evaluations, self.config.eval.target_utility),
            **self.roles.summary(),
            **{f"initial/{k}": v for k, v in first.items() if k.startswith("eval/")},
            **{f"final/{k}": v for k, v in last.items() if k.startswith("eval/")},
        }
        totals = {k: summary[k] for k in ("stop_reason", "steps", "oracle_queries", "pairs_trained", "seconds")}
        if "cumulative_regret" in summary:
            totals["cumulative regret"] = round(summary["cumulative_regret"], 3)
        totals["run folder"] = str(self.run_dir)
        self.tracker.finish(summary, summary_table(first, last, totals))
        return summary

    # ------------------------------------------------------------------------------------------------ state

    def state_dict(self, pending: Ready | None = None) -> dict[str, Any]:
        """The books (step, counters, evaluations, prompt stream, a drained collection) and every role's state,
        between two steps.

        The actors' weights are not in it, only their versions: a restored run gives the actors the learner's
        policy (and π_ref) again, which is exact when they held the learner's current weights (a step that
        synced: every step at ``sync_every=1``) or the initial ones.
        """
        actors = self.roles.actors
        return {
            "last_step": self.last_step,
            "actor_versions": {"policy": actors.policy_version, "reference": actors.reference_version},
            "queries": self.queries,
            "pairs_trained": self.pairs_trained,
            "sync_seconds": self.sync_seconds,
            "cumulative_regret": self.cumulative_regret,
            "evaluations": {str(step): metrics for step, metrics in self.evaluations.items()},
            "prompts": self.prompts.state_dict(),
            "draws": list(self.draws),
            "pending": None if pending is None else {"batch": dataclasses.asdict(pending.batch), "metrics": pending[1]},
            "actors": actors.state_dict(),
            "learner": self.roles.learner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step, self.queries, self.pairs_trained = state["last_step"], state["queries"], state["pairs_trained"]
        self.sync_seconds, self.cumulative_regret = state["sync_seconds"], state.get("cumulative_regret")
        self.evaluations = {int(step): metrics for step, metrics in state["evaluations"].items()}
        self.prompts.load_state_dict(state["prompts"])
        self.draws = deque(state["draws"])
        pending = state["pending"]
        self.pending = None if pending is None else Ready(PreferenceBatch(**pending["batch"]), pending["metrics"])
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
