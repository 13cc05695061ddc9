"""Full-state checkpoints: everything a run needs to continue exactly, written atomically.

A full-state checkpoint is a folder ``checkpoints/state/step_NNNNNN/`` of the run folder:

* ``state.pt``: the loop's state between two steps (:meth:`oatlike.loop.Loop.state_dict`: the step, the
  counters, the prompt stream's position, every actor's random streams, oracle counters and explorer state,
  every learner rank's weights, optimizer partition, schedule, references, buffer and random stream) and the
  tracker's (elapsed time, W&B run id). Only tensors, numbers, strings and containers of them, plus the few
  DeepSpeed classes its optimizer states hold (:func:`oatlike.learner.ds.state_classes`), so it loads with
  ``torch.load(weights_only=True)``: a checkpoint from elsewhere cannot run code.
* ``config.yaml``: the run's config, every value resolved (what a resumed run is rebuilt from).

It is written to ``step_NNNNNN.tmp`` and renamed when complete, so a run killed while saving leaves the
previous checkpoint intact and no half-written one; ``learner.keep_checkpoints`` bounds how many are kept.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from oatlike.errors import ConfigError, first_line, writing

STATE_DIR = Path("checkpoints") / "state"
_STEP = re.compile(r"^step_(\d{6,})$")


def state_folders(run_dir: Path) -> list[Path]:
    """The complete full-state checkpoints of ``run_dir``, oldest first."""
    root = run_dir / STATE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(_STEP.match(p.name).group(1)))  # type: ignore[union-attr]


def latest(run_dir: Path) -> Path | None:
    """The newest complete full-state checkpoint of ``run_dir``, or ``None``."""
    folders = state_folders(run_dir)
    return folders[-1] if folders else None


def save(run_dir: Path, step: int, state: dict[str, Any], config: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of ``step`` atomically; keep the newest ``keep`` (0: all); returns its folder.

    A write that fails (a full disk) leaves no partial folder and raises :class:`~oatlike.errors.StorageError`.
    """
    root = run_dir / STATE_DIR
    folder = root / f"step_{step:06d}"
    scratch = folder.with_name(folder.name + ".tmp")
    with writing(folder, "the full-state checkpoint"):
        try:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            with open(scratch / "state.pt", "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            (scratch / "config.yaml").write_text(OmegaConf.to_yaml(config))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(scratch, folder)
    if keep:
        for old in state_folders(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load(folder: Path) -> dict[str, Any]:
    """The state saved in ``folder`` (tensors and plain data only; see the module doc)."""
    from oatlike.learner.ds import state_classes

    path = folder / "state.pt"
    try:
        with torch.serialization.safe_globals(state_classes()):
            state: dict[str, Any] = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:  # what the safe loader refuses: never unpickled
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", str(error))
        refused = f"it would call {found[1]}" if found else first_line(error)
        raise ConfigError("resume", f"{path} holds more than tensors and plain data, refused ({refused})") from None
    except (OSError, RuntimeError, EOFError) as error:
        raise ConfigError(
            "resume",
            f"{path} cannot be read ({first_line(error)}): it is damaged; remove {folder} to resume the "
            "checkpoint before it",
        ) from None
    return state
