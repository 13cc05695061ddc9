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
    """Evaluation oracle (``eval.oracle=judge``, then ``eval.oracle.<key>=...``); null: the training oracle,
    with its own query counter."""

    def __post_init__(self) -> None:
        check_at_least(self, 0, "every")
