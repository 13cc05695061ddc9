"""``oatlike compare RUN_DIR...``: which configuration is more sample-efficient, with seed-level intervals.

Each run folder gives its resolved ``config.yaml`` and its ``metrics.jsonl``; runs are grouped by their config
differences, the first run's group is the baseline (:mod:`oatlike.eval.runs`: which keys count, how groups are
named).

Per run the metric's curve against ``--x`` (the records that hold both, in step order) gives three numbers
(:mod:`oatlike.eval.curves`): the final value (last record), the area under the curve over the x range that
**every** run covers divided by that range (a mean of the metric over the same budget for all; the trapezoid
rule between the evaluations), and the x at which the curve first reaches ``--target`` (linearly
interpolated; "never" if it does not). Per group: the mean over seeds with a 95% interval from a percentile
bootstrap over seeds (``scipy.stats.bootstrap``, 9999 resamples, a fixed seed so the table is reproducible;
percentile rather than BCa because it stays defined for a handful of seeds and for seeds that agree exactly).
Against the baseline, each group's difference is **paired by seed**: the runs sharing a seed are paired, the
bootstrap resamples the seeds' differences, so what the seeds have in common (prompt order, labels) cancels.
Runs of one group that share a seed are averaged into that seed's value.

The plot (``compare.png``) draws each group's runs (thin), the mean curve over seeds on a common x grid (each
run interpolated onto it) and its 95% bootstrap band.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oatlike.errors import CompareError, OatlikeError
from oatlike.eval.curves import mean_over_range, x_to_reach
from oatlike.eval.runs import Group, Run, group_runs, read_runs

CONFIDENCE = 0.95
RESAMPLES = 9999
BOOTSTRAP_SEED = 0
GRID_POINTS = 200
"""Points of the common x grid that the plot's mean curve and band are drawn on."""


# ------------------------------------------------------------------------------------------ statistics


def bootstrap_mean(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile-bootstrap interval of the mean of ``values`` along ``axis`` (the seeds)."""
    from scipy.stats import bootstrap

    with warnings.catch_warnings():  # a handful of seeds: scipy warns that few distinct resamples exist
        warnings.simplefilter("ignore")
        result = bootstrap(
            (values,),
            np.mean,
            axis=axis,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


@dataclass
class Estimate:
    """A mean over seeds with its interval, or why there is none (``note``)."""

    mean: float | None
    low: float | None = None
    high: float | None = None
    count: int = 0
    note: str = ""

    def text(self, digits: int, signed: bool = False) -> str:
        if self.mean is None:
            return f"n/a ({self.note})"
        number = f"{{:{'+' if signed else ''}.{digits}f}}"
        shown = number.format(self.mean)
        if self.low is None or self.high is None:
            return f"{shown} [n/a: {self.note}]"
        return f"{shown} [{number.format(self.low)}, {number.format(self.high)}]"


def estimate(values: Sequence[float | None], missing: str = "n/a") -> Estimate:
    """The mean of ``values`` (one per seed) with its bootstrap interval; none with fewer than 2 seeds, and
    no mean where a seed has no value (``missing`` says why, e.g. never reached)."""
    count = len(values)
    absent = sum(v is None for v in values)
    if absent:
        return Estimate(None, count=count, note=f"{missing} in {absent} of {count} seeds")
    sample = np.array(values, dtype=float)
    if count < 2:
        return Estimate(float(sample.mean()), count=count, note=f"{count} seed")
    low, high = bootstrap_mean(sample)
    return Estimate(float(sample.mean()), float(low), float(high), count)


def paired_difference(
    group: Group, baseline: Group, statistic: Callable[[Run], float | None], missing: str = "n/a"
) -> Estimate:
    """The mean over shared seeds of ``statistic`` (group − baseline), seed by seed, with its interval."""
    mine, theirs = group.per_seed(statistic), baseline.per_seed(statistic)
    shared = [seed for seed in mine if seed in theirs]
    if not shared:
        return Estimate(None, note="no seed in common with the baseline")
    differences = [
        None if mine[s] is None or theirs[s] is None else mine[s] - theirs[s]  # type: ignore[operator]
        for s in shared
    ]
    return estimate(differences, missing)


@dataclass
class Statistic:
    """One column of the table: a number per run, its label and how it is shown."""

    label: str
    of_run: Callable[[Run], float | None]
    digits: int
    missing: str = "n/a"


def statistics(runs: Sequence[Run], metric: str, x: str, target: float | None) -> tuple[list[Statistic], str]:
    """The table's columns for these runs, and a line saying over which x range the AUC is taken."""
    low = max(float(run.xs[0]) for run in runs)
    high = min(float(run.xs[-1]) for run in runs)
    columns = [
        Statistic(f"final {metric}", lambda run: float(run.ys[-1]), 4),
        Statistic("AUC", lambda run: mean_over_range(run.xs, run.ys, low, high), 4, "empty x range"),
    ]
    if target is not None:
        columns.append(Statistic(f"{x} to {target:g}", lambda run: x_to_reach(run.xs, run.ys, target), 0, "never"))
    if high > low:
        span = f"from {low:g} to {high:g} (the range every run covers) ÷ {high - low:g}"
        line = f"AUC: area under {metric} against {x} {span}"
    else:
        line = f"AUC: n/a, the runs share no range of {x} ({low:g} to {high:g})"
    return columns, line


def table(rows: list[list[str]]) -> str:
    """Plain columns, a rule under the header (as the end-of-run summary table)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Comparison:
    """The groups of the runs compared and, per column, each group's estimate and (after the first, the
    baseline) its paired difference to the baseline."""

    metric: str
    x: str
    columns: list[Statistic]
    auc_line: str
    groups: list[Group]
    estimates: list[list[Estimate]]
    """``estimates[g][c]``: group ``g``'s mean over seeds of column ``c``."""
    differences: list[list[Estimate]]
    """``differences[g - 1][c]``: group ``g`` − the baseline (group 0), paired by seed, for ``g >= 1``."""

    def text(self) -> str:
        """The table of groups, then (for two groups or more) the paired differences to the first."""
        lines = [
            f"{self.metric} against {self.x}; mean over seeds [95% interval: bootstrap over seeds, percentile, "
            f"{RESAMPLES} resamples]",
            self.auc_line,
            "",
        ]
        rows = [["group", "seeds", *(c.label for c in self.columns)]]
        for group, estimates in zip(self.groups, self.estimates, strict=True):
            cells = [e.text(c.digits) for e, c in zip(estimates, self.columns, strict=True)]
            rows.append([group.name, str(len(group.seeds)), *cells])
        lines.append(table(rows))
        if len(self.groups) > 1:
            baseline = self.groups[0]
            lines += ["", f"difference to the baseline {baseline.name}, paired by seed (group − baseline):", ""]
            rows = [["group", "pairs", *(f"Δ {c.label}" for c in self.columns)]]
            for group, differences in zip(self.groups[1:], self.differences, strict=True):
                cells = [d.text(c.digits, signed=True) for d, c in zip(differences, self.columns, strict=True)]
                rows.append([group.name, str(len(set(group.seeds) & set(baseline.seeds))), *cells])
            lines.append(table(rows))
        return "\n".join(lines)


