"""Helpers shared by the tests: configs composed as the CLI does, run folders read back, small batches,
the real command line in a subprocess, a ``ray start`` head node on loopback."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from oracle_fixtures import free_port, stop_process_group

from oatlike.actors.actor import Actor
from oatlike.config import Config, compose
from oatlike.experiment import build_loop
from oatlike.learner.config import LearnerConfig
from oatlike.learner.learner import Learner
from oatlike.losses.config import LOSSES
from oatlike.losses.loss import build_loss
from oatlike.models.config import LoraConfig
from oatlike.models.loading import load_causal_lm
from oatlike.models.lora import apply_lora
from oatlike.types import Generation, PreferenceBatch, Prompt, Rollout

BIN = Path(sys.executable).parent / "oatlike"


def make_config(run_dir: Path, *overrides: str) -> Config:
    """The config the CLI would run for ``overrides`` (progress bar off, writing to ``run_dir``)."""
    return compose(f"run_dir={run_dir}", "tracking.progress=false", *overrides)


@dataclass
class LocalRun:
    """A finished ``runner=local`` run and the components it left behind, for inspection."""

    summary: dict[str, Any]
    actor: Actor
    learner: Learner


def run_local(run_dir: Path, *overrides: str) -> LocalRun:
    """Run ``overrides`` with ``runner=local`` into ``run_dir``; returns the summary, the actor and the learner."""
    loop = build_loop(make_config(run_dir, *overrides), run_dir)
    summary = loop.run()
    actors, learner = loop.roles.actors, loop.roles.learner
    return LocalRun(summary, actors.actor, learner.learner)  # type: ignore[attr-defined]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def step_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of training steps (not evaluations)."""
    return [r for r in read_metrics(run_dir) if "train/loss" in r]


def eval_records(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run_dir) if "eval/response_length" in r]


def eval_utilities(run_dir: Path, step: int | None = None) -> np.ndarray:
    """Per-prompt true utility of the greedy answers evaluated at ``step`` (default: the last evaluation)."""
    files = sorted((run_dir / "eval").glob("step_*.jsonl"))
    path = files[-1] if step is None else run_dir / "eval" / f"step_{step:06d}.jsonl"
    return np.array([json.loads(line)["utility"] for line in path.read_text().splitlines()])


def three_standard_errors(difference: np.ndarray) -> float:
    """Three standard errors of the mean of per-prompt ``difference`` (the learning tests' bar)."""
    return 3.0 * float(difference.std(ddof=1)) / math.sqrt(len(difference))


def make_batch(tokenizer: Any, size: int = 8, identical: int = 0, reference_version: int = 0) -> PreferenceBatch:
    """``size`` arithmetic pairs whose chosen answer is right and rejected answer is off by one; the first
    ``identical`` pairs have two identical responses (masked)."""
    prompts = [tokenizer(f"{10 + i}+{20 + i}=").input_ids for i in range(size)]
    eos = tokenizer.eos_token_id
    chosen = [[*tokenizer(str(30 + 2 * i), add_special_tokens=False).input_ids, eos] for i in range(size)]
    rejected = [[*tokenizer(str(31 + 2 * i), add_special_tokens=False).input_ids, eos] for i in range(size)]
    for i in range(identical):
        rejected[i] = list(chosen[i])
    return PreferenceBatch(
        prompts=[tokenizer.decode(p, skip_special_tokens=True) for p in prompts],
        prompt_ids=prompts,
        chosen=[tokenizer.decode(c, skip_special_tokens=True) for c in chosen],
        rejected=[tokenizer.decode(r, skip_special_tokens=True) for r in rejected],
        chosen_ids=chosen,
        rejected_ids=rejected,
        preference_prob=[1.0] * size,
        loss_mask=[i >= identical for i in range(size)],
        behaviour_versions=[0] * size,
        reference_versions=[reference_version] * size,
    )


def make_learner(policy_dir: Path, loss: str = "dpo", lora: bool = False, seed: int = 0, **options: Any) -> Learner:
    """A learner of the model in ``policy_dir`` on its own (one rank, CPU): micro-batches of 4 pairs, 2 per
    optimizer step, lr 1e-3 unless ``options`` say otherwise."""
    config = LearnerConfig(**{"micro_batch_size": 4, "grad_accum_steps": 2, "lr": 1e-3, **options})
    policy = load_causal_lm(str(policy_dir))
    if lora:
        policy = apply_lora(policy, LoraConfig(enabled=True, r=4, alpha=8))
    loss_fn = build_loss(LOSSES.get(loss).schema())
    reference = load_causal_lm(str(policy_dir)) if loss_fn.needs_reference else None
    return Learner(
        config,
        policy,
        reference,
        loss_fn,
        pad_token_id=0,
        buffer_size=8,
        total_optimizer_steps=10,
        device=torch.device("cpu"),
        seed=seed,
    )


def toy_rollout(num_prompts: int, num_candidates: int) -> Rollout:
    """A rollout of one-token candidates ``0 .. num_candidates - 1`` per prompt (selection tests)."""
    prompts = [Prompt(f"{i}+1=", (1,)) for i in range(num_prompts)]
    candidates = [[Generation([10 + j], str(j), True) for j in range(num_candidates)] for _ in prompts]
    return Rollout(prompts, candidates)


def oatlike(*args: str, cwd: Path, drop_env: tuple[str, ...] = (), module: bool = False) -> subprocess.CompletedProcess:
    """Run the ``oatlike`` console script (or ``python -m oatlike``) in ``cwd``."""
    command = [sys.executable, "-m", "oatlike", *args] if module else [str(BIN), *args]
    env = {k: v for k, v in os.environ.items() if k not in drop_env}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


RENDEZVOUS_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")
"""A learner built in the test process holds its rendezvous port: a CLI child must pick its own."""


RAY_START_PORTS = (
    "port",
    "dashboard-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "ray-client-server-port",
    "runtime-env-agent-port",
    "node-manager-port",
    "object-manager-port",
)
"""The ports ``ray start`` takes fixed defaults for (6379, 8265, 52365, ...): each gets a free one, so that a
head node never collides with another cluster on the machine (a taken agent port leaves the job API dead)."""


@contextmanager
def ray_head(env: dict[str, str], num_cpus: int = 2, timeout: float = 120) -> Iterator[str]:
    """A real head node, ``ray start --head --block`` on free ports with its own ``--temp-dir``, in ``env``;
    yields the job API's address (``http://127.0.0.1:PORT``) once the dashboard answers. ``--block`` ties the
    node's processes to this one, which is stopped at the end: this node only, never ``ray stop``, which
    stops every Ray on the machine. The temp dir is a short one under /tmp (Ray's socket paths in it must
    fit in 107 bytes: a pytest ``tmp_path`` is too long)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="oatlike-ray-", dir="/tmp"))
    ports = {name: free_port() for name in RAY_START_PORTS}
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp_dir}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        "--disable-usage-stats",
        *(f"--{name}={port}" for name, port in ports.items()),
    ]
    log = temp_dir / "ray-head.log"
    with open(log, "w") as output:
        head = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert head.poll() is None, f"ray start --head exited: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{address}/api/gcs_healthz", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"the dashboard never answered: {log.read_text()[-3000:]}"
                time.sleep(1)
        yield address
    finally:
        stop_process_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
