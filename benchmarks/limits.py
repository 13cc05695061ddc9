"""Each part of the loop against what this machine allows, as a ratio, in one run.

``benchmarks/throughput.py`` says oatlike beats TRL; this says how close each part runs to its own bound:

* **learner**: achieved FLOP/s of a training step against this machine's measured dense matmul peak
  (``torch.matmul`` of the step's own shapes, same threads and dtype, measured in the same process right
  before and after). FLOPs are counted from the model's shapes and the tokens processed (padded, as the
  hardware computes them), after Kaplan et al. 2020 (*Scaling laws*, Table 1) and the PaLM paper's
  appendix B: a forward pass costs ``2·N·T`` for the ``N`` weights of the linear layers (embeddings
  excluded, the output head included) plus ``4·L·S²·d`` per sequence for the attention scores and the
  weighted sum (``S`` its padded length, ``L`` layers, ``d`` the hidden size; SDPA computes the whole
  square under a padding mask). The backward pass costs twice the forward. A DPO step is the policy's
  forward + backward (``6·N·T + 3·attention``) plus the reference forward (``2·N·T + attention``). The step
  is profiled (``torch.profiler``) to say where the time that is not matmul goes.
* **memory**: the learner process's peak resident memory above what it held before the models were built,
  against the parameter-count bound: fp32 weights, gradients and AdamW's two moments (16 bytes a
  parameter) plus the fp32 reference (4 bytes).
* **weight sync**: oatlike's sync between two processes (the learner's real :class:`Learner` exporting its
  weights and :class:`~oatlike.sync.group.SyncGroup` broadcasting them; the receiver's real engine receiving
  and loading them) against one plain ``torch.distributed`` broadcast of the same bytes over the same gloo
  group between the same processes, the two timed in turn; the post-sync probe's cost separately.
* **generation**: generated tokens per second of HF ``generate`` and vLLM's CPU build at several batch
  sizes (sequences per call: ``batch / 2`` prompts × 2 samples, as the actor samples them).
* **loop**: a sync step (``runner=local``) against collection + learning, and an async step (``runner=ray
  runner.mode=async``, one CPU each) against max(collection, learning), from the loop's own per-step
  metrics (``actor/step_seconds``, ``train/learn_seconds``; ``benchmarks/throughput.py`` runs them).

Every heavy part runs in a fresh process (the memory figures are per process, and two vLLM engines do not
share one). The two sides of every ratio are measured back to back in the same process, so other work on
the machine slows both.

    python benchmarks/limits.py                      # 10m and 50m (10m alone: 54 min at load average 10-20)
    python benchmarks/limits.py --quick              # 1m, tiny batches: the wiring (learner + sync: 150 s loaded)
    python benchmarks/limits.py --sizes 10m --parts learner sync
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from oatlike.builder import Builder
from oatlike.config import Config, compose
from oatlike.data.prompts import PromptStream
from oatlike.engines.base import SamplingParams
from oatlike.types import PreferenceBatch

PARTS = ("learner", "sync", "generation", "loop")
BYTES_PER_PARAMETER = {"policy (weights, grads, AdamW m and v)": 16, "reference": 4}
"""fp32 training state per parameter: the bound of the learner's memory."""


# ---------------------------------------------------------------------------------------------- plumbing


def in_fresh_process(function: Callable[..., Any], *calls: tuple[Any, ...]) -> list[Any]:
    """Run ``function(*args)`` for each tuple of ``calls`` at once, each in a fresh (spawned) process."""
    with ProcessPoolExecutor(len(calls), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(function, *args) for args in calls]
        return [future.result() for future in futures]


def setup_process(threads: int) -> None:
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def make_config(args: argparse.Namespace, size: str, *overrides: str) -> Config:
    return compose(
        f"model.size={size}",
        "model.warm_start.enabled=false",  # untrained: every response is max_new_tokens long
        f"actor.max_new_tokens={args.max_new_tokens}",
        f"actor.prompts_per_step={args.prompts}",
        f"learner.micro_batch_size={args.prompts}",
        "learner.grad_accum_steps=1",
        f"cache_dir={args.cache_dir}",
        "tracking.progress=false",
        *overrides,
    )


