"""The console's view of a run: a progress bar on a terminal, plain lines in a batch job's log.

On a terminal (the stream is a TTY) a tqdm bar shows the step and the figures that matter, ordered so that a
narrow terminal keeps them: ``step/total util=… loss=… acc=…`` first, then the bar and the times; below
:data:`WIDE_COLUMNS` the rest (description, rate, win rate, queries) is left out. Anywhere else (output
redirected to a file, a scheduler's log) carriage-return redraws would pile up on one line, so the run
prints one parseable line instead, every ``tracking.log_every_steps`` steps or ``tracking.log_every_seconds``
seconds, whichever comes first::

    oatlike: step=20/200 queries=336 loss=0.6812 accuracy=0.5625 utility=0.8346 win_rate=0.4895 elapsed=0:00:03 \
        eta=0:00:32

(one line; broken here to fit).

A start line and an end line are printed either way (with ``tracking.progress=false``, only they are). Every
line also goes to the run's log (``oatlike.log``), the periodic ones on a terminal too.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

from oatlike.tracking.config import TrackingConfig
from oatlike.tracking.logs import FILE_ONLY

log = logging.getLogger(__name__)

LINE_FIGURES = {
    "oracle/queries": "queries",
    "train/loss": "loss",
    "train/reward_accuracy": "accuracy",
    "eval/utility": "utility",
    "eval/win_rate": "win_rate",
}
"""The figures of a progress line (metric → name), in order; the evaluation's are the latest one's."""

BAR_FIGURES = {"eval/utility": "util", "train/loss": "loss", "train/reward_accuracy": "acc"}
"""The figures the bar always shows, the most important first."""
WIDE_FIGURES = {"eval/win_rate": "win", "oracle/queries": "queries"}
"""The figures the bar shows too when the terminal is at least :data:`WIDE_COLUMNS` wide."""
WIDE_COLUMNS = 120
NARROW_BAR = "{n_fmt}/{total_fmt} {desc} |{bar}| {elapsed}<{remaining}"
WIDE_BAR = "online alignment {n_fmt}/{total_fmt} {desc} |{bar}| {elapsed}<{remaining}, {rate_fmt}"


def clock(seconds: float) -> str:
    """``H:MM:SS`` (whole seconds)."""
    return str(timedelta(seconds=round(max(seconds, 0.0))))


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (80 when it cannot be asked)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80


class Console:
    """Start line, progress (bar or lines), messages and end line of one run, on ``stream`` (stderr).

    ``resumed_step`` is where a resumed run starts: the ETA counts from the steps this process took.
    """

    def __init__(
        self,
        config: TrackingConfig,
        total_steps: int,
        resumed_step: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.config, self.total_steps, self.first_step = config, total_steps, resumed_step
        self.on_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.step = resumed_step
        self.latest: dict[str, float | int] = {}
        self.started = time.perf_counter()
        self.line_step, self.line_time = resumed_step, self.started
        self._bar: Any = None
        self.columns = terminal_columns(self.stream) if self.on_terminal else 80
        self.wide = self.columns >= WIDE_COLUMNS

    # ---------------------------------------------------------------------------------------------- lines

    def print(self, line: str) -> None:
        """``line`` on the console (above the bar when there is one) and in the run's log."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
        log.info("%s", line, extra=FILE_ONLY)

    def start(self, run_dir: Path) -> None:
        """The start line: where the run is and how far it goes."""
        from oatlike import __version__

        self.print(
            f"oatlike: start version={__version__} step={self.step}/{self.total_steps} "
            f"run_dir={shlex.quote(str(run_dir))}"
        )

    def end(self, summary: dict[str, Any], elapsed_seconds: float) -> None:
        """The end line: why the run stopped, its steps, queries and time (after the bar is closed)."""
        self.close()
        self.print(
            f"oatlike: end stop_reason={shlex.quote(str(summary.get('stop_reason')))} "
            f"step={summary.get('steps')}/{self.total_steps} queries={summary.get('oracle_queries')} "
            f"elapsed={clock(elapsed_seconds)}"
        )

    def progress_line(self, elapsed_seconds: float) -> str:
        """``oatlike: step=S/T key=value ... elapsed=H:MM:SS eta=H:MM:SS`` (figures not yet known left out)."""
        figures = [f"step={self.step}/{self.total_steps}"]
        for key, name in LINE_FIGURES.items():
            if key in self.latest:
                value = self.latest[key]
                figures.append(f"{name}={value:.4f}" if isinstance(value, float) else f"{name}={value}")
        taken, left = self.step - self.first_step, self.total_steps - self.step
        seconds_per_step = (time.perf_counter() - self.started) / taken if taken else None
        eta = "?" if seconds_per_step is None else clock(left * seconds_per_step)
        return f"oatlike: {' '.join(figures)} elapsed={clock(elapsed_seconds)} eta={eta}"

    # -------------------------------------------------------------------------------------------- progress

    def record(self, metrics: dict[str, Any]) -> None:
        """Keep the figures of a record (a step's or an evaluation's) for the bar and the next line."""
        for key in LINE_FIGURES:
            value = metrics.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.latest[key] = value
        if self.bar is not None:
            self.bar.set_description_str(self.bar_figures(), refresh=False)

    def bar_figures(self) -> str:
        shown = {**BAR_FIGURES, **(WIDE_FIGURES if self.wide else {})}
        parts = []
        for key, name in shown.items():
            if key in self.latest:
                value = self.latest[key]
                parts.append(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}")
        return " ".join(parts)

    def advance(self, elapsed_seconds: float) -> None:
        """One more step: the bar moves, or a line is printed when it is due."""
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
        now = time.perf_counter()
        every_steps, every_seconds = self.config.log_every_steps, self.config.log_every_seconds
        due = (every_steps and self.step - self.line_step >= every_steps) or (
            every_seconds and now - self.line_time >= every_seconds
        )
        if not due:
            return
        self.line_step, self.line_time = self.step, now
        line = self.progress_line(elapsed_seconds)
        if self.config.progress and not self.on_terminal:
            self.print(line)
        else:  # the bar shows it (or nothing is asked for): the run's log still gets it
            log.info("%s", line, extra=FILE_ONLY)

    @property
    def bar(self) -> Any:
        """The tqdm bar on a terminal with ``tracking.progress`` on, from the first record (start-up errors
        print cleanly); ``None`` elsewhere."""
        if self._bar is None and self.config.progress and self.on_terminal:
            self._bar = tqdm(
                total=self.total_steps,
                initial=self.step,
                unit="step",
                file=self.stream,
                ncols=self.columns,  # (tqdm asks the terminal's width of stdout and stderr only)
                bar_format=WIDE_BAR if self.wide else NARROW_BAR,
            )
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
