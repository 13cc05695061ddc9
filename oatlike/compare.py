"""``oatlike compare RUN_DIR...``: which configuration is more sample-efficient, with seed-level intervals.

Each run folder gives its resolved ``config.yaml`` and its ``metrics.jsonl``. Runs are grouped by their
config differences: the keys whose values differ across the runs given, leaving out the seed and the keys
that cannot change what a run computes (:data:`BOOKKEEPING`); runs that differ only in their seed form one
group. A group is named by its differing ``key=value``\\ s, where the algorithm preset differs across groups
(``algo=sea``) without the keys that its preset sets anyway (``algo=sea actor.num_samples=16`` names only
what was changed on top of the preset). The first run's group is the baseline.

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
import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.errors import CompareError, OatlikeError
from oatlike.eval.curves import curve, mean_over_range, x_to_reach

BOOKKEEPING = (
    "seed",
    "run_dir",
    "resume",
    "cache_dir",
    "tracking.",
    "serve.",
    "ray.",
    "eval.every",
    "eval.every_queries",
    "eval.target_utility",
    "eval.save_generations",
    "learner.checkpoint_every",
    "learner.keep_checkpoints",
    "actors.num_cpus",
    "actors.num_gpus",
    "actors.resources",
    "actors.max_restarts",
    "learner.num_cpus",
    "learner.num_gpus",
    "learner.resources",
    "weight_sync.timeout_seconds",
)
"""Keys that never make two runs different experiments (a trailing dot: every key below it): the seed (the
unit of replication), where the run and its workers ran, what was logged, and when it was evaluated (the
evaluation grid samples the curve; it does not change it)."""

CONFIDENCE = 0.95
RESAMPLES = 9999
BOOTSTRAP_SEED = 0
GRID_POINTS = 200
"""Points of the common x grid that the plot's mean curve and band are drawn on."""


@dataclass
class Run:
    """One run folder: its flat config (``key -> value`` as JSON text), seed and metric curve."""

    folder: Path
    config: dict[str, str]
    seed: int
    xs: np.ndarray
    ys: np.ndarray


@dataclass
class Group:
    """Runs equal in every config key but the bookkeeping ones, named by the keys that set it apart."""

    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted({run.seed for run in self.runs})

    def per_seed(self, statistic: Callable[[Run], float | None]) -> dict[int, float | None]:
        """``statistic`` of each seed (the mean over this group's runs of that seed; ``None`` if one is)."""
        values: dict[int, float | None] = {}
        for seed in self.seeds:
            of_seed = [statistic(run) for run in self.runs if run.seed == seed]
            values[seed] = None if any(v is None for v in of_seed) else float(np.mean(of_seed))  # type: ignore[arg-type]
        return values


# ------------------------------------------------------------------------------------------ reading runs


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """``{"a.b": "1", ...}``: every leaf of a nested config, its value as JSON text (lists whole)."""
    if isinstance(node, dict) and node:
        flat: dict[str, str] = {}
        for key, child in node.items():
            flat.update(flatten(child, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(node, sort_keys=True)}


def is_bookkeeping(key: str) -> bool:
    return any(key == b or (b.endswith(".") and key.startswith(b)) for b in BOOKKEEPING)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; a last line cut short (a run killed while writing) is left out."""
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise CompareError(f"{path}:{number} is not a JSON record; is this an oatlike metrics file?") from None
    return records


def read_run(folder: Path, metric: str, x: str) -> tuple[Run, set[str]]:
    """The run in ``folder`` and the numeric keys its records hold (to name what a missing metric could be)."""
    from omegaconf import OmegaConf

    for name in ("config.yaml", "metrics.jsonl"):
        if not (folder / name).is_file():
            raise CompareError(f"{folder} is not a run folder (no {name}); give folders that oatlike runs wrote")
    try:
        config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    except Exception as error:
        raise CompareError(f"{folder / 'config.yaml'} cannot be read as YAML ({type(error).__name__})") from None
    if not isinstance(config, dict) or not isinstance(config.get("seed"), int):
        raise CompareError(f"{folder / 'config.yaml'} is not an oatlike config (it has no integer seed)")
    records = read_records(folder / "metrics.jsonl")
    keys = {k for r in records for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    xs, ys = curve(records, metric, x)
    return Run(folder, flatten(config), int(config["seed"]), xs, ys), keys


def run_folders(paths: Sequence[Path]) -> list[Path]:
    """The run folders that ``paths`` name, each once: a sweep's folder (no ``config.yaml`` of its own, run
    folders inside) stands for its runs, and Hydra's ``multirun.yaml`` beside them (``sweep/*``) is passed over."""
    folders: list[Path] = []
    for path in paths:
        if path.name == "multirun.yaml" and path.is_file():
            continue
        inside = sorted(p.parent for p in path.glob("*/config.yaml")) if path.is_dir() else []
        folders += inside if inside and not (path / "config.yaml").exists() else [path]
    return list(dict.fromkeys(f.resolve() for f in folders))


