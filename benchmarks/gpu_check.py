"""The prepared GPU check: every GPU path of oatlike once, with a figure and PASS / FAIL per step.

``benchmarks/gpu_check.sh`` runs this. On a machine with CUDA (one GPU is enough; under 8 minutes, no
network, every model built locally from a config) each step runs for real:

==================  =========================================================================================
step                what runs, and what it checks
==================  =========================================================================================
sync                the learner (DeepSpeed on CUDA) broadcasts its weights over the weight-sync group (NCCL on
                    GPUs) to an HF engine in a second process; the engine's weights must equal the learner's
                    bit for bit, and the post-sync probe's gap must be within ``weight_sync.probe_tolerance``
hf-engine           HF ``generate`` on CUDA at batch 64: generated tokens per second
vllm-sleep-off      vLLM on the GPU (``engine=vllm``): tokens per second, a weight load, the probe's gap
vllm-sleep-on       the same with ``engine.enable_sleep_mode=true`` (the engine frees the GPU between calls)
learning            ``runner=ray``, 1 actor + 1 learner sharing the GPU (half each), NCCL weight sync:
                    a short online-DPO run of the warm-started 1M model; the utility must rise, the probe hold
throughput          ``benchmarks/throughput.py --device cuda``: oatlike against TRL's ``OnlineDPOTrainer``
==================  =========================================================================================

``--dry-run`` (the default where CUDA is not available) checks the script's own wiring on the CPU: every
step's config, with its CUDA overrides, composes and validates; the scripts and optional libraries it
calls exist; and what can run on a CPU runs at minimum size (the sync's bitwise check over gloo, HF
``generate``, a two-step learning run). vLLM's CPU build and TRL are not started in the dry mode (a minute
each here; ``tests/engines/test_vllm.py`` and ``benchmarks/throughput.py`` run them). Every step prints one
line ``PASS|FAIL <step>: <figures>``; the exit status is 1 when any step failed.

    python benchmarks/gpu_check.py             # on a GPU machine: the full check
    python benchmarks/gpu_check.py --dry-run   # on a CPU: the wiring, in about 20 s
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

DRY = "--dry-run" in sys.argv or not torch.cuda.is_available()
os.environ.setdefault("DS_ACCELERATOR", "cpu" if DRY else "cuda")  # read when DeepSpeed is first imported
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from oatlike.builder import Builder  # noqa: E402 (after the accelerator is chosen)
from oatlike.config import Config, compose  # noqa: E402 (after the accelerator is chosen)
from oatlike.engines.base import SamplingParams  # noqa: E402 (after the accelerator is chosen)

HERE = Path(__file__).resolve().parent


@dataclass
class Check:
    """What the check needs besides a step's own overrides."""

    dry: bool
    cache_dir: str
    device: str

    @property
    def base(self) -> list[str]:
        """Overrides of every step: the device; the dry mode's minimum size."""
        common = [
            f"device={self.device}",
            f"cache_dir={self.cache_dir}",
            "tracking.progress=false",
            "model.warm_start.enabled=false",  # random weights: the learning step turns it on where it runs
        ]
        if self.dry:
            return [
                *common,
                "model.size=1m",
                "actor.prompts_per_step=4",
                "learner.micro_batch_size=4",
                "learner.grad_accum_steps=1",
            ]
        return [*common, "model.size=10m"]


def compose_cuda(check: Check, *overrides: str) -> Config:
    """The step's config as it runs on the GPU (``device=cuda`` whatever this machine has: composing
    validates every key and cross-field check; only building the components needs the device)."""
    compose(*Check(False, check.cache_dir, "cuda").base, *overrides)  # exactly what the GPU run composes
    return compose(*check.base, *overrides)


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor's bytes in name order (equal digests: bitwise equal weights)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- steps


def sync_rank(config: Config, dry: bool, rank: int, port: int) -> dict[str, Any]:
    """One process of the sync step. Rank 0: the learner, after one training step (its weights differ from
    the initial ones the engine holds) broadcasts them; rank 1: the actor's engine receives and loads them.
    Each returns the digest of its weights and its probe log-probs."""
    from oatlike.runners.local import probe_pairs
    from oatlike.sync.group import SyncGroup, weight_spec

    if not dry:  # a process of its own (the dry run's ranks are threads sharing this one's threads)
        torch.set_num_threads(1)
    builder = Builder(config, progress=False)
    probe = probe_pairs(builder)
    if rank == 0:
        learner, actor = builder.learner(), builder.actor()
        batch, _ = actor.step(builder.prompt_sets[0].prompts[: config.actor.prompts_per_step])
        learner.learn(batch)
        weights = learner.weight_views()
        group = SyncGroup("127.0.0.1", port, 0, 2, 900, builder.device, "gpu-check")
        start = time.perf_counter()
        sent = group.broadcast(weights, weight_spec(weights), config.weight_sync.bucket_mb)
        return {
            "digest": weights_digest(learner.weights()),
            "logps": learner.probe_logps(*probe),
            "bytes": sent,
            "seconds": time.perf_counter() - start,
        }
    engine = builder.engine()
    spec = weight_spec(engine.model.state_dict())  # type: ignore[attr-defined]  # the HF engine: the same layout
    group = SyncGroup("127.0.0.1", port, 1, 2, 900, builder.device, "gpu-check")
    engine.load_weights(group.receive(spec, config.weight_sync.bucket_mb, engine.weight_storage()), 1)  # in place
    return {"digest": weights_digest(engine.model.state_dict()), "logps": engine.score(*probe).logps.tolist()}  # type: ignore[attr-defined]


