"""Config of the evaluation (``eval.*``)."""

from __future__ import annotations

from dataclasses import dataclass

from oatlike.oracles.config import OracleConfig
from oatlike.schema import check_at_least


@dataclass
class EvalConfig:
    """Evaluation of the policy's greedy answers on held-out prompts."""

    every: int = 20
    """Evaluate every N steps (and always at step 0 and at the end); 0: only at start and end."""
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
