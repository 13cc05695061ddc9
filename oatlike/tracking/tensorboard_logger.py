"""TensorBoard: the only module that imports ``torch.utils.tensorboard`` (and through it ``tensorboard``).

``tracking.tensorboard=true`` writes every record of ``metrics.jsonl`` as scalars under the same names
(``train/loss``, ``eval/utility``, ...) into ``<run>/tensorboard/``, twice, because a TensorBoard scalar has
one x-axis: the run ``tensorboard/steps`` puts them at the training step, the run ``tensorboard/queries`` at
the oracle queries so far (the sample-efficiency axis, W&B's x-axis). ``tensorboard --logdir <run>/tensorboard``
shows both; pick one in the run selector. An evaluation's generations go in as a text table
(``eval/generations``) and the summary as text (``summary``).

A resumed run purges what the interrupted run wrote after its checkpoint (TensorBoard's ``purge_step``):
the charts show each step once, as ``metrics.jsonl`` does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from oatlike.errors import ConfigError

AXES = ("steps", "queries")
"""The runs of ``<run>/tensorboard/``, one per x-axis."""
QUERY_AXIS = "oracle/queries"
INSTALL = "pip install 'oatlike[tensorboard]'"
FLUSH_SECONDS = 10
"""A running TensorBoard sees new points at most this late (the writers buffer; closing flushes)."""


class TensorBoardLogger:
    """Scalars, tables and the summary of one run in ``<run_dir>/tensorboard/{steps,queries}``; ``resume``
    (the step and oracle queries of the checkpoint a resumed run starts from) purges what came later."""

    def __init__(self, run_dir: Path, resume: tuple[int, int] | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tracking.tensorboard",
                f"true needs the tensorboard package, which is not installed: {INSTALL} "
                "(or set tracking.tensorboard=false)",
            ) from None
        purge = (None, None) if resume is None else (resume[0] + 1, resume[1] + 1)
        self.writers = {
            axis: SummaryWriter(str(run_dir / "tensorboard" / axis), purge_step=purge_step, flush_secs=FLUSH_SECONDS)
            for axis, purge_step in zip(AXES, purge, strict=True)
        }

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Every finite number of ``metrics`` (a record, which carries ``oracle/queries``) at ``step`` and at
        its oracle queries; strings, lists and missing values are not scalars and are left out."""
        positions = {"steps": step, "queries": int(metrics.get(QUERY_AXIS, 0))}
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            for axis, writer in self.writers.items():
                writer.add_scalar(name, value, global_step=positions[axis])

    def table(self, key: str, rows: list[dict[str, Any]], step: int, queries: int) -> None:
        """``rows`` (dicts with the same keys) as a Markdown table under ``key``, on both axes."""
        if not rows:
            return
        columns = list(rows[0])
        lines = [
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows),
        ]
        for axis, writer in self.writers.items():
            writer.add_text(key, "\n".join(lines), global_step=step if axis == "steps" else queries)

    def summary(self, values: dict[str, Any]) -> None:
        """The run's summary as a two-column text table (``summary``)."""
        text = "\n".join(["| key | value |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in values.items())])
        for writer in self.writers.values():
            writer.add_text("summary", text)
        self.flush()

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _cell(value: Any) -> str:
    """One cell of a Markdown table: no line breaks, no column separators."""
    return str(value).replace("|", "\\|").replace("\n", " ")
