"""The warm start of each tiny size: its build time and the greedy utility it reaches on the eval split.

Builds the warm start of ``--size`` on the arithmetic task with that size's recipe
(``oatlike.models.config.WARM_START_RECIPES``; ``--steps``/``--batch-size``/``--lr`` override it, as
``model.warm_start.*`` would) into a fresh cache folder, on one torch thread, and prints the SFT time,
seconds per step, final loss and the greedy utility of the result on the eval split beside the
demonstrator's (the references'). ``--time-only N`` trains only N steps and prints the seconds per step
(no evaluation): how the 50M figure in docs/benchmarks.md ("Warm starts") was extrapolated.

    python benchmarks/warm_start_recipe.py --size 10m
    python benchmarks/warm_start_recipe.py --size 50m --time-only 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from oatlike.engines.base import SamplingParams
from oatlike.engines.hf import HFEngine
from oatlike.models.config import ModelConfig, WarmStartConfig
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.tasks.config import ArithmeticTaskConfig
from oatlike.warmstart import ensure_policy_folder


def greedy_utility(folder: Path, task: ArithmeticTask) -> float:
    """Mean utility of the greedy answers of the model in ``folder`` on the task's eval split."""
    engine = HFEngine(load_causal_lm(str(folder)), load_tokenizer(str(folder)))
    prompts = task.split("eval")
    answers = engine.generate(
        [engine.tokenizer(p.text).input_ids for p in prompts], SamplingParams(greedy=True, max_new_tokens=24)
    )
    return statistics.fmean(task.utility(p.text, a[0].text) for p, a in zip(prompts, answers, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10m", choices=["1m", "10m", "50m"])
    parser.add_argument("--steps", type=int, default=None, help="SFT steps (default: the size's recipe)")
    parser.add_argument("--batch-size", type=int, default=None, help="demonstrations per step (default: recipe)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--time-only", type=int, default=0, metavar="N", help="train N steps, print s/step only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.time_only or args.steps
    warm = WarmStartConfig(steps=steps, batch_size=args.batch_size, lr=args.lr)
    task = ArithmeticTask()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        folder = ensure_policy_folder(
            ModelConfig(size=args.size, warm_start=warm), ArithmeticTaskConfig(), task, Path(scratch), progress=False
        )
        wall = time.perf_counter() - start
        report = json.loads((folder / "warm_start.json").read_text())
        sft = report["recipe"]["sft"]
        result = {
            "size": args.size,
            **{k: sft[k] for k in ("steps", "batch_size", "lr")},
            "sft_seconds": report["seconds"],
            "seconds_per_step": round(report["seconds"] / max(1, sft["steps"]), 3),
            "build_seconds": round(wall, 1),
            "final_loss": round(report["final_loss"], 4),
        }
        if not args.time_only:
            result["greedy_utility"] = round(greedy_utility(folder, task), 4)
            result["demonstrator_utility"] = round(
                statistics.fmean(task.utility(p.text, p.reference) for p in task.split("eval")), 4
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