def step_sync(check: Check) -> tuple[bool, str]:
    """Learner → engine over the real sync group between two processes (NCCL on CUDA); the dry run's two
    ranks are threads of this process over gloo (the same calls, without two more interpreters to start)."""
    from concurrent.futures import FIRST_EXCEPTION, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
    from multiprocessing import get_context

    from oatlike.learner.ds import free_port

    config = compose_cuda(check, "actor.max_new_tokens=8")  # here: Hydra's composition is not thread-safe
    _ = Builder(config, progress=False).policy_path  # the initial policy's folder, built once
    port = free_port()
    executor: Executor = ThreadPoolExecutor(2) if check.dry else ProcessPoolExecutor(2, mp_context=get_context("spawn"))
    with executor as pool:
        futures = [pool.submit(sync_rank, config, check.dry, rank, port) for rank in (0, 1)]
        done, _ = wait(futures, timeout=900, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()  # a rank that failed: its error, not the other's time-out
        learner, engine = (future.result(timeout=900) for future in futures)
    tolerance = config.weight_sync.probe_tolerance
    bitwise = learner["digest"] == engine["digest"]
    gap = max(abs(a - b) for a, b in zip(learner["logps"], engine["logps"], strict=True))
    transport = "gloo" if check.dry else "NCCL"
    return bitwise and gap <= tolerance, (
        f"{transport}, {learner['bytes'] / 2**20:.1f} MiB in {learner['seconds'] * 1e3:.0f} ms; "
        f"bitwise weights after sync: {'PASS' if bitwise else 'FAIL'}; probe gap {gap:.2g} (tolerance {tolerance:g})"
    )


def generation_rate(config: Config, batch: int, repeats: int) -> tuple[float, Any]:
    """Generated tokens per second of ``config``'s engine at ``batch`` sequences a call; and the engine."""
    builder = Builder(config, progress=False)
    engine = builder.engine()
    prompts = [list(p.token_ids) for p in builder.prompt_sets[0].prompts[: batch // 2]]
    from limits import tokens_per_second  # the sibling benchmark (this folder is on sys.path)

    params = SamplingParams(n=2, max_new_tokens=config.actor.max_new_tokens)
    return tokens_per_second(engine, prompts, params, repeats), engine


def step_hf_engine(check: Check) -> tuple[bool, str]:
    config = compose_cuda(check, "engine=hf", f"actor.max_new_tokens={8 if check.dry else 32}")
    batch = 8 if check.dry else 64
    rate, engine = generation_rate(config, batch, 1 if check.dry else 3)
    ok = rate > 0 and next(engine.model.parameters()).device.type == Builder(config).device.type
    return ok, f"{rate:,.0f} tok/s at batch {batch} on {Builder(config).device}"


def vllm_step(check: Check, sleep: bool) -> tuple[bool, str]:
    """vLLM on the GPU with sleep mode on or off: generation, a weight load, the probe."""
    overrides = ["engine=vllm", f"engine.enable_sleep_mode={str(sleep).lower()}", "engine.gpu_memory_utilization=0.3"]
    if check.dry:
        compose_cuda(check, *overrides)
        found = importlib.util.find_spec("vllm") is not None
        return found, f"config composes; vLLM {'installed' if found else 'NOT installed'}; not started (dry run)"
    from oatlike.runners.local import probe_pairs

    config = compose_cuda(check, *overrides)
    rate, engine = generation_rate(config, 64, 3)
    builder = Builder(config, progress=False)
    learner_model = builder.policy_model().to(builder.device)
    with torch.no_grad():
        for parameter in learner_model.parameters():
            parameter.mul_(1.01)  # weights the engine does not hold yet
    start = time.perf_counter()
    engine.load_weights(dict(learner_model.state_dict()), 1)
    load_seconds = time.perf_counter() - start
    from oatlike.models.sequences import model_sequence_logps, pack_sequences

    probe = probe_pairs(builder)
    packed = pack_sequences(*probe, int(builder.tokenizer.pad_token_id)).to(builder.device)
    with torch.no_grad():
        expected = model_sequence_logps(learner_model, packed).tolist()
    gap = max(abs(a - b) for a, b in zip(expected, engine.score(*probe).logps.tolist(), strict=True))
    tolerance = 0.05  # vLLM's kernels differ from HF's in the last bits (the run's tolerance is a config key)
    return (
        gap <= tolerance,
        f"{rate:,.0f} tok/s at batch 64; weight load {load_seconds * 1e3:.0f} ms; probe gap {gap:.2g}",
    )


def step_vllm_sleep_off(check: Check) -> tuple[bool, str]:
    return vllm_step(check, sleep=False)


def step_vllm_sleep_on(check: Check) -> tuple[bool, str]:
    return vllm_step(check, sleep=True)


def step_learning(check: Check) -> tuple[bool, str]:
    """A short run of the default experiment (warm-started 1M model); on the GPU through ``runner=ray``
    with the actor and the learner sharing it, on the CPU (dry) through ``runner=local`` for two steps."""
    from oatlike.experiment import run

    on_gpu = [
        "runner=ray",
        "actors.num_gpus=0.5",
        "learner.num_gpus=0.5",
        "steps=60",
        "eval.every=60",
        "model.size=1m",
        "model.warm_start.enabled=true",
    ]
    runner = on_gpu
    if check.dry:
        compose_cuda(check, *on_gpu)
        runner = ["runner=local", "steps=2", "eval.every=0"]
    run_dir = Path(tempfile.mkdtemp(prefix="oatlike-gpu-check-"))
    config = compose_cuda(check, *runner, f"run_dir={run_dir}")
    with contextlib.redirect_stdout(io.StringIO()):
        run(config, run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    gaps = [r["misc/sync_probe_max_gap"] for r in records if "misc/sync_probe_max_gap" in r]
    utilities = [r["eval/utility"] for r in records if "eval/utility" in r]
    steps = [r for r in records if "train/loss" in r]
    rises = check.dry or (len(utilities) >= 2 and utilities[-1] > utilities[0])
    held = bool(gaps) and max(gaps) <= config.weight_sync.probe_tolerance
    seconds = statistics.median(
        b["misc/elapsed_seconds"] - a["misc/elapsed_seconds"] for a, b in itertools.pairwise(steps)
    )
    figures = f"{len(steps)} steps, {seconds:.2f} s a step; probe gap max {max(gaps, default=float('nan')):.2g}"
    if utilities:
        figures += f"; utility {utilities[0]:.3f} -> {utilities[-1]:.3f}"
    return bool(steps) and held and rises, figures


def step_throughput(check: Check) -> tuple[bool, str]:
    """``benchmarks/throughput.py --device cuda`` (the dry run: the script, its configs and TRL are there)."""
    script = HERE / "throughput.py"
    if check.dry:
        found = importlib.util.find_spec("trl") is not None
        compose_cuda(check, "runner=ray", "runner.mode=async", "actors.num_gpus=0.5", "learner.num_gpus=0.5")
        return script.is_file() and found, f"{script.name} found; TRL {'installed' if found else 'NOT installed'}"
    command = [sys.executable, str(script), "--device", "cuda", "--steps", "4", "--warmup", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return result.returncode == 0, " | ".join(lines[-6:]) if lines else result.stderr[-500:]


STEPS: dict[str, Callable[[Check], tuple[bool, str]]] = {
    "sync": step_sync,
    "hf-engine": step_hf_engine,
    "vllm-sleep-off": step_vllm_sleep_off,
    "vllm-sleep-on": step_vllm_sleep_on,
    "learning": step_learning,
    "throughput": step_throughput,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="check the wiring on the CPU (default without CUDA)")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--cache-dir", default=tempfile.mkdtemp(prefix="oatlike-gpu-check-cache-"))
    args = parser.parse_args(argv)
    dry = args.dry_run or DRY
    check = Check(dry, args.cache_dir, "cpu" if dry else "cuda")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    device = "dry run on the CPU" if dry else torch.cuda.get_device_name(0)
    print(f"gpu check: {device}; torch {torch.__version__}; steps: {' '.join(args.steps)}", flush=True)
    failed = []
    started = time.perf_counter()
    for name in args.steps:
        step_start = time.perf_counter()
        try:
            ok, figures = STEPS[name](check)
        except Exception as error:  # a step that breaks is a FAIL with its reason, and the others still run
            ok, figures = False, f"{type(error).__name__}: {error}"
            traceback.print_exc()
        print(f"{'PASS' if ok else 'FAIL'} {name}: {figures} ({time.perf_counter() - step_start:.0f} s)", flush=True)
        if not ok:
            failed.append(name)
    verdict = f"FAIL ({', '.join(failed)})" if failed else "PASS"
    print(f"gpu check: {verdict} in {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
