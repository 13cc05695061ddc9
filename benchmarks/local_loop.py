"""Throughput of the local loop: training steps per second and generated tokens per second.

For each tiny model size, the same work is timed twice in this process, the two loops stepped in turn:

* **oatlike**: the real components from the builder (HF engine actor + rule oracle, DeepSpeed learner,
  weight sync every step), exactly as ``oatlike runner=local`` runs them;
* **plain PyTorch**: a minimal hand-written loop doing the same per step: ``generate`` K samples for the same
  prompts, label a random pair with the same oracle, one DPO step with ``torch.optim.AdamW``, copy the
  weights to the sampler.

Untrained models are used so that every response has exactly ``max_new_tokens`` tokens (a fixed-length
workload; a warm-started model stops after 3-4 tokens). Ratios > 1 mean oatlike is faster.

    python benchmarks/local_loop.py                 # 1m and 10m, 20 timed steps each
    python benchmarks/local_loop.py --sizes 1m --steps 50
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import torch.nn.functional as F

from oatlike.builder import Builder
from oatlike.config import Config, compose
from oatlike.data.prompts import PromptStream
from oatlike.engines.hf import cut_at_eos, left_pad
from oatlike.models.sequences import model_sequence_logps, pack_sequences


@dataclass
class Timing:
    step_seconds: list[float]
    generate_seconds: list[float]
    tokens: list[int]

    def steps_per_second(self) -> float:
        return 1.0 / statistics.median(self.step_seconds)

    def tokens_per_second(self) -> float:
        return sum(self.tokens) / sum(self.generate_seconds)


def make_config(size: str, max_new_tokens: int, prompts: int, cache_dir: str) -> Config:
    overrides = [
        f"model.size={size}",
        "model.warm_start.enabled=false",
        f"actor.max_new_tokens={max_new_tokens}",
        f"actor.prompts_per_step={prompts}",
        f"learner.micro_batch_size={prompts}",  # one forward/backward per step, like the plain loop
        "learner.grad_accum_steps=1",
        f"cache_dir={cache_dir}",
        "tracking.progress=false",
    ]
    return compose(*overrides)


class OatlikeLoop:
    """The real components from the builder, stepped as the local runner steps them."""

    def __init__(self, config: Config) -> None:
        torch.manual_seed(0)
        builder = Builder(config, progress=False)
        self.config = config
        self.actor, self.learner = builder.actor(), builder.learner()
        self.stream = PromptStream(builder.prompt_sets[0].prompts, seed=0)
        self.parameters = sum(p.numel() for p in self.learner.policy.parameters())

    def step(self) -> tuple[float, int]:
        """One step; returns (generation seconds, tokens generated)."""
        batch, metrics = self.actor.step(self.stream.next(self.config.actor.prompts_per_step))
        self.learner.learn(batch)
        self.actor.engine.load_weights(self.learner.weights(), self.learner.version)
        tokens = metrics["actor/response_length"] * self.config.actor.prompts_per_step * self.config.actor.num_samples
        return metrics["actor/generate_seconds"], round(tokens)


class PlainLoop:
    """The same per-step work in a minimal hand-written loop (no DeepSpeed, no framework)."""

    def __init__(self, config: Config) -> None:
        torch.manual_seed(0)
        builder = Builder(config, progress=False)
        self.config = config
        self.tokenizer, self.oracle = builder.tokenizer, builder.oracle()
        self.policy = builder.policy_model()
        self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.sampler = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.learner.lr)
        self.stream = PromptStream(builder.prompt_sets[0].prompts, seed=0)
        self.rng = np.random.default_rng(0)

    def step(self) -> tuple[float, int]:
        start = time.perf_counter()
        k, pad = self.config.actor.num_samples, self.tokenizer.pad_token_id
        prompts = self.stream.next(self.config.actor.prompts_per_step)
        ids, mask = left_pad([list(p.token_ids) for p in prompts], pad)
        with torch.no_grad():
            out = self.sampler.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                max_new_tokens=self.config.actor.max_new_tokens,
                num_return_sequences=k,
                pad_token_id=pad,
                top_k=0,
            )
        generated = time.perf_counter() - start
        responses = [cut_at_eos(row, {self.tokenizer.eos_token_id})[0] for row in out[:, ids.shape[1] :].tolist()]
        chosen, rejected = [], []
        for i, prompt in enumerate(prompts):
            a, b = (responses[i * k + j] for j in self.rng.choice(k, 2, replace=False))
            texts = [self.tokenizer.decode(x, skip_special_tokens=True) for x in (a, b)]
            a_wins = self.rng.random() < self.oracle.compare([prompt.text], texts[:1], texts[1:])[0]
            chosen.append(a if a_wins else b)
            rejected.append(b if a_wins else a)
        packed = pack_sequences([list(p.token_ids) for p in prompts] * 2, chosen + rejected, pad)
        with torch.no_grad():
            ref = model_sequence_logps(self.reference, packed)
        logps = model_sequence_logps(self.policy, packed)
        m = len(prompts)
        loss = F.softplus(-0.1 * ((logps[:m] - ref[:m]) - (logps[m:] - ref[m:]))).mean()
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
        self.optimizer.step()
        self.sampler.load_state_dict(self.policy.state_dict())
        return generated, sum(len(r) for r in responses)


def measure(loops: dict[str, OatlikeLoop | PlainLoop], warmup: int, steps: int) -> dict[str, Timing]:
    """Step the loops in turn (interleaved, so machine noise and drift hit them alike)."""
    timings = {name: Timing([], [], []) for name in loops}
    for step in range(warmup + steps):
        for name, loop in loops.items():
            start = time.perf_counter()
            generate_seconds, tokens = loop.step()
            if step >= warmup:
                timings[name].step_seconds.append(time.perf_counter() - start)
                timings[name].generate_seconds.append(generate_seconds)
                timings[name].tokens.append(tokens)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1m", "10m"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cache = tempfile.mkdtemp(prefix="oatlike-bench-")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.prompts} prompts x 2 samples x "
        f"{args.max_new_tokens} new tokens per step; median of {args.steps} steps after {args.warmup} warm-up"
    )
    header = ("model", "params", "loop", "steps/s", "gen tok/s", "steps/s ratio", "tok/s ratio")
    rows = []
    for size in args.sizes:
        config = make_config(size, args.max_new_tokens, args.prompts, cache)
        oatlike_loop = OatlikeLoop(config)
        parameters = oatlike_loop.parameters
        timings = measure({"oatlike": oatlike_loop, "plain": PlainLoop(config)}, args.warmup, args.steps)
        ours, plain = timings["oatlike"], timings["plain"]
        rows.append(
            (
                size,
                f"{parameters / 1e6:.1f}M",
                "oatlike",
                f"{ours.steps_per_second():.2f}",
                f"{ours.tokens_per_second():.0f}",
                f"{ours.steps_per_second() / plain.steps_per_second():.2f}",
                f"{ours.tokens_per_second() / plain.tokens_per_second():.2f}",
            )
        )
        rows.append(
            (
                size,
                "",
                "plain PyTorch",
                f"{plain.steps_per_second():.2f}",
                f"{plain.tokens_per_second():.0f}",
                "1.00",
                "1.00",
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
