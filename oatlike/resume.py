"""``resume=``: which run to continue, and the config it continues with.

``resume=RUN_DIR`` continues the run in ``RUN_DIR`` from its newest full-state checkpoint
(:mod:`oatlike.checkpoint`); ``resume=auto`` continues the run in ``run_dir`` when it has one (the
recipe for a requeued job: ``oatlike run_dir=/scratch/run resume=auto``), otherwise the newest run of the
same config under ``runs/``, otherwise starts a new one. The resumed run's config is the checkpoint's;
the command line may change only the keys in :data:`RESUMABLE`, which cannot change what was computed
so far (how long to go on, evaluation, tracking, checkpointing, where the workers run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from oatlike import checkpoint
from oatlike.config import REGISTRIES, Config, load_config
from oatlike.errors import ConfigError
from oatlike.oracles.config import ORACLES

RESUMABLE = (
    "steps",
    "resume",
    "run_dir",
    "eval.every",
    "eval.every_queries",
    "eval.target_utility",
    "eval.save_generations",
    "eval.max_new_tokens",
    "tracking.",
    "learner.checkpoint_every",
    "learner.keep_checkpoints",
    "oracle.max_queries",
    "ray.",
    "actors.num_cpus",
    "actors.num_gpus",
    "actors.resources",
    "actors.max_restarts",
    "learner.num_cpus",
    "learner.num_gpus",
    "learner.resources",
    "weight_sync.timeout_seconds",
    "cache_dir",
)
"""Keys a resumed run may override (a trailing dot: every key below it)."""


def override_key(override: str) -> str:
    """The key an override sets (``+a.b=1`` → ``a.b``; ``oracle@eval.oracle=rule`` → ``eval.oracle``)."""
    key = override.partition("=")[0].lstrip("+~")
    return key.partition("@")[2] or key


def check_resumable(overrides: list[str]) -> None:
    """Every override names a key in :data:`RESUMABLE`, or a one-line :class:`ConfigError` names it."""
    for override in overrides:
        key = override_key(override)
        if not (key in RESUMABLE or any(key.startswith(p) for p in RESUMABLE if p.endswith("."))):
            raise ConfigError(
                key,
                "cannot be changed when resuming: the run so far was computed with its saved value "
                f"(resumable: {', '.join(RESUMABLE)}); start a new run to change it",
            )


def saved_config(folder: Path) -> Config:
    """The typed config of a checkpoint: its ``config.yaml`` on the schemas of the options it names."""
    saved = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    assert isinstance(saved, dict)
    base = OmegaConf.structured(Config)
    for group, registry in REGISTRIES.items():
        base[group] = OmegaConf.structured(registry.get(saved[group]["name"], group).schema)
    if saved["eval"].get("oracle"):
        base.eval.oracle = OmegaConf.structured(ORACLES.get(saved["eval"]["oracle"]["name"], "eval.oracle").schema)
    merged = OmegaConf.merge(base, saved)
    assert isinstance(merged, DictConfig)
    return load_config(merged)


def resumed_config(folder: Path, overrides: list[str]) -> Config:
    """The checkpoint's config with the (resumable) ``overrides`` applied."""
    check_resumable(overrides)
    config = OmegaConf.structured(saved_config(folder))
    settable = [o.lstrip("+") for o in overrides if "=" in o and not override_key(o).startswith(("resume", "run_dir"))]
    merged = OmegaConf.merge(config, OmegaConf.from_dotlist(settable))
    assert isinstance(merged, DictConfig)
    return load_config(merged)


def comparable(config: Config) -> dict[str, Any]:
    """The config without the resumable keys: two runs with equal ones are the same experiment."""
    as_dict: dict[str, Any] = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)  # type: ignore[assignment]
    for key in RESUMABLE:
        node: Any = as_dict
        *parents, leaf = key.rstrip(".").split(".")
        for parent in parents:
            node = node.get(parent, {})
        if isinstance(node, dict):
            node.pop(leaf, None)
    return as_dict


def locate(config: Config, run_dir: Path, runs_root: Path = Path("runs")) -> tuple[Path, Path] | None:
    """``(run folder, checkpoint folder)`` that ``config.resume`` names, or ``None`` for a new run
    (``resume=auto`` without ``run_dir`` looks under ``runs_root``: :func:`oatlike.config.runs_root`)."""
    assert config.resume is not None
    if config.resume != "auto":
        folder = Path(config.resume).expanduser()
        found = checkpoint.latest(folder)
        if found is None:
            raise ConfigError("resume", f"{folder} holds no full-state checkpoint (checkpoints/state/step_*) to resume")
        return folder, found
    found = checkpoint.latest(run_dir)
    if found is not None:
        return run_dir, found
    if config.run_dir is not None:
        return None  # a new run in run_dir (a requeued job's first start)
    wanted = comparable(config)
    candidates = [
        checkpoint.latest(state.parents[1])
        for state in runs_root.glob("**/checkpoints/state")
        if state.is_dir() and state.parents[1] != run_dir
    ]
    matching = [c for c in candidates if c is not None and comparable(saved_config(c)) == wanted]
    if not matching:
        return None
    newest = max(matching, key=lambda c: (c / "state.pt").stat().st_mtime)
    return newest.parents[2], newest
