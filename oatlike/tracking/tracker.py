"""Run tracking: ``metrics.jsonl``, the dashboards (W&B, TensorBoard: each a :class:`RunLogger`), the
console (a bar or progress lines: :mod:`.console`), the final summary table and ``curves.png``.

Every record carries ``step`` and ``oracle/queries`` (the sample-efficiency x-axis) besides its metrics,
grouped by prefix: ``train/``, ``eval/``, ``actor/``, ``oracle/``, ``misc/``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Protocol, TextIO

from oatlike.tracking.config import TrackingConfig
from oatlike.tracking.console import Console
from oatlike.tracking.wandb_logger import WandbLogger

log = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger(Protocol):
    """A dashboard the tracker writes to (:class:`~oatlike.tracking.wandb_logger.WandbLogger`,
    :class:`~oatlike.tracking.tensorboard_logger.TensorBoardLogger`): every record, each evaluation's
    generations, the summary."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """One record (with ``oracle/queries``, without ``step``) at ``step``."""

    def table(self, key: str, rows: list[dict[str, Any]], step: int, queries: int) -> None:
        """Rows with the same keys (an evaluation's generations) under ``key``."""

    def summary(self, values: dict[str, Any]) -> None:
        """The run's summary."""

    def close(self) -> None:
        """Write out what is buffered and end."""


class Tracker:
    """Writes every record to ``metrics.jsonl`` and the dashboards (W&B; TensorBoard with
    ``tracking.tensorboard``), and keeps the console current (:class:`Console` on ``stream``, stderr by
    default: its start line is printed here).

    ``resume`` (a :meth:`state_dict` of an earlier tracker of this run folder) continues that run: the records
    and evaluation files after its step are dropped (TensorBoard's too), the clock and the W&B run go on.
    """

    def __init__(
        self,
        run_dir: Path,
        config: TrackingConfig,
        run_config: dict[str, Any],
        total_steps: int,
        resume: dict[str, Any] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.resumed_step = 0 if resume is None else int(resume["step"])
        if resume is not None:
            drop_records_after(run_dir, self.resumed_step)
        self.start = time.perf_counter() - (0.0 if resume is None else float(resume["elapsed_seconds"]))
        # W&B first: when it refuses to start (tracking.wandb.fallback=error) no metrics.jsonl marks the folder as a run
        self.wandb = WandbLogger(config.wandb, run_dir, run_config, None if resume is None else resume["wandb_id"])
        self.loggers: list[RunLogger] = [self.wandb]
        if config.tensorboard:
            from oatlike.tracking.tensorboard_logger import TensorBoardLogger

            # where the checkpoint was (queries: 0 in a checkpoint written before they were kept)
            at = None if resume is None else (self.resumed_step, int(resume.get("queries", 0)))
            self.loggers.append(TensorBoardLogger(run_dir, at))
        self.metrics_file: TextIO = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        self.total_steps = total_steps
        self.console = Console(config, total_steps, self.resumed_step, stream)
        self.console.start(run_dir)
        self.queries = 0

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` for ``step`` (adds ``oracle/queries`` and elapsed seconds)."""
        self.queries = int(metrics.get("oracle/queries", self.queries))
        record = {
            "step": step,
            "oracle/queries": self.queries,
            "misc/elapsed_seconds": self.elapsed(),
            **metrics,
        }
        self.metrics_file.write(json.dumps({k: _json_safe(v) for k, v in record.items()}) + "\n")
        self.metrics_file.flush()
        for logger in self.loggers:
            logger.log({k: v for k, v in record.items() if k != "step"}, step=step)
        self.console.record(record)

    def generations(self, step: int, records: list[dict[str, Any]]) -> None:
        """An evaluation's generations (prompt, answer, reference, utility, ...), as a table on the dashboards."""
        for logger in self.loggers:
            logger.table("eval/generations", records, step, self.queries)

    def advance(self) -> None:
        """One step done: the bar moves, or a progress line is printed when one is due."""
        self.console.advance(self.elapsed())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def state_dict(self, step: int) -> dict[str, Any]:
        """What a resumed tracker needs: the step and oracle queries, the clock, the W&B run."""
        return {"step": step, "queries": self.queries, "elapsed_seconds": self.elapsed(), "wandb_id": self.wandb.run_id}

    def message(self, text: str) -> None:
        """Print ``text`` on the console without breaking the progress bar (and log it)."""
        self.console.print(text)

    def finish(self, summary: dict[str, Any], table: str | None = None) -> None:
        """Write ``summary.json``, give the summary to the dashboards, close everything, plot ``curves.png``,
        print the end line, then ``table`` if any."""
        (self.run_dir / "summary.json").write_text(json.dumps({k: _json_safe(v) for k, v in summary.items()}, indent=2))
        for logger in self.loggers:
            logger.summary(summary)
        self.console.end(summary, self.elapsed())
        self.close()
        self.plot_curves()
        if table:
            print("\n" + table, flush=True)

    def plot_curves(self) -> None:
        """``curves.png`` from the complete ``metrics.jsonl`` (:func:`oatlike.plots.plot_run_curves`). A plot
        that fails (a broken matplotlib, a full disk) is one warning: the run and its files are already kept."""
        try:
            from oatlike.plots import plot_run_curves

            records = [json.loads(line) for line in (self.run_dir / "metrics.jsonl").read_text().splitlines() if line]
            plot_run_curves(records, self.run_dir / "curves.png", title=self.run_dir.name)
        except Exception as error:
            path, kind = self.run_dir / "curves.png", type(error).__name__
            log.warning("could not plot %s (%s: %s); the run is kept", path, kind, error)

    def close(self) -> None:
        self.console.close()
        if not self.metrics_file.closed:
            self.metrics_file.close()
        for logger in self.loggers:
            logger.close()


def drop_records_after(run_dir: Path, step: int) -> None:
    """Keep the records of ``metrics.jsonl`` and the evaluation files up to ``step``; drop the later ones."""
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        kept = [line for line in metrics.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        metrics.write_text("".join(line + "\n" for line in kept))
    for generations in (run_dir / "eval").glob("step_*.jsonl"):
        if int(generations.stem.removeprefix("step_")) > step:
            generations.unlink()


def summary_table(first: dict[str, Any], last: dict[str, Any], totals: dict[str, Any]) -> str:
    """A plain-text table of the evaluation at step 0 against the final one, then run totals."""
    rows = [("metric", "step 0", "final", "change")]
    for key in (
        "eval/win_rate",
        "eval/utility",
        "eval/regret",
        "eval/perfect_fraction",
        "eval/response_length",
    ):
        if key in first and key in last:
            rows.append((key, f"{first[key]:.4f}", f"{last[key]:.4f}", f"{last[key] - first[key]:+.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.extend(f"{key}: {value}" for key, value in totals.items())
    return "\n".join(lines)
