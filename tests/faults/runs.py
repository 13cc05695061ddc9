"""The run itself: a folder that holds another run, checkpoints that are damaged or unsafe, a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from faults.harness import Fault
from oatlike.config import compose, save_resolved_config
from oatlike.engines.hf import HFEngine


def folder_holds_a_run(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "run").mkdir()
    (folder / "run" / "metrics.jsonl").write_text('{"step": 0}\n')


def checkpoint_of(folder: Path) -> Path:
    """A run folder with a full-state checkpoint of step 2 whose config is real (its state is the fault)."""
    state = folder / "run" / "checkpoints" / "state" / "step_000002"
    state.mkdir(parents=True)
    save_resolved_config(compose(f"run_dir={folder / 'run'}", "steps=4"), state)
    return state


def damaged_checkpoint(folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (checkpoint_of(folder) / "state.pt").write_bytes(b"PK\x03\x04 half a zip file")
    return [f"resume={folder / 'run'}"]


class RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo unpickled > unpickled.txt",))


def unsafe_checkpoint(folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    torch.save({"loop": RunsCode()}, checkpoint_of(folder) / "state.pt")
    return [f"resume={folder / 'run'}"]


def engine_crashes_at_the_second_step(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = HFEngine.generate, {"n": 0}

    def crashing(self: HFEngine, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # the evaluation at step 0, step 1, then step 2
            raise RuntimeError("something oatlike does not know about")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(HFEngine, "generate", crashing)


CASES = [
    Fault(
        "run-into-a-used-folder",
        ("steps=2",),
        r"run_dir: .*/run already holds a run; continue it with resume=.*/run \(or resume=auto\), or choose another",
        prepare=folder_holds_a_run,
        kept=("metrics.jsonl",),
    ),
    Fault(
        "damaged-checkpoint",
        (),
        r"resume: .*step_000002/state.pt cannot be read \(.*\): it is damaged; remove .*step_000002 to resume",
        prepare=damaged_checkpoint,
    ),
    Fault(
        "checkpoint-that-runs-code",
        (),
        r"resume: .*step_000002/state.pt holds more than tensors and plain data, "
        r"refused \(it would call posix.system\)",
        prepare=unsafe_checkpoint,
    ),
    Fault(
        "unexpected-crash",
        ("steps=4", "eval.every=0"),
        r"unexpected RuntimeError: something oatlike does not know about \(the traceback is in .*/run/oatlike.log\); "
        r"the run stopped at step 2, its metrics and policy \(checkpoints/last\) are in .*/run; continue from its "
        r"full-state checkpoint step_000001 with resume=",
        prepare=engine_crashes_at_the_second_step,
        kept=("metrics.jsonl", "summary.json", "oatlike.log", "checkpoints/last/model.safetensors"),
        stop_reason=r"crashed \(RuntimeError\)",
    ),
]
