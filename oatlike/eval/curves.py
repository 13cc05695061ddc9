"""Sample-efficiency instruments of one learning curve: a metric (``eval/utility``) against a budget axis
(``oracle/queries``), as the evaluations of a run sampled it.

Both are read off the piecewise-linear curve through the evaluations, so they agree with the plot:

* :func:`mean_over_range`: the area under the curve (trapezoid rule, ``np.trapezoid``) divided by the x range
  it covers, i.e. the curve's mean value over the budget. Dividing makes it a utility again (in [0, 1] for
  built-in tasks), comparable between runs that spent the same budget; :mod:`oatlike.compare` compares runs
  over the x range that all of them cover.
* :func:`x_to_reach`: the budget at which the curve first reaches a target, linearly interpolated
  (``np.interp``) between the two evaluations that bracket the first crossing; ``None`` when never reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def curve(
    records: Iterable[Mapping[str, Any]], metric: str, x: str = "oracle/queries"
) -> tuple[np.ndarray, np.ndarray]:
    """``(xs, ys)`` of the records that hold a finite ``metric`` and an ``x`` value, in record order (a run's
    records are in step order, so ``xs`` never decreases)."""
    points = [
        (float(r[x]), float(r[metric]))
        for r in records
        if isinstance(r.get(metric), int | float) and isinstance(r.get(x), int | float)
    ]
    xs, ys = (np.array(values, dtype=float) for values in zip(*points, strict=True)) if points else (np.array([]),) * 2
    return xs, ys


def mean_over_range(
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    low: float | None = None,
    high: float | None = None,
) -> float | None:
    """The area under the piecewise-linear curve through ``(xs, ys)`` between ``low`` and ``high`` (default:
    the curve's own x range), divided by ``high - low``: the curve's mean over that range. ``None`` when the
    range is empty (fewer than two distinct x values) or not covered by the curve."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(xs) == 0:
        return None
    low = float(xs[0]) if low is None else low
    high = float(xs[-1]) if high is None else high
    if not high > low or low < xs[0] or high > xs[-1]:
        return None
    inside = (xs > low) & (xs < high)
    grid = np.concatenate([[low], xs[inside], [high]])
    values = np.concatenate([[np.interp(low, xs, ys)], ys[inside], [np.interp(high, xs, ys)]])
    return float(np.trapezoid(values, grid) / (high - low))


def x_to_reach(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, target: float) -> float | None:
    """The x at which the curve first reaches ``target``: the first evaluation's x when it already does,
    otherwise interpolated between the last evaluation below the target and the first at or above it;
    ``None`` when no evaluation reaches it."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    reached = np.flatnonzero(ys >= target)
    if len(reached) == 0:
        return None
    first = int(reached[0])
    if first == 0:
        return float(xs[0])
    below, above = first - 1, first  # ys[below] < target <= ys[above]: np.interp's xp increases
    return float(np.interp(target, [ys[below], ys[above]], [xs[below], xs[above]]))


def regrets(cumulative: float | None, last: dict[str, Any]) -> dict[str, float]:
    """Both regrets at the end of a run (built-in tasks, docs/algorithms.md §7): ``cumulative_regret`` of the
    pairs played, summed over the run, and ``anytime_regret``, the greedy answer's at the last evaluation."""
    found = {} if cumulative is None else {"cumulative_regret": cumulative}
    if "eval/regret" in last:
        found["anytime_regret"] = last["eval/regret"]
    return found


def sample_efficiency(evaluations: dict[int, dict[str, Any]], target: float | None) -> dict[str, float | None]:
    """The utility curve's instruments of a run's ``evaluations`` (by step; built-in tasks): ``utility_auc``,
    the area under eval/utility against oracle/queries (trapezoid rule) divided by the query range, i.e. the
    mean utility over the run's budget (null with a single query count); and with a ``target``
    (``eval.target_utility``), ``queries_to_target``, the queries at which eval/utility first reached it,
    interpolated between the two evaluations around it (null if never)."""
    queries, utilities = curve([evaluations[step] for step in sorted(evaluations)], "eval/utility")
    if len(utilities) == 0:
        return {}
    instruments: dict[str, float | None] = {"utility_auc": mean_over_range(queries, utilities)}
    if target is not None:
        instruments |= {"target_utility": target, "queries_to_target": x_to_reach(queries, utilities, target)}
    return instruments
