"""Learning curves over seeds: utility gain of each algorithm against oracle queries, with its noise.

Each row runs the default experiment (arithmetic task, 1M tiny model) with one variant and seed, evaluating
every ``--eval-every`` steps. A cell is the mean per-prompt utility gain over step 0 on the 256 held-out
prompts, and in parentheses three standard errors of that mean (the bar the learning tests use).
``offline`` is online DPO whose sampler never takes new weights (``sync_every=0``); every variant gets the
same number of steps, so queries differ by the rate of identical pairs (shown).

    python benchmarks/learning_curves.py                       # dpo offline simpo ipo, seeds 0-4
    python benchmarks/learning_curves.py --variants dpo --seeds 0 1 --steps 100
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
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from oatlike.config import compose
from oatlike.experiment import run

VARIANTS = {
    "dpo": ["algo=dpo"],
    "offline": ["algo=dpo", "sync_every=0"],
    "simpo": ["algo=simpo"],
    "ipo": ["algo=ipo"],
    "slic": ["algo=slic"],
    "cdpo": ["algo=cdpo"],
}


def utilities(run_dir: Path, step: int) -> np.ndarray:
    lines = (run_dir / "eval" / f"step_{step:06d}.jsonl").read_text().splitlines()
    return np.array([json.loads(line)["utility"] for line in lines])


def run_variant(overrides: list[str], seed: int, steps: int, eval_every: int) -> tuple[list[tuple[float, float]], int]:
    run_dir = Path(tempfile.mkdtemp(prefix="oatlike-curve-"))
    config = compose(
        *overrides,
        f"seed={seed}",
        f"steps={steps}",
        f"eval.every={eval_every}",
        f"run_dir={run_dir}",
        "tracking.progress=false",
    )
    with contextlib.redirect_stdout(io.StringIO()):
        summary = run(config, run_dir)
    start = utilities(run_dir, 0)
    cells = []
    for step in range(eval_every, steps + 1, eval_every):
        difference = utilities(run_dir, step) - start
        cells.append((float(difference.mean()), 3 * float(difference.std(ddof=1)) / math.sqrt(len(difference))))
    return cells, int(summary["oracle_queries"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["dpo", "offline", "simpo", "ipo"], choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=50)
    args = parser.parse_args()
    checkpoints = list(range(args.eval_every, args.steps + 1, args.eval_every))
    print("| variant | seed | queries | " + " | ".join(f"gain @ step {s} (3 SE)" for s in checkpoints) + " |")
    print("|---|---|---|" + "---|" * len(checkpoints))
    finals: dict[str, list[float]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            cells, queries = run_variant(VARIANTS[variant], seed, args.steps, args.eval_every)
            finals.setdefault(variant, []).append(cells[-1][0])
            row = " | ".join(f"{gain:+.3f} ({bar:.3f})" for gain, bar in cells)
            print(f"| {variant} | {seed} | {queries} | {row} |", flush=True)
    print()
    print("| variant | final gain: mean | std | min | max |")
    print("|---|---|---|---|---|")
    for variant, gains in finals.items():
        spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
        print(f"| {variant} | {statistics.fmean(gains):+.3f} | {spread:.3f} | {min(gains):+.3f} | {max(gains):+.3f} |")


if __name__ == "__main__":
    main()
