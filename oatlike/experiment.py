"""An experiment end to end: a run folder, its tracker, the runner's roles and the loop (:mod:`oatlike.loop`),
fresh or continued from a full-state checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oatlike import checkpoint
from oatlike.builder import Builder
from oatlike.config import Config, save_resolved_config
from oatlike.data.prompts import PromptStream
from oatlike.errors import ConfigError
from oatlike.loop import Loop
from oatlike.runners.config import RUNNERS
from oatlike.tracking.tracker import Tracker


def build_loop(config: Config, run_dir: Path, resume: Path | None = None) -> Loop:
    """The run of ``config`` ready to start: its roles built by its runner, its folder and tracker open;
    ``resume`` (a full-state checkpoint folder of ``run_dir``) restores the run's state into it."""
    if resume is None and (run_dir / "metrics.jsonl").exists():
        raise ConfigError(
            "run_dir",
            f"{run_dir} already holds a run; continue it with resume={run_dir} (or resume=auto), "
            "or choose another run_dir",
        )
    state = checkpoint.load(resume) if resume is not None else None
    run_dir.mkdir(parents=True, exist_ok=True)
    builder = Builder(config, progress=config.tracking.progress)
    train_prompts, eval_prompts = builder.prompt_sets
    config_dict = save_resolved_config(config, run_dir)
    tracker = Tracker(run_dir, config.tracking, config_dict, config.steps, None if state is None else state["tracker"])
    try:
        roles = RUNNERS.get(config.runner.name).implementation()(builder, run_dir, tracker.message)
    except BaseException:
        tracker.close()
        raise
    data = {
        "misc/train_prompts": len(train_prompts),
        "misc/eval_prompts": len(eval_prompts),
        "misc/prompts_skipped_too_long": train_prompts.skipped_too_long + eval_prompts.skipped_too_long,
        "misc/prompts_skipped_empty": train_prompts.skipped_empty + eval_prompts.skipped_empty,
        "misc/policy": builder.policy_path,
    }
    stream = PromptStream(train_prompts.prompts, seed=config.seed)
    loop = Loop(config, roles, stream, tracker, run_dir, data, config_dict)
    if state is not None:
        try:
            loop.load_state_dict(state["loop"])
        except BaseException:
            roles.close()
            tracker.close()
            raise
    return loop


def run(config: Config, run_dir: Path, resume: Path | None = None) -> dict[str, Any]:
    """Run the experiment of ``config`` with its runner, writing to ``run_dir`` (continuing the run saved in
    the full-state checkpoint ``resume``); returns the summary."""
    return build_loop(config, run_dir, resume).run()
