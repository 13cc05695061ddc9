"""Sample efficiency of every algorithm: true utility and win rate against oracle queries, over seeds.

Each run is the default experiment (arithmetic task, 1M tiny model warm-started to utility 0.835, 32 pairs
per step) with one algorithm preset and seed, evaluated every ``--eval-every`` steps on the 256 held-out
prompts (greedy answers). Every evaluation record carries the number of training oracle queries spent so
far (the oracle's own counter), which is the x-axis. Results go to ``<out>.jsonl`` (one line per run,
appended as runs finish, so an interrupted sweep resumes), ``<out>.md`` (tables) and ``<out>.png`` (plots).

    python benchmarks/sample_efficiency.py                              # every algorithm, seeds 0-2
    python benchmarks/sample_efficiency.py --variants sea sea_passive --seeds 0 1 2 3 4 --steps 150
    python benchmarks/sample_efficiency.py --report-only                # tables and plot from <out>.jsonl
    python benchmarks/sample_efficiency.py --variants sea sea_passive --compare sea sea_passive \
        --steps 400 --eval-every 400 --out benchmarks/results/baits_vs_passive oracle.max_queries=1600

A table cell is the mean over seeds with the standard deviation across seeds; ``gain (3 SE)`` is the mean
per-prompt utility gain over step 0 with the mean of the seeds' three-standard-error bars (the learning
tests' margin); ``queries to U`` is the first evaluation at which the utility reached ``--target``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np
import torch

from oatlike.config import compose
from oatlike.experiment import run

VARIANTS = {
    "dpo": ["algo=dpo"],
    "noop": ["algo=dpo", "learner.lr=0"],
    "selm": ["algo=selm"],
    "xpo": ["algo=xpo"],
    "copo": ["algo=copo"],
    "sea": ["algo=sea"],
    "sea_eets": ["algo=sea", "explore.selection=eets"],
    "sea_passive": ["algo=sea", "explore.selection=passive"],
    "sea_dyna": ["algo=sea", "explore.model_rollout=true"],
    "apl": ["algo=apl"],
    "bpo": ["algo=bpo"],
}
DEFAULT_VARIANTS = ["dpo", "selm", "xpo", "copo", "sea", "sea_passive", "apl", "bpo"]


def eval_curve(run_dir: Path) -> list[dict[str, Any]]:
    """``[{step, queries, utility, win_rate}]`` of every evaluation of a run."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {
            "step": r["step"],
            "queries": r["oracle/queries"],
            "utility": r["eval/utility"],
            "win_rate": r["eval/win_rate"],
        }
        for r in records
        if "eval/utility" in r
    ]


def per_prompt_utilities(run_dir: Path, step: int) -> np.ndarray:
    lines = (run_dir / "eval" / f"step_{step:06d}.jsonl").read_text().splitlines()
    return np.array([json.loads(line)["utility"] for line in lines])


