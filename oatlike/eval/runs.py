"""Run folders for comparisons: reading each (its resolved ``config.yaml``, its ``metrics.jsonl``) and grouping
them by their config differences (:mod:`oatlike.compare`).

Runs are grouped by the keys whose values differ across the runs given, leaving out the seed and the keys that
cannot change what a run computes (:data:`BOOKKEEPING`); runs that differ only in their seed form one group. A
group is named by its differing ``key=value``\\ s, where the algorithm preset differs across groups
(``algo=sea``) without the keys that its preset sets anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oatlike.errors import CompareError
from oatlike.eval.curves import curve
from oatlike.resume import RESUMABLE

CHANGES_RESULTS = ("steps", "oracle.max_queries", "eval.max_new_tokens")
"""Keys a resumed run may change (:data:`~oatlike.resume.RESUMABLE`) that still make runs different experiments:
how long they ran, their budget, how their answers were evaluated."""
BOOKKEEPING = ("seed", "serve.", *(key for key in RESUMABLE if key not in CHANGES_RESULTS))
"""Keys that never make two runs different experiments (a trailing dot: every key below it): the seed (the
unit of replication), where the run and its workers ran, what was logged, and when it was evaluated (the
evaluation grid samples the curve; it does not change it)."""


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