def collect_batch(config: Config) -> PreferenceBatch:
    """One step's labelled pairs from the real actor (what the learner trains on in the loop)."""
    setup_process(2)
    builder = Builder(config, progress=False)
    prompts = PromptStream(builder.prompt_sets[0].prompts, seed=0).next(config.actor.prompts_per_step)
    batch, _ = builder.actor().step(prompts)
    return batch


# ----------------------------------------------------------------------------------------------- learner


def linear_weights(model: torch.nn.Module) -> int:
    """Weights that multiply activations: every ``nn.Linear`` (the output head included, embeddings not)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def step_flops(model: torch.nn.Module, sequence_shapes: list[tuple[int, int]]) -> dict[str, float]:
    """FLOPs of one DPO step over padded batches of ``(sequences, padded length)`` (module docstring)."""
    config = model.config  # type: ignore[union-attr]
    weights = linear_weights(model)
    tokens = sum(rows * length for rows, length in sequence_shapes)
    attention = sum(
        4 * config.num_hidden_layers * rows * length**2 * config.hidden_size for rows, length in sequence_shapes
    )
    forward = 2 * weights * tokens + attention
    return {"weights": weights, "tokens": tokens, "forward": forward, "step": 3 * forward + forward}


def matmul_peak(rows: int, shapes: list[tuple[int, int]], repeats: int = 5) -> float:
    """Best FLOP/s of ``torch.matmul`` of ``[rows, k] @ [k, n]`` fp32 over ``shapes`` (the model's own)."""
    best = 0.0
    for k, n in shapes:
        a, b = torch.randn(rows, k), torch.randn(k, n)
        torch.matmul(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            best = max(best, 2 * rows * k * n / (time.perf_counter() - start))
    return best


def profile_step(learner: Any, batch: PreferenceBatch) -> dict[str, float]:
    """Self CPU time of one ``learn`` by kind of operator (seconds)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        learner.learn(batch)
    kinds = {
        "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
        "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
        "softmax / log-softmax": ("aten::_log_softmax", "aten::_softmax", "aten::log_softmax"),
        "optimizer": ("aten::_foreach", "aten::addcdiv", "aten::lerp"),
    }
    seconds: dict[str, float] = {kind: 0.0 for kind in kinds} | {"other": 0.0}
    for event in prof.key_averages():
        kind = next((k for k, names in kinds.items() if event.key.startswith(names)), "other")
        seconds[kind] += event.self_cpu_time_total / 1e6
    return seconds


def learner_limits(config: Config, batch: PreferenceBatch, warmup: int, steps: int) -> dict[str, Any]:
    """The learner's FLOP/s utilisation, its profile and its peak memory, in this (fresh) process."""
    from oatlike.models.sequences import pack_sequences

    setup_process(2)
    builder = Builder(config, progress=False)
    _ = builder.tokenizer, builder.policy_path
    baseline = rss_mb()
    learner = builder.learner()
    built = rss_mb()
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        learner.learn(batch)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    model = learner.policy
    pad = int(builder.tokenizer.pad_token_id)
    packed = pack_sequences(batch.prompt_ids * 2, batch.chosen_ids + batch.rejected_ids, pad)
    shapes = [tuple(packed.input_ids.shape)]  # one micro-batch: the whole step (micro_batch_size = prompts)
    flops = step_flops(model, shapes)  # type: ignore[arg-type]
    hidden, inner, vocab = model.config.hidden_size, model.config.intermediate_size, model.config.vocab_size
    matmul_shapes = [(hidden, hidden), (hidden, inner), (inner, hidden), (hidden, vocab)]
    peak = max(matmul_peak(flops["tokens"], matmul_shapes), 0.0)
    step_seconds = statistics.median(times)
    achieved = flops["step"] / step_seconds
    peak = max(peak, matmul_peak(flops["tokens"], matmul_shapes))  # before and after: contention hits both
    profile = profile_step(learner, batch)
    parameters = sum(p.numel() for p in model.parameters())
    state = {
        "weights": sum(p.numel() * p.element_size() for p in model.parameters()),
        "grads": sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None),
        "optimizer": sum(
            v.numel() * v.element_size()
            for s in learner.engine.optimizer.state.values()
            for v in s.values()
            if torch.is_tensor(v) and v.dim() > 0
        ),
        "reference": sum(p.numel() * p.element_size() for p in learner.references.model.parameters()),
    }
    return {
        "parameters": parameters,
        "flops": flops,
        "step_seconds": step_seconds,
        "achieved_flops": achieved,
        "peak_flops": peak,
        "profile": profile,
        "rss_baseline_mb": baseline,
        "rss_built_mb": built,
        "peak_rss_mb": peak_rss_mb(),
        "state_mb": {k: v / 2**20 for k, v in state.items()},
        "bound_mb": parameters * sum(BYTES_PER_PARAMETER.values()) / 2**20,
    }


# -------------------------------------------------------------------------------------------- weight sync


def sync_side(config: Config, rank: int, port: int, repeats: int) -> dict[str, Any]:
    """One side of the sync benchmark: rank 0 the learner, rank 1 the actor's engine (module docstring)."""
    from oatlike.models.lora import export_weights
    from oatlike.runners.local import probe_pairs
    from oatlike.sync.group import SyncGroup, weight_spec

    setup_process(1)
    builder = Builder(config, progress=False)
    bucket_mb = config.weight_sync.bucket_mb
    learner = builder.learner() if rank == 0 else None
    engine = builder.engine() if rank == 1 else None
    # the layout the learner exports (the Ray runner hands it to every actor when the group is built)
    spec = weight_spec(learner.weights() if learner is not None else export_weights(builder.policy_model(), 0))
    group = SyncGroup("127.0.0.1", port, rank, 2, 300, torch.device("cpu"), "limits")
    nbytes = sum(t.nbytes for t in spec)
    plain = torch.zeros(nbytes // 4, dtype=torch.float32)  # the same bytes, one preallocated tensor
    probe = probe_pairs(builder)

    def barrier() -> None:
        group.group.broadcast(torch.zeros(1), 0).wait()

    timings: dict[str, list[float]] = {"plain": [], "sync": [], "receive": [], "load": [], "probe": []}
    for repeat in range(repeats + 1):  # the first round warms both paths up
        barrier()
        start = time.perf_counter()
        group.group.broadcast(plain, 0).wait()
        plain_seconds = time.perf_counter() - start
        barrier()
        start = time.perf_counter()
        if learner is not None:
            group.broadcast(learner.weight_views(), spec, bucket_mb)
            received_seconds = time.perf_counter() - start
        else:
            assert engine is not None
            received = group.receive(spec, bucket_mb, engine.weight_storage())  # as the Ray actor receives
            received_seconds = time.perf_counter() - start
            engine.load_weights(received, repeat)
        sync_seconds = time.perf_counter() - start
        barrier()
        start = time.perf_counter()
        if learner is not None:
            learner.probe_logps(*probe)
        else:
            assert engine is not None
            engine.score(*probe)
        probe_seconds = time.perf_counter() - start
        if repeat:
            timings["plain"].append(plain_seconds)
            timings["sync"].append(sync_seconds)
            timings["receive"].append(received_seconds)
            timings["load"].append(sync_seconds - received_seconds)
            timings["probe"].append(probe_seconds)
    return {"bytes": nbytes, **{k: statistics.median(v) for k, v in timings.items()}, "peak_rss_mb": peak_rss_mb()}


def sync_limits(config: Config, repeats: int) -> dict[str, Any]:
    from oatlike.learner.ds import free_port

    port = free_port()
    sender, receiver = in_fresh_process(sync_side, (config, 0, port, repeats), (config, 1, port, repeats))
    return {"sender": sender, "receiver": receiver}


# --------------------------------------------------------------------------------------------- generation


def tokens_per_second(engine: Any, prompts: list[list[int]], params: SamplingParams, repeats: int) -> float:
    """Generated tokens per second of ``engine`` on ``prompts`` (after one warm-up call), over ``repeats`` calls."""
    engine.generate(prompts, params)  # warm-up
    tokens, seconds = 0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        groups = engine.generate(prompts, params)
        seconds += time.perf_counter() - start
        tokens += sum(len(g.token_ids) for group in groups for g in group)
    return tokens / seconds


def generation_side(config: Config, batch_sizes: list[int], repeats: int) -> dict[str, Any]:
    """Generated tokens per second of ``config``'s engine at each batch size, in this (fresh) process."""
    setup_process(2)
    builder = Builder(config, progress=False)
    engine = builder.engine()
    prompts = [list(p.token_ids) for p in builder.prompt_sets[0].prompts]
    rates = {}
    for batch in batch_sizes:
        samples = 2 if batch > 1 else 1
        params = SamplingParams(n=samples, max_new_tokens=config.actor.max_new_tokens)
        rates[batch] = tokens_per_second(engine, prompts[: max(1, batch // samples)], params, repeats)
    return {"tokens_per_second": rates, "peak_rss_mb": peak_rss_mb()}


def generation_limits(args: argparse.Namespace, size: str) -> dict[str, Any]:
    results = {}
    for engine in args.engines:
        config = make_config(args, size, f"engine={engine}")
        (results[engine],) = in_fresh_process(generation_side, (config, args.batch_sizes, args.repeats))
    return results


# -------------------------------------------------------------------------------------------------- loop


def loop_limits(args: argparse.Namespace, size: str) -> dict[str, Any]:
    """Sync (``runner=local``) and async (``runner=ray``, one CPU a side) steps against their bounds."""
    from throughput import time_oatlike  # the sibling benchmark (this folder is on sys.path)

    loop_args = argparse.Namespace(**{**vars(args), "size": size, "steps": args.loop_steps})
    sync = time_oatlike(loop_args, "limits-local")
    asynchronous = time_oatlike(
        loop_args, "limits-async", "runner=ray", "runner.mode=async", "actors.num_cpus=1", "learner.num_cpus=1"
    )
    return {"sync": sync, "async": asynchronous}


# ------------------------------------------------------------------------------------------------ report


def report(size: str, results: dict[str, Any]) -> list[str]:
    """The lines of one size's table: part, measured, bound, ratio."""
    rows: list[tuple[str, str, str, str]] = []
    if "learner" in results:
        r = results["learner"]
        rows.append(
            (
                "learner FLOP/s (policy fwd+bwd, reference fwd)",
                f"{r['achieved_flops'] / 1e9:.1f} GFLOP/s "
                f"({r['flops']['step'] / 1e9:.0f} GFLOP in {r['step_seconds']:.2f} s)",
                f"{r['peak_flops'] / 1e9:.1f} GFLOP/s matmul peak",
                f"{r['achieved_flops'] / r['peak_flops']:.2f}",
            )
        )
        total = sum(r["profile"].values())
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in r["profile"].items())
        rows.append(("learner profile (self CPU time)", shares, "", ""))
        growth = r["peak_rss_mb"] - r["rss_baseline_mb"]
        state = ", ".join(f"{k} {v:.0f}" for k, v in r["state_mb"].items())
        rows.append(
            (
                "learner peak memory above baseline",
                f"{growth:.0f} MB (tensors: {state} MB)",
                f"{r['bound_mb']:.0f} MB (20 B/param)",
                f"{growth / r['bound_mb']:.2f}",
            )
        )
    if "sync" in results:
        s = results["sync"]["receiver"]
        rows.append(
            (
                f"weight sync ({s['bytes'] / 2**20:.0f} MiB, gloo)",
                f"{s['sync'] * 1e3:.0f} ms (receive {s['receive'] * 1e3:.0f}, load {s['load'] * 1e3:.0f})",
                f"{s['plain'] * 1e3:.0f} ms plain broadcast",
                f"{s['sync'] / s['plain']:.2f}",
            )
        )
        probe = results["sync"]["sender"]["probe"] + s["probe"]
        rows.append(("sync probe (learner + actor)", f"{probe * 1e3:.0f} ms", "", ""))
        rows.append(
            (
                "sync processes' peak memory",
                f"learner {results['sync']['sender']['peak_rss_mb']:.0f} MB, actor {s['peak_rss_mb']:.0f} MB",
                "",
                "",
            )
        )
    if "generation" in results:
        gen = results["generation"]
        best = max(rate for r in gen.values() for rate in r["tokens_per_second"].values())
        for engine, r in gen.items():
            for batch, rate in r["tokens_per_second"].items():
                rows.append(
                    (
                        f"generation {engine}, batch {batch}",
                        f"{rate:,.0f} tok/s",
                        f"{best:,.0f} best",
                        f"{rate / best:.2f}",
                    )
                )
    if "loop" in results:
        sync, asynchronous = results["loop"]["sync"], results["loop"]["async"]
        bound = sync["collect_seconds"] + sync["learn_seconds"]
        rows.append(
            (
                "sync step (runner=local)",
                f"{sync['step_seconds']:.2f} s",
                f"{bound:.2f} s collection + learning",
                f"{sync['step_seconds'] / bound:.2f}",
            )
        )
        rows.append(
            (
                "async step (runner=ray, 1 CPU a side)",
                f"{asynchronous['step_seconds']:.2f} s",
                f"{asynchronous['bound_seconds']:.2f} s max(collection, learning)",
                f"{asynchronous['step_seconds'] / asynchronous['bound_seconds']:.2f}",
            )
        )
    lines = [f"| {size} | part | measured | bound | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {size} | {part} | {measured} | {bound} | {ratio} |" for part, measured, bound, ratio in rows]
    return lines


def measure(part: str, args: argparse.Namespace, size: str) -> Any:
    """The figures of one part at one size (each heavy side in fresh processes)."""
    if part == "learner":
        config = make_config(args, size)
        (batch,) = in_fresh_process(collect_batch, (config,))
        return in_fresh_process(learner_limits, (config, batch, args.warmup, args.steps))[0]
    if part == "sync":
        return sync_limits(make_config(args, size), args.repeats)
    if part == "generation":
        return generation_limits(args, size)
    return loop_limits(args, size)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["10m", "50m"])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--engines", nargs="+", default=["hf", "vllm"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32, 64])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed learner steps")
    parser.add_argument("--loop-steps", type=int, default=4, help="timed loop steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed syncs / generate calls")
    parser.add_argument("--quick", action="store_true", help="1m model, small batches, few steps (the wiring)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--cache-dir", default=tempfile.mkdtemp(prefix="oatlike-limits-cache-"))
    args = parser.parse_args(argv)
    if args.quick:
        explicit = set(argv if argv is not None else sys.argv[1:])
        if "--sizes" not in explicit:
            args.sizes = ["1m"]
        if "--batch-sizes" not in explicit:
            args.batch_sizes = [1, 8]
        args.prompts, args.max_new_tokens, args.steps, args.loop_steps, args.repeats = 8, 8, 2, 2, 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, 2 threads a process, fp32; {args.prompts} prompts x 2 "
        f"samples x {args.max_new_tokens} tokens a step",
        flush=True,
    )
    print("| size | part | measured | bound | ratio |\n|---|---|---|---|---|", flush=True)
    everything: dict[str, Any] = {}
    for size in args.sizes:
        results: dict[str, Any] = everything.setdefault(size, {})
        for part in args.parts:  # each part's rows as soon as it is measured (a 50m run takes a while)
            part_started = time.perf_counter()
            results[part] = measure(part, args, size)
            print("\n".join(report(size, {part: results[part]})[2:]), f"({time.perf_counter() - part_started:.0f} s)")
            sys.stdout.flush()
            if args.json:
                args.json.write_text(json.dumps(everything, indent=2, default=str))
    print(f"limits: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
