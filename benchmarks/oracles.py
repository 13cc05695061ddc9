"""Throughput of the local oracles: queries per second against ``oracle.batch_size``.

Each local oracle kind answers the same 256 arithmetic comparisons (prompt ``"85+47="``-like, responses of
3-4 digits) at batch sizes 1, 2, 4, ..., 64, through ``Oracle.compare`` exactly as the actor calls it:

* ``rule``: the task's utility (no model; the interface's own cost);
* ``reward_model`` 1m / 10m: tiny Llama sequence classifiers (built from a config, random weights), both
  responses of a pair in one forward pass;
* ``pairrm``: a PairRM-format DeBERTa-v2 (random weights, 4 layers of 256) on the project's tokenizer,
  both orders (two sequences per pair).

The machine is noisy and may be shared, so each row also prints its speed-up over batch size 1 of the same
kind, measured in the same run, with batch sizes interleaved (median of ``--repeats`` runs each).

    python benchmarks/oracles.py
    python benchmarks/oracles.py --kinds reward_model-1m pairrm --pairs 128 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from transformers import AutoTokenizer, LlamaForSequenceClassification

from oatlike.models.tiny import tiny_llama_config
from oatlike.oracles.base import Oracle
from oatlike.oracles.config import PairRMOracleConfig, RewardModelOracleConfig, RuleOracleConfig
from oatlike.oracles.pairrm import PairRMOracle, random_pairrm
from oatlike.oracles.reward_model import RewardModelOracle
from oatlike.oracles.rule import RuleOracle
from oatlike.tasks.arithmetic import ArithmeticTask
from oatlike.warmstart import ensure_tokenizer

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def workload(pairs: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    task, rng = ArithmeticTask(), np.random.default_rng(seed)
    prompts = [item.text for item in task.split("train")[:pairs]]
    responses_a = [task.best_response(p) for p in prompts]
    responses_b = [str(int(a) + int(rng.integers(-20, 21))) for a in responses_a]
    return prompts, responses_a, responses_b


def oracle_builders(tokenizer_dir: Path) -> dict[str, Callable[[], Oracle]]:
    def reward_model(size: str) -> Callable[[], Oracle]:
        def build() -> Oracle:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
            torch.manual_seed(0)
            config = tiny_llama_config(size, tokenizer)
            config.num_labels = 1
            return RewardModelOracle(
                RewardModelOracleConfig(model="in memory"), LlamaForSequenceClassification(config), tokenizer
            )

        return build

    def pairrm() -> Oracle:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        model = random_pairrm(tokenizer, hidden_size=256, num_layers=4, num_heads=4)
        return PairRMOracle(PairRMOracleConfig(), model, tokenizer)

    return {
        "rule": lambda: RuleOracle(RuleOracleConfig(), ArithmeticTask()),
        "reward_model-1m": reward_model("1m"),
        "reward_model-10m": reward_model("10m"),
        "pairrm": pairrm,
    }


def time_compare(oracle: Oracle, batch_size: int, data: tuple[list[str], list[str], list[str]]) -> float:
    oracle.batch_size = batch_size
    start = time.perf_counter()
    oracle.compare(*data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=None, help="oracle kinds (default: all)")
    parser.add_argument("--pairs", type=int, default=256, help="comparisons per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per batch size (median)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as cache:
        builders = oracle_builders(ensure_tokenizer(Path(cache)))
        data = workload(args.pairs)
        threads = torch.get_num_threads()
        print(f"{args.pairs} comparisons per measurement, median of {args.repeats}, torch threads {threads}")
        print("| oracle | batch size | queries/s | vs batch size 1 |")
        print("|---|---|---|---|")
        for kind in args.kinds or list(builders):
            oracle = builders[kind]()
            time_compare(oracle, 8, data)  # warm-up
            seconds: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
            for _ in range(args.repeats):
                for batch_size in BATCH_SIZES:  # interleaved, so that load changes hit every size alike
                    seconds[batch_size].append(time_compare(oracle, batch_size, data))
            rates = {b: args.pairs / statistics.median(s) for b, s in seconds.items()}
            for batch_size, rate in rates.items():
                print(f"| {kind} | {batch_size} | {rate:,.0f} | {rate / rates[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
