"""End-to-end throughput: oatlike's runners against TRL's ``OnlineDPOTrainer`` doing the same work.

Workload per step, identical everywhere: the 10M tiny Llama (untrained, so every response is exactly
``--max-new-tokens`` long), ``--prompts`` prompts, 2 samples each at temperature 1, the pair labelled by the
arithmetic task's utility (oatlike's rule oracle; TRL's reward function), one DPO optimizer step on the
pairs (one batch), HF ``generate`` as the engine. Measured one after another in this run:

* ``local``: ``runner=local`` (one process, 2 threads: generation and training alternate);
* ``ray sync``: ``runner=ray`` with one actor and one learner of 2 CPUs each (the phases alternate, so the
  private Ray is given 4 logical CPUs: ``ray.num_cpus=4``);
* ``ray async``: ``runner=ray runner.mode=async`` with one actor and one learner of 1 CPU each: the actor
  generates step t+1 while the learner trains on step t;
* ``TRL``: ``trl.experimental.online_dpo.OnlineDPOTrainer`` (the ``bench`` extra), same model and data.

Each runs ``--warmup`` steps, then ``--steps`` timed ones; the figure is the median step time. Ratios are
against TRL. The async check divides the median async step by the median of max(collection seconds,
learning seconds) of the same steps (collection = the actor's generate + label).

    python benchmarks/throughput.py                  # 10M model, 32 prompts x 2 x 32 tokens
    python benchmarks/throughput.py --size 50m --warmup 1 --steps 3
    python benchmarks/throughput.py --device cuda     # on a GPU (benchmarks/gpu_check.sh runs it)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from oatlike.builder import Builder
from oatlike.config import Config, compose
from oatlike.experiment import run


def make_config(args: argparse.Namespace, run_dir: Path, *overrides: str) -> Config:
    common = [
        f"model.size={args.size}",
        "model.warm_start.enabled=false",
        f"actor.max_new_tokens={args.max_new_tokens}",
        f"actor.prompts_per_step={args.prompts}",
        f"learner.micro_batch_size={args.prompts}",
        "learner.grad_accum_steps=1",
        "eval.every=0",
        "eval.save_generations=false",
        "data.max_eval_prompts=8",
        f"steps={args.warmup + args.steps}",
        f"run_dir={run_dir}",
        "tracking.progress=false",
        f"cache_dir={args.cache_dir}",
        f"device={getattr(args, 'device', 'cpu')}",
    ]
    if (
        getattr(args, "device", "cpu") == "cuda" and "runner=ray" in overrides
    ):  # the actor and the learner share the one GPU
        common += ["actors.num_gpus=0.5", "learner.num_gpus=0.5"]
    return compose(*common, *overrides)


def time_oatlike(args: argparse.Namespace, name: str, *overrides: str) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"oatlike-throughput-{name.replace(' ', '-')}-"))
    with contextlib.redirect_stdout(io.StringIO()):
        run(make_config(args, run_dir, *overrides), run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "train/loss" in r]
    times = [b["misc/elapsed_seconds"] - a["misc/elapsed_seconds"] for a, b in itertools.pairwise(steps)]
    timed = steps[args.warmup :]
    return {
        "step_seconds": statistics.median(times[args.warmup - 1 :]),
        "collect_seconds": statistics.median(r["actor/step_seconds"] for r in timed),
        "learn_seconds": statistics.median(r["train/learn_seconds"] for r in timed),
        "bound_seconds": statistics.median(max(r["actor/step_seconds"], r["train/learn_seconds"]) for r in timed),
    }


def time_trl(args: argparse.Namespace) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    builder = Builder(make_config(args, Path(tempfile.mkdtemp())), progress=False)
    task = builder.task
    assert task is not None
    prompts = [p.text for p in builder.prompt_sets[0].prompts[: args.prompts * (args.warmup + args.steps)]]

    def utility(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [task.utility(p, c) for p, c in zip(prompts, completions, strict=True)]

    stamps: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

    config = OnlineDPOConfig(
        output_dir=tempfile.mkdtemp(prefix="oatlike-throughput-trl-"),
        per_device_train_batch_size=args.prompts,
        gradient_accumulation_steps=1,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        beta=0.1,
        learning_rate=1e-4,
        max_steps=args.warmup + args.steps,
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        use_cpu=getattr(args, "device", "cpu") == "cpu",
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = OnlineDPOTrainer(
        model=builder.policy_model(),
        reward_funcs=utility,
        args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=builder.tokenizer,
        callbacks=[StepTimes()],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    times = [b - a for a, b in itertools.pairwise(stamps)]
    return {"step_seconds": statistics.median(times[args.warmup - 1 :])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10m")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--cache-dir", default=tempfile.mkdtemp(prefix="oatlike-throughput-cache-"))
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    results = {
        "local": time_oatlike(args, "local"),
        "ray sync": time_oatlike(
            args, "ray sync", "runner=ray", "ray.num_cpus=4", "actors.num_cpus=2", "learner.num_cpus=2"
        ),
        "ray async": time_oatlike(
            args, "ray async", "runner=ray", "runner.mode=async", "actors.num_cpus=1", "learner.num_cpus=1"
        ),
        "TRL OnlineDPOTrainer": time_trl(args),
    }
    trl_rate = args.prompts / results["TRL OnlineDPOTrainer"]["step_seconds"]
    print(
        f"{args.size} model, {args.prompts} prompts x 2 samples x {args.max_new_tokens} tokens per step, "
        f"{os.cpu_count()} CPUs, median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"{'loop':<22}{'s/step':>8}{'prompts/s':>11}{'vs TRL':>8}")
    for name, result in results.items():
        rate = args.prompts / result["step_seconds"]
        print(f"{name:<22}{result['step_seconds']:>8.2f}{rate:>11.2f}{rate / trl_rate:>8.2f}")
    async_result = results["ray async"]
    print(
        f"async step / max(collection {async_result['collect_seconds']:.2f} s, learning "
        f"{async_result['learn_seconds']:.2f} s) per step: {async_result['step_seconds']:.2f} / "
        f"{async_result['bound_seconds']:.2f} = {async_result['step_seconds'] / async_result['bound_seconds']:.2f}"
    )


if __name__ == "__main__":
    main()
