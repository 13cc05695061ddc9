"""The trained reward model of the oracle learning test: build time, accuracy and the loop's gain per seed.

Builds one reward model by ``tests/oracle_fixtures.py::train_reward_model`` on the sorting task's warm start
(the recipe's knobs below), measures its pairwise accuracy on held-out pairs of the policy's own samples, and
runs the test's loop (online DPO against it, 50 steps, ``eval.every=0``) for each run seed, printing the
gain in true utility against its three-standard-error bar — what
``tests/oracles/test_oracles_in_the_loop.py::test_online_dpo_learns_against_a_trained_reward_model``
asserts for seed 0. docs/benchmarks.md ("Learning against a trained reward model") holds the figures.

    python benchmarks/reward_model_recipe.py --steps 500 --max-prompts 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("OATLIKE_CACHE_DIR", str(ROOT / ".oatlike-cache" / "tests"))

import torch  # noqa: E402
from helpers import eval_utilities, make_config, three_standard_errors  # noqa: E402
from oracle_fixtures import cached_reward_model, pairwise_accuracy  # noqa: E402

from oatlike.experiment import run  # noqa: E402
from oatlike.models.config import ModelConfig  # noqa: E402
from oatlike.tasks.config import SortingTaskConfig  # noqa: E402
from oatlike.tasks.sorting import SortingTask  # noqa: E402
from oatlike.warmstart import ensure_policy_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="reward-model optimizer steps")
    parser.add_argument("--max-prompts", type=int, default=2000, help="training prompts sampled")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds of the loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = {
        "steps": args.steps,
        "samples_per_prompt": 8,
        "max_new_tokens": 32,
        "hard_negatives": 2,
        "seed": 0,
        "max_prompts": args.max_prompts,
    }
    task, cache = SortingTask(), Path(os.environ["OATLIKE_CACHE_DIR"])
    policy = ensure_policy_folder(ModelConfig(), SortingTaskConfig(), task, cache, progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        model = cached_reward_model(Path(scratch), policy, task, **recipe)  # a fresh build, not the tests' cache
        build = time.perf_counter() - start
        accuracy, pairs = pairwise_accuracy(model, policy, task, max_new_tokens=32)
        print(json.dumps({"recipe": recipe, "build_s": round(build), "accuracy": accuracy, "pairs": pairs}))
        for seed in args.seeds:
            run_dir = Path(scratch) / f"run-{seed}"
            overrides = ["task=sorting", "oracle=reward_model", f"oracle.model={model}"]
            run(make_config(run_dir, f"seed={seed}", "eval.every=0", "steps=50", *overrides), run_dir)
            gain = eval_utilities(run_dir) - eval_utilities(run_dir, 0)
            bar = three_standard_errors(gain)
            print(json.dumps({"seed": seed, "gain": float(gain.mean()), "bar": bar, "ratio": float(gain.mean() / bar)}))


if __name__ == "__main__":
    main()
