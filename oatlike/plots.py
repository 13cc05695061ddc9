"""The PNG plots: every run's ``curves.png`` and ``oatlike compare``'s ``compare.png``.

This module owns matplotlib. It draws on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``: no global figure state, no GUI backend chosen from the environment, safe from any thread,
and nothing to close.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.eval.curves import curve

RUN_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("greedy answer (held-out prompts)", (("eval/utility", "utility"), ("eval/win_rate", "win rate vs reference"))),
    ("anytime regret of the greedy answer", (("eval/regret", "eval/regret"),)),
    ("explore-and-exploit regret of the pairs played", (("regret/cumulative", "regret/cumulative"),)),
)
"""The panels of ``curves.png``: a title and the ``(metric, label)`` lines drawn in it against oracle queries."""


def _figure(panels: int, width: float = 5.0, height: float = 3.8) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


def plot_run_curves(records: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """``curves.png`` of one run: each panel of :data:`RUN_PANELS` whose metrics the ``records`` hold, against
    ``oracle/queries``; panels without data are left out, and nothing is written when none has any (a run of
    one step without evaluations). Returns the file written, if any."""
    present = []
    for panel_title, lines in RUN_PANELS:
        drawn = [(label, *curve(records, metric)) for metric, label in lines]
        drawn = [line for line in drawn if len(line[1])]
        if drawn:
            present.append((panel_title, drawn))
    if not present:
        return None
    figure, axes = _figure(len(present))
    for axis, (panel_title, drawn) in zip(axes, present, strict=True):
        for label, xs, ys in drawn:
            marker = "o" if len(xs) <= 60 else None
            axis.plot(xs, ys, marker=marker, markersize=3, label=label)
        axis.set_title(panel_title, fontsize=10)
        axis.set_xlabel("oracle queries")
        axis.grid(alpha=0.3)
        if len(drawn) > 1:
            axis.legend(fontsize=8)
        else:
            axis.set_ylabel(drawn[0][0])
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)
    return path


GroupCurves = tuple[
    str,
    Sequence[tuple[np.ndarray, np.ndarray]],
    tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None],
]
"""``(name, [(xs, ys) of each run], (grid, mean, band low, band high))`` of one group of runs."""


def plot_comparison(groups: Sequence[GroupCurves], metric: str, x: str, target: float | None, path: Path) -> Path:
    """``compare.png``: per group its runs (thin), the mean over seeds and its 95% band, ``metric`` against
    ``x``; a dashed line at ``target`` when given."""
    figure, (axis,) = _figure(1, width=8.0, height=5.0)
    for index, (name, runs, (grid, mean, low, high)) in enumerate(groups):
        color = f"C{index % 10}"
        for xs, ys in runs:
            axis.plot(xs, ys, color=color, alpha=0.3, linewidth=0.8)
        band = "" if low is None else ": mean, 95% band"
        axis.plot(grid, mean, color=color, linewidth=2, label=f"{name}{band}", marker="o" if len(grid) == 1 else None)
        if low is not None and high is not None:
            axis.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
    if target is not None:
        axis.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}")
    axis.set_xlabel(x)
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(f"{metric} against {x}: each run (thin), mean over seeds and its bootstrap band", fontsize=10)
    figure.savefig(path, dpi=100)
    return path
