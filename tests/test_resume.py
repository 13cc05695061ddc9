"""Resume and preemption through the real command line: a run SIGKILLed mid-way and resumed equals the run
that was never interrupted; SIGTERM saves a full-state checkpoint and exits 75; ``resume=auto`` picks the run up;
a fresh run never mixes with an old one; a resumed run refuses overrides that would change its past."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
from helpers import BIN, oatlike, read_metrics, step_records
from safetensors.torch import load_file

from oatlike import checkpoint

pytestmark = pytest.mark.slow

TIMES = ("seconds", "per_second")
COMMON = ["steps=6", "eval.every=2", "learner.checkpoint_every=2", "tracking.progress=false"]


@pytest.fixture(autouse=True)
def _built_warm_start(warm_policy):
    """The default warm start, built in this process first (the commands below load it from the cache)."""


def comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith(TIMES)} for r in read_metrics(run_dir)]


def start(run_dir: str, cwd: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN), *COMMON, f"run_dir={run_dir}", *overrides],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "metrics.jsonl").exists() and any(r["step"] >= step for r in step_records(run_dir)):
            return
        time.sleep(0.2)
    raise AssertionError(f"the run did not reach step {step}: {process.poll()}")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoints" / "final" / "model.safetensors")


@pytest.mark.parametrize("runner", [[], ["runner=ray"]], ids=["local", "ray"])
def test_a_killed_run_resumed_equals_the_uninterrupted_one(tmp_path, runner):
    whole = oatlike(*COMMON, "run_dir=whole", *runner, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    process = start("killed", tmp_path, *runner)
    wait_for_step(tmp_path / "killed", 3, process)
    family = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    for orphan in family:  # a private Ray outlives its driver's SIGKILL
        if orphan.is_running():
            orphan.kill()
    resumed_from = checkpoint.latest(tmp_path / "killed")
    assert resumed_from is not None and resumed_from.name in ("step_000002", "step_000004")
    resumed = oatlike("resume=killed", "tracking.progress=false", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert comparable(tmp_path / "killed") == comparable(tmp_path / "whole")  # every number but timings
    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["stop_reason"] == "completed" and summary["oracle_queries"] == summary["pairs_trained"]


@pytest.mark.parametrize("runner", [[], ["runner=ray"]], ids=["local", "ray"])
def test_sigterm_saves_the_state_exits_75_and_resume_auto_goes_on(tmp_path, runner):
    process = start("run", tmp_path, "learner.checkpoint_every=0", *runner)
    wait_for_step(tmp_path / "run", 2, process)
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 75, stderr[-2000:]
    assert "preempted after step" in stderr and "Traceback" not in stderr
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    stopped_at = summary["steps"]
    assert summary["stop_reason"] == "preempted" and summary["full_state_checkpoint"].endswith(f"{stopped_at:06d}")
    assert all(r["step"] <= stopped_at for r in read_metrics(tmp_path / "run"))
    again = oatlike("run_dir=run", "resume=auto", "tracking.progress=false", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    records = step_records(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 7))  # no step lost, none twice
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 6


def test_runs_never_mix_and_resumes_keep_their_past(tmp_path):
    first = oatlike("steps=2", "eval.every=0", "run_dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = oatlike("steps=2", "eval.every=0", "run_dir=run", cwd=tmp_path)
    assert again.returncode == 1
    assert "oatlike: error: run_dir: run already holds a run; continue it with resume=run" in again.stderr
    changed = oatlike("resume=run", "steps=4", "learner.lr=1e-3", cwd=tmp_path)
    assert changed.returncode == 1 and "oatlike: error: learner.lr: cannot be changed when resuming" in changed.stderr
    longer = oatlike("resume=run", "steps=4", "eval.every=1", "tracking.progress=false", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert [r["step"] for r in step_records(tmp_path / "run")] == [1, 2, 3, 4]
    missing = oatlike("resume=nowhere", cwd=tmp_path)
    assert missing.returncode == 1 and "resume: nowhere holds no full-state checkpoint" in missing.stderr


def test_checkpoints_are_bounded_and_a_half_written_one_is_ignored(tmp_path):
    result = oatlike(
        "steps=5",
        "eval.every=0",
        "learner.checkpoint_every=1",
        "learner.keep_checkpoints=2",
        "run_dir=run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in checkpoint.state_folders(tmp_path / "run")] == ["step_000004", "step_000005"]
    broken = tmp_path / "run" / checkpoint.STATE_DIR / "step_000006.tmp"
    broken.mkdir()
    (broken / "state.pt").write_bytes(b"half")  # a run killed while saving
    assert checkpoint.latest(tmp_path / "run").name == "step_000005"
    assert os.path.getsize(checkpoint.latest(tmp_path / "run") / "state.pt") > 1000
    assert checkpoint.load(checkpoint.latest(tmp_path / "run"))["loop"]["last_step"] == 5  # the safe loader alone
