"""The prepared GPU check (``benchmarks/gpu_check.sh``) passes its dry mode on this CPU machine, and its
checks can fail: a weight that differs by one bit changes the digest, a failing step makes the exit status 1."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def load_gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_dry_run_lists_every_step_with_pass(cache_dir: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--cache-dir", str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for step in load_gpu_check().STEPS:
        assert any(line.startswith(f"PASS {step}: ") for line in lines), f"{step} did not pass:\n{result.stdout}"
    assert "bitwise weights after sync: PASS" in result.stdout
    assert lines[-1].startswith("gpu check: PASS")


def test_one_flipped_bit_changes_the_weights_digest() -> None:
    gpu_check = load_gpu_check()
    weights = {"a.weight": torch.randn(4, 3), "b.bias": torch.randn(3)}
    flipped = {name: tensor.clone() for name, tensor in weights.items()}
    flipped["b.bias"].view(torch.int32)[1] ^= 1  # the lowest bit of one float
    assert gpu_check.weights_digest(weights) == gpu_check.weights_digest({k: v.clone() for k, v in weights.items()})
    assert gpu_check.weights_digest(weights) != gpu_check.weights_digest(flipped)


def test_a_failing_step_prints_fail_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gpu_check = load_gpu_check()
    monkeypatch.setattr(
        gpu_check, "STEPS", {"good": lambda check: (True, "fine"), "bad": lambda check: (False, "broken")}
    )
    assert gpu_check.main(["--dry-run", "--steps", "good", "bad"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "PASS good: fine" in out[1] and "FAIL bad: broken" in out[2]
    assert out[-1].startswith("gpu check: FAIL (bad)")