def mean_curves(group: Group) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(grid, mean, low, high)``: the group's per-seed curves interpolated onto a common grid over the x
    range all its runs cover, their mean and its 95% bootstrap band (``None`` with a single seed)."""
    low = max(float(run.xs[0]) for run in group.runs)
    high = min(float(run.xs[-1]) for run in group.runs)
    grid = np.linspace(low, high, GRID_POINTS) if high > low else np.array([low])
    by_seed = np.array(
        [np.mean([np.interp(grid, r.xs, r.ys) for r in group.runs if r.seed == seed], axis=0) for seed in group.seeds]
    )
    if len(by_seed) < 2:
        return grid, by_seed.mean(axis=0), None, None
    band_low, band_high = bootstrap_mean(by_seed, axis=0)
    return grid, by_seed.mean(axis=0), band_low, band_high


# ----------------------------------------------------------------------------------------- command line

EXAMPLES = """\
examples:
  oatlike compare runs/multirun/2025-01-01/12-00-00/*            a sweep: its runs grouped by their overrides
  oatlike compare runs/dpo-* runs/sea-* --target 0.9 --out plots   queries to reach utility 0.9, plots in plots/
  oatlike compare runs/* --metric eval/win_rate --x step           win rate against steps
"""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oatlike compare",
        description=(
            "Compare finished runs: group them by their config differences (seeds form a group), print the "
            "final metric, its AUC against x and the x to reach a target per group with 95%% seed-bootstrap "
            "intervals, and each group's difference to the first (paired by seed); plot the curves."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (config.yaml, metrics)")
    parser.add_argument("--metric", default="eval/utility", help="the metric to compare (default: eval/utility)")
    parser.add_argument("--x", default="oracle/queries", help="the budget axis (default: oracle/queries)")
    parser.add_argument("--target", type=float, default=None, help="the metric value to reach (default: none)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder of compare.png (default: .)")
    return parser


def compare(
    folders: Sequence[Path], metric: str = "eval/utility", x: str = "oracle/queries", target: float | None = None
) -> Comparison:
    """The runs in ``folders`` grouped, with every group's estimates and paired differences to the first."""
    runs = read_runs(folders, metric, x)
    groups = group_runs(runs)
    columns, auc_line = statistics(runs, metric, x, target)
    estimates = [[estimate(list(g.per_seed(c.of_run).values()), c.missing) for c in columns] for g in groups]
    differences = [[paired_difference(g, groups[0], c.of_run, c.missing) for c in columns] for g in groups[1:]]
    return Comparison(metric, x, columns, auc_line, groups, estimates, differences)


def compare_main(args: list[str]) -> None:
    """``oatlike compare RUN_DIR... [--metric M] [--x X] [--target T] [--out DIR]``: the table on stdout and
    ``compare.png`` in ``--out``; bad input is one line (exit status 2)."""
    options = parser().parse_args(args)
    try:
        if options.target is not None and not math.isfinite(options.target):
            raise CompareError(f"--target must be a finite number, got {options.target}")
        comparison = compare(options.runs, options.metric, options.x, options.target)
        print(comparison.text(), flush=True)
        from oatlike.plots import plot_comparison

        path = options.out / "compare.png"
        options.out.mkdir(parents=True, exist_ok=True)
        plot_comparison(
            [
                (f"{g.name} ({len(g.seeds)} seeds)", [(r.xs, r.ys) for r in g.runs], mean_curves(g))
                for g in comparison.groups
            ],
            options.metric,
            options.x,
            options.target,
            path,
        )
        print(f"\nplot: {path}")
    except OatlikeError as error:
        print(f"oatlike compare: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as error:
        print(f"oatlike compare: error: cannot write {options.out / 'compare.png'}: {error.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
