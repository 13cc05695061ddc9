"""Config of the evaluation (``eval.*``)."""

from __future__ import annotations

from dataclasses import dataclass

from oatlike.oracles.config import OracleConfig
from oatlike.schema import check, check_at_least


@dataclass
class EvalConfig:
    """Evaluation of the policy's greedy answers on held-out prompts."""

    every: int = 20
    """Evaluate every N steps (and always at step 0 and at the end); 0: only at start and end."""
    every_queries: int | None = None
    """Evaluate on a grid of oracle queries instead: after the first step at which oracle/queries reaches each
    multiple of N (and at step 0 and at the end), so that runs spending queries at different rates are
    evaluated at the same budgets; needs eval.every=0. null or 0: off."""
    target_utility: float | None = None
    """Utility to reach: summary.json gets queries_to_target, the oracle queries at which eval/utility first
    reached it (interpolated between the two evaluations around it; null if never). null: skip."""
    max_new_tokens: int | None = None
    """Most tokens per greedy answer (``null``: actor.max_new_tokens)."""
    save_generations: bool = True
    """Write each evaluation's prompts, answers and scores to ``eval/step_NNNNN.jsonl`` in the run folder."""
    oracle: OracleConfig | None = None
    """Evaluation oracle (``eval.oracle=judge``, then ``eval.oracle.<key>=...``); null: on a built-in task the
    task's noiseless utility (``oracle=rule`` defaults, whatever the training oracle, so win rates compare
    across label noise), else the training oracle with its own query counter (the summary says so)."""

    def __post_init__(self) -> None:
        check_at_least(self, 0, "every")
        if self.every_queries is not None:
            check_at_least(self, 0, "every_queries")
        check(
            not (self.every and self.every_queries),
            "every_queries",
            f"evaluates on a grid of oracle queries, eval.every={self.every} on a grid of steps; the two do not "
            "mix: add eval.every=0 to evaluate on the query grid alone",
        )
        if self.target_utility is not None:
            value = self.target_utility
            check(0.0 <= value <= 1.0, "target_utility", f"must be a utility in [0, 1], got {value}")

    @property
    def query_grid(self) -> int:
        """The query grid's spacing (0: off)."""
        return self.every_queries or 0

    def due(self, step: int, queries_before: int, queries_after: int) -> bool:
        """Whether the step that took ``oracle/queries`` from ``queries_before`` to ``queries_after`` is
        evaluated: on the step grid, a multiple of ``every``; on the query grid, the step crossed (or reached)
        a multiple of ``every_queries``. Both depend on the run's counters only, so a resumed run (whose
        counters are restored) keeps the grid of the run it continues."""
        if self.query_grid:
            return queries_after // self.query_grid > queries_before // self.query_grid
        return bool(self.every) and step % self.every == 0


def default_eval_oracle(config: EvalConfig, training: OracleConfig, has_task: bool) -> OracleConfig | None:
    """The evaluation oracle's config: ``eval.oracle``; when it is null, on a built-in task the rule oracle at
    its defaults (noiseless: win rates that mean the same across training oracles and label noise), else
    ``None``: the training oracle."""
    if config.oracle is not None:
        return config.oracle
    if has_task:
        from oatlike.oracles.config import RuleOracleConfig

        return RuleOracleConfig(batch_size=training.batch_size)
    return None


def describe_eval_oracle(config: EvalConfig, training: OracleConfig, has_task: bool) -> str:
    """What judged the evaluation, for the run's summary."""
    if config.oracle is not None:
        return f"{config.oracle.name} (eval.oracle)"
    if has_task:
        return "rule, noiseless: the task's utility (eval.oracle=null on a built-in task)"
    return (
        f"{training.name}, the training oracle: the policy was trained against it, so its win rate is "
        "optimistic; set eval.oracle to judge with another"
    )
