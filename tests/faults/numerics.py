"""Numbers that blow up: the loss, the gradients, the weights, and what generation makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faults.harness import Fault
from oatlike.engines.hf import HFEngine
from oatlike.losses.loss import DPOLoss

KEPT = ("metrics.jsonl", "summary.json", "failed_batch.jsonl", "checkpoints/last/model.safetensors")


def nan_loss_at_step_3(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = DPOLoss.per_pair, {"n": 0}

    def blows_up(self: DPOLoss, logps: object) -> torch.Tensor:  # 2 micro-batches a step
        calls["n"] += 1
        return real(self, logps) * (float("nan") if calls["n"] > 4 else 1.0)  # type: ignore[arg-type]

    monkeypatch.setattr(DPOLoss, "per_pair", blows_up)


def step_makes_weights_nan(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = torch.optim.AdamW.step, {"n": 0}

    def corrupting_step(self: torch.optim.AdamW, *args: object, **kwargs: object) -> object:
        result = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            self.param_groups[0]["params"][0].data.fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", corrupting_step)


def synced_weights_nan(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The actor's copy of the policy turns NaN at the second sync (the learner's check sees nothing)."""
    real = HFEngine.load_weights

    def poisoned(self: HFEngine, state_dict: dict, version: int) -> None:
        if version == 2:
            state_dict = {name: torch.full_like(w, float("nan")) for name, w in state_dict.items()}
        real(self, state_dict, version)

    monkeypatch.setattr(HFEngine, "load_weights", poisoned)


CASES = [
    Fault(
        "loss-is-nan",
        ("steps=6", "eval.every=0"),
        r"the dpo loss is nan at learner step 3.*lower learner\.lr.* stopped at step 3, its metrics and policy",
        prepare=nan_loss_at_step_3,
        kept=KEPT,
        stop_reason="non-finite",
    ),
    Fault(
        "gradients-blow-up-lr-10",
        ("steps=8", "eval.every=0", "learner.lr=10"),
        r"training diverged at learner step \d: the gradients' norm is nan; lower learner\.lr \(now 10\)",
        kept=KEPT,
        stop_reason="non-finite",
    ),
    Fault(
        "gradients-blow-up-lr-1e6",
        ("steps=8", "eval.every=0", "learner.lr=1e6"),
        r"training diverged at learner step \d: the gradients' norm is nan; lower learner\.lr \(now 1e\+06\)",
        kept=KEPT,
        stop_reason="non-finite",
    ),
    Fault(
        "gradients-blow-up-zero-2",  # DeepSpeed skips the step itself
        ("steps=8", "eval.every=0", "learner.lr=10", "learner.zero_stage=2"),
        r"training diverged at learner step \d: the gradients' norm is inf \(the step was skipped\)",
        kept=KEPT,
        stop_reason="non-finite",
    ),
    Fault(
        "step-makes-weights-non-finite",
        ("steps=6", "eval.every=0"),
        r"training diverged at learner step 2: the step made the weights non-finite.* stopped at step 2, its metrics",
        prepare=step_makes_weights_nan,
        kept=("metrics.jsonl", "summary.json", "failed_batch.jsonl"),
        stop_reason="non-finite",
    ),
    Fault(
        "generation-diverges",
        ("steps=6", "eval.every=0"),
        r"the policy \(weights version 2\) gives non-finite token probabilities when generating: training diverged",
        prepare=synced_weights_nan,
        kept=("metrics.jsonl", "summary.json"),
        stop_reason="non-finite",
    ),
]