def read_runs(folders: Sequence[Path], metric: str, x: str) -> list[Run]:
    """Every run of ``folders`` (:func:`run_folders`), each with at least one point of ``metric`` against ``x``."""
    runs, keys = [], []
    for folder in run_folders(folders):
        run, held = read_run(folder, metric, x)
        runs.append(run)
        keys.append(held)
    if not any(len(run.ys) for run in runs):
        if not any(metric in held for held in keys):
            known = sorted(set.intersection(*keys) - {"step"})
            hint = ", ".join(k for k in known if k.startswith(("eval/", "regret/", "train/")))
            raise CompareError(f"--metric {metric}: no run records it; they record {hint}")
        raise CompareError(f"--x {x}: no record holds both it and {metric}; try --x oracle/queries or --x step")
    for run in runs:
        if not len(run.ys):
            raise CompareError(f"{run.folder} has no {metric} against {x}; leave it out or choose another --metric")
    return runs


# -------------------------------------------------------------------------------------------- grouping


def preset_config(algo: str) -> dict[str, str] | None:
    """The flat config of the default experiment with preset ``algo=`` (None if this version has no such
    preset): what a run of that algorithm gets without being told."""
    from omegaconf import OmegaConf

    from oatlike.config import compose

    try:
        config = compose(f"algo={algo}")
    except Exception:
        return None
    return flatten(OmegaConf.to_container(OmegaConf.structured(config), resolve=True))


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """The non-bookkeeping keys whose value differs across ``runs`` (a key some runs lack counts), sorted
    with ``algo_name`` first."""
    keys = sorted({k for run in runs for k in run.config if not is_bookkeeping(k)})
    differing = [k for k in keys if len({run.config.get(k) for run in runs}) > 1]
    return sorted(differing, key=lambda k: (k != "algo_name", k))


def describe(key: str, value: str | None) -> str:
    """``key=value`` as one would type it on the command line."""
    shown = "(unset)" if value is None else (json.loads(value) if value.startswith('"') else value)
    return f"{'algo' if key == 'algo_name' else key}={shown}"


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """The runs grouped by their config differences, in the order of the first run of each group."""
    differing = differing_keys(runs)
    presets: dict[str, dict[str, str] | None] = {}
    groups: dict[tuple[str | None, ...], Group] = {}
    for run in runs:
        values = tuple(run.config.get(k) for k in differing)
        if values not in groups:
            groups[values] = Group(group_name(run, differing, presets))
        groups[values].runs.append(run)
    return list(groups.values())


def group_name(run: Run, differing: list[str], presets: dict[str, dict[str, str] | None]) -> str:
    """``algo=sea actor.num_samples=16``: the run's differing keys; when the algorithm differs, the keys its
    preset sets to the run's value are left out (they come with ``algo=``)."""
    algo = json.loads(run.config.get("algo_name", '"?"'))
    if not differing:
        return f"algo={algo}"
    preset: dict[str, str] | None = None
    if "algo_name" in differing:
        preset = presets[algo] if algo in presets else presets.setdefault(algo, preset_config(algo))
    named = [k for k in differing if k == "algo_name" or preset is None or preset.get(k) != run.config.get(k)]
    return " ".join(describe(k, run.config.get(k)) for k in named)


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
