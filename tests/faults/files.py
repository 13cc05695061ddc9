"""Filesystem faults: a run folder that cannot be made, checkpoints that cannot be written, a full disk."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from transformers import PreTrainedModel

from faults.harness import Fault
from oatlike.errors import unwritable


def run_dir_under_a_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (folder / "taken").write_text("a file where the run folder would go\n")
    return [f"run_dir={folder / 'taken' / 'run'}"]


def checkpoints_is_a_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "run").mkdir()
    (folder / "run" / "checkpoints").write_text("not a folder\n")


def disk_full_at_the_final_save(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(self: PreTrainedModel, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", no_space)


READ_ONLY = Path("/sys/oatlike-run")


def read_only_cache(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OATLIKE_CACHE_DIR", "/sys/oatlike-cache")  # nothing built there: the warm start must be


CASES = [
    Fault(
        "run-dir-under-a-file",
        ("steps=2",),
        r"^run_dir: cannot write the run folder '.*taken/run': "
        r".*taken is a file; choose another run_dir$",
        prepare=run_dir_under_a_file,
        status=2,
    ),
    Fault(
        "run-dir-read-only",
        ("steps=2", f"run_dir={READ_ONLY}"),
        r"^run_dir: cannot write the run folder '/sys/oatlike-run': /sys is not writable",
        status=2,
        marks=(pytest.mark.skipif(unwritable(READ_ONLY) is None, reason="/sys is writable here"),),
    ),
    Fault(
        "checkpoints-cannot-be-written",
        ("steps=4", "eval.every=0", "learner.checkpoint_every=2"),
        r"cannot write the full-state checkpoint to .*checkpoints/state/step_000002 \(Not a directory\); free disk "
        r"space or make the folder writable; the run stopped at step 3, its metrics",
        prepare=checkpoints_is_a_file,
        kept=("metrics.jsonl", "summary.json"),
        stop_reason="error",
    ),
    Fault(
        "disk-full-at-the-final-save",
        ("steps=2", "eval.every=0"),
        r"cannot write the policy to .*checkpoints/final \(No space left on device\).*the run's 2 steps and metrics",
        prepare=disk_full_at_the_final_save,
        kept=("metrics.jsonl", "summary.json", "checkpoints/state/step_000002/state.pt"),
        stop_reason="error",
    ),
    Fault(
        "cache-read-only",
        ("steps=2",),
        r"^cannot write the model cache to /sys/oatlike-cache/(tokenizers|models) \(.+\); set OATLIKE_CACHE_DIR to "
        r"a writable folder",
        prepare=read_only_cache,
        marks=(pytest.mark.skipif(unwritable(Path("/sys/oatlike-cache")) is None, reason="/sys is writable here"),),
    ),
]