def run_one(variant: str, seed: int, steps: int, eval_every: int, extra: list[str]) -> dict[str, Any]:
    """Run one variant and seed; its evaluation curve, final gain with 3 SE, queries and seconds."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"oatlike-{variant}-{seed}-"))
    overrides = [*VARIANTS[variant], *extra, f"seed={seed}", f"steps={steps}", f"eval.every={eval_every}"]
    config = compose(*overrides, f"run_dir={run_dir}", "tracking.progress=false")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = run(config, run_dir)
    seconds = time.perf_counter() - start
    curve = eval_curve(run_dir)
    final = per_prompt_utilities(run_dir, curve[-1]["step"])
    difference = final - per_prompt_utilities(run_dir, 0)
    return {
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "curve": curve,
        "queries": summary["oracle_queries"],
        "gain": float(difference.mean()),
        "three_se": 3 * float(difference.std(ddof=1)) / math.sqrt(len(difference)),
        "final_utilities": [round(float(u), 4) for u in final],
        "seconds": round(seconds, 1),
    }


def queries_to_reach(curve: list[dict[str, Any]], target: float) -> float:
    """Training queries at the first evaluation with utility >= ``target`` (inf if never)."""
    return next((float(point["queries"]) for point in curve if point["utility"] >= target), math.inf)


def _mean_std(values: list[float], digits: int = 3) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return f"{len(values) - len(finite)}/{len(values)} never"
    spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.fmean(finite):.{digits}f} ± {spread:.{digits}f}"


def report(results: list[dict[str, Any]], target: float) -> str:
    """Markdown tables: per variant over seeds, then per run."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    lines = [
        f"| algorithm | seeds | queries | final utility | final win rate | gain (3 SE) "
        f"| queries to U={target} | s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        lines.append(
            f"| {variant} | {len(runs)} | {statistics.fmean(r['queries'] for r in runs):.0f} "
            f"| {_mean_std([r['curve'][-1]['utility'] for r in runs])} "
            f"| {_mean_std([r['curve'][-1]['win_rate'] for r in runs])} "
            f"| {statistics.fmean(r['gain'] for r in runs):+.3f} ({statistics.fmean(r['three_se'] for r in runs):.3f}) "
            f"| {_mean_std([queries_to_reach(r['curve'], target) for r in runs], 0)} "
            f"| {statistics.fmean(r['seconds'] for r in runs):.0f} |"
        )
    lines += [
        "",
        "| algorithm | seed | queries | utility by evaluation (queries: utility) | gain (3 SE) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        points = ", ".join(f"{p['queries']}: {p['utility']:.3f}" for p in r["curve"])
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['queries']} | {points} | {r['gain']:+.3f} ({r['three_se']:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def paired_comparison(results: list[dict[str, Any]], first: str, second: str) -> str:
    """Per seed: final utility of ``first`` minus ``second`` over the same held-out prompts, with 3 SE."""
    lines = [f"| seed | {first} queries | {second} queries | utility {first} − {second} (3 SE) |", "|---|---|---|---|"]
    by_key = {(r["variant"], r["seed"]): r for r in results if "final_utilities" in r}
    gaps = []
    for seed in sorted({seed for variant, seed in by_key if variant == first}):
        if (second, seed) not in by_key:
            continue
        a, b = by_key[(first, seed)], by_key[(second, seed)]
        difference = np.array(a["final_utilities"]) - np.array(b["final_utilities"])
        bar = 3 * float(difference.std(ddof=1)) / math.sqrt(len(difference))
        gaps.append(float(difference.mean()))
        lines.append(f"| {seed} | {a['queries']} | {b['queries']} | {difference.mean():+.3f} ({bar:.3f}) |")
    if gaps:
        lines.append(f"| mean ± std | | | {_mean_std(gaps)} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Utility and win rate against queries: the mean over seeds (line) and the seeds' range (band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for variant in dict.fromkeys(r["variant"] for r in results):
        curves = [r["curve"] for r in results if r["variant"] == variant]
        length = min(len(c) for c in curves)
        queries = np.mean([[p["queries"] for p in c[:length]] for c in curves], axis=0)
        for axis, key in zip(axes, ("utility", "win_rate"), strict=True):
            values = np.array([[p[key] for p in c[:length]] for c in curves])
            (line,) = axis.plot(queries, values.mean(axis=0), marker="o", markersize=3, label=variant)
            axis.fill_between(queries, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)
    for axis, label in zip(axes, ("true utility (held-out, greedy)", "win rate vs reference"), strict=True):
        axis.set_xlabel("oracle queries")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("arithmetic task, 1M tiny Llama: mean over seeds, band = min..max")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--target", type=float, default=0.9, help="utility for the queries-to-reach column")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_efficiency"))
    parser.add_argument("--report-only", action="store_true", help="tables and plot from existing results")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 helps on a busy machine)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="paired final-utility differences A − B")
    parser.add_argument("extra", nargs="*", help="overrides for every run (key=value)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results_file = args.out.with_suffix(".jsonl")
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    if not args.report_only:
        done = {(r["variant"], r["seed"]) for r in results}
        for variant in args.variants:
            for seed in args.seeds:
                if (variant, seed) in done:
                    continue
                result = run_one(variant, seed, args.steps, args.eval_every, args.extra)
                results.append(result)
                with open(results_file, "a") as handle:
                    handle.write(json.dumps(result) + "\n")
                print(
                    f"{variant} seed {seed}: {result['queries']} queries, gain {result['gain']:+.3f} "
                    f"({result['three_se']:.3f}), {result['seconds']} s",
                    flush=True,
                )
    selected = [r for r in results if r["variant"] in args.variants and r["seed"] in args.seeds]
    text = report(selected, args.target)
    if args.compare:
        text += "\n" + paired_comparison(selected, *args.compare)
    args.out.with_suffix(".md").write_text(text)
    plot(selected, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
