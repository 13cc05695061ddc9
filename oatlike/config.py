"""The experiment's config: the root :class:`Config`, its composition by Hydra, and its validation.

Every component's schema lives beside it (``oatlike/<package>/config.py``); this module assembles them
into :class:`Config` and checks what spans several of them. Hydra composes ``oatlike/conf/config.yaml``
(and the ``algo=``, ``data=`` and ``model=`` option files) on top of the schemas; the options of the
plug-in kinds (``loss=``, ``explore=``, ``oracle=``, ``engine=``, ``runner=``, ``task=``) are their
registered schemas themselves (:func:`register_configs`), so defaults are written once. A mistyped key or a
value of the wrong type fails at composition; :func:`load_config` turns the composed ``DictConfig`` into
these objects and reports a failing ``__post_init__`` check with its full key (``loss.beta``).

:func:`compose` is the one way to make a :class:`Config` from overrides outside the command line (tests,
benchmarks, notebooks): ``compose("algo=sea", "steps=50")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from oatlike.actors.config import ActorConfig, ActorsConfig
from oatlike.data.config import DataConfig
from oatlike.engines.config import ENGINES, EngineConfig
from oatlike.errors import ConfigError
from oatlike.eval.config import EvalConfig
from oatlike.exploration.config import EXPLORERS, ExploreConfig
from oatlike.learner.config import LearnerConfig
from oatlike.losses.config import LOSSES, LossConfig
from oatlike.models.config import ModelConfig
from oatlike.oracles.config import ORACLES, OracleConfig, ServeConfig
from oatlike.runners.config import RUNNERS, RayConfig, RunnerConfig
from oatlike.schema import Registry, check, check_at_least, check_choice
from oatlike.sync.config import WeightSyncConfig
from oatlike.tasks.config import TASKS, TaskConfig
from oatlike.tracking.config import TrackingConfig

CONF_DIR = Path(__file__).parent / "conf"
REGISTRIES: dict[str, Registry] = {
    "task": TASKS,
    "loss": LOSSES,
    "explore": EXPLORERS,
    "oracle": ORACLES,
    "engine": ENGINES,
    "runner": RUNNERS,
}
"""The config groups whose options are registered schemas (the other groups are YAML files in ``conf/``)."""


@dataclass
class Config:
    """An oatlike experiment."""

    algo_name: str = MISSING
    """Name of the algorithm preset (set by ``algo=...``); recorded with the run."""
    seed: int = 0
    """Seed of the run (prompt order, sampling, oracle labels, initialisation)."""
    steps: int = 200
    """Loop iterations: generate → select → label → learn."""
    sync_every: int = 1
    """Every N steps the behaviour policy takes the learner's weights; 0 never (the offline baseline)."""
    device: str = "auto"
    """cpu, cuda, or auto (cuda when available)."""
    run_dir: str | None = None
    """Run folder (metrics, config, eval generations, checkpoints); default: Hydra's output folder under runs/
    (or $OATLIKE_RUNS_DIR; in a Ray job, whose working directory Ray deletes, ~/oatlike-runs)."""
    resume: str | None = None
    """Continue a run from its newest full-state checkpoint: its folder, or auto (the run in run_dir if it has
    one, else the newest run of this config under runs/ ($OATLIKE_RUNS_DIR); none: a new run). Only keys that
    cannot change what was computed so far may be overridden (steps, eval.*, tracking.*, learner.checkpoint_every,
    ...)."""
    cache_dir: str | None = None
    """Cache of warm-start models (default: $OATLIKE_CACHE_DIR or ~/.cache/oatlike)."""
    task: TaskConfig = MISSING
    """Built-in task (``task=arithmetic``)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Prompt source."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Policy model."""
    loss: LossConfig = MISSING
    """DAP loss (``loss=dpo``; usually set by ``algo=``)."""
    explore: ExploreConfig = MISSING
    """Pair selection (``explore=passive``; usually set by ``algo=``)."""
    oracle: OracleConfig = MISSING
    """Preference oracle (``oracle=rule``)."""
    engine: EngineConfig = MISSING
    """Generation engine (``engine=hf``)."""
    actor: ActorConfig = field(default_factory=ActorConfig)
    """Sampling of candidates."""
    actors: ActorsConfig = field(default_factory=ActorsConfig)
    """The actor pool (``runner=ray``)."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    """Optimisation."""
    runner: RunnerConfig = MISSING
    """Runner (``runner=local`` or ``runner=ray``)."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Ray cluster (``runner=ray``)."""
    weight_sync: WeightSyncConfig = field(default_factory=WeightSyncConfig)
    """Weight sync and its probe."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """Console, metrics files and W&B."""
    serve: ServeConfig = field(default_factory=ServeConfig)
    """Serving the oracle over HTTP (``oatlike serve-oracle``)."""

    def __post_init__(self) -> None:
        self._check_runs()
        self._check_batches()
        self.explore.check_compatible(self)

    def _check_runs(self) -> None:
        check_at_least(self, 1, "steps")
        check(self.sync_every >= 0, "sync_every", f"must be >= 0 (0: never sync), got {self.sync_every}")
        check_choice(self.device, ("auto", "cpu", "cuda"), "device")
        if self.data.source == "task":
            check(
                self.task.name != "none",
                "data.source",
                "task=none has no prompts of its own; set data=files data.path=... or choose a task",
            )
        if self.oracle.name == "rule":
            check(
                self.task.name != "none",
                "oracle",
                "oracle=rule scores responses with a built-in task's utility; choose task=arithmetic|sorting",
            )
        if self.eval.oracle is not None and self.eval.oracle.name == "rule":
            check(
                self.task.name != "none",
                "eval.oracle",
                "eval.oracle=rule scores responses with a built-in task's utility; choose task=arithmetic|sorting",
            )
        if self.eval.target_utility is not None:
            check(
                self.task.name != "none",
                "eval.target_utility",
                "eval/utility is the built-in task's utility; task=none has none: choose a task or drop the key",
            )
        if self.model.name == "tiny":
            check(
                self.task.name != "none" or not self.model.warm_start.enabled,
                "model.warm_start.enabled",
                "the tiny model's warm start needs a built-in task; set model.pretrain=... or task=...",
            )
        if self.runner.name != "ray":
            for key, value in (("actors.num", self.actors.num), ("learner.num", self.learner.num)):
                check(value == 1, key, f"{value} needs runner=ray (the local runner runs one of each)")
            check(self.runner.mode == "sync", "runner.mode", "async needs runner=ray")
        if self.runner.mode == "async" and self.sync_every:
            check(
                self.runner.max_staleness >= max(1, self.sync_every),
                "runner.max_staleness",
                f"async with sync_every={self.sync_every} needs runner.max_staleness >= {max(1, self.sync_every)}",
            )

    def _check_batches(self) -> None:
        buffer = self.learner.buffer_size or self.actor.prompts_per_step
        check(
            self.actor.prompts_per_step % (self.learner.train_batch_size * self.learner.num) == 0,
            "actor.prompts_per_step",
            f"must be a multiple of the train batch times the learner ranks (learner.micro_batch_size × "
            f"learner.grad_accum_steps × learner.num = {self.learner.train_batch_size * self.learner.num}) "
            "so that each step ends on an optimizer step",
        )
        check(
            buffer >= self.actor.prompts_per_step,
            "learner.buffer_size",
            f"must hold at least one step's pairs (actor.prompts_per_step={self.actor.prompts_per_step})",
        )
        check(
            buffer % (self.learner.train_batch_size * self.learner.num) == 0,
            "learner.buffer_size",
            f"the buffer ({buffer} pairs) must be a multiple of the train batch times the learner ranks "
            f"(learner.micro_batch_size × learner.grad_accum_steps × learner.num = "
            f"{self.learner.train_batch_size * self.learner.num})",
        )

    @property
    def buffer_size(self) -> int:
        """Pairs kept for training (``learner.buffer_size`` or one step's pairs)."""
        return self.learner.buffer_size or self.actor.prompts_per_step


RUNS_DIR_ENV = "OATLIKE_RUNS_DIR"
"""Environment variable naming the folder under which default run folders (and sweeps) are made."""

RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray's job supervisor in the environment of a job's entrypoint (``ray job submit``)."""

RAY_JOB_RUNS_DIR = Path("~/oatlike-runs")
"""Default runs folder of a Ray job's entrypoint: its working directory is Ray's temporary copy of
``--working-dir``, which Ray deletes when the job ends."""


def runs_root() -> Path:
    """The folder under which default run folders are made: ``$OATLIKE_RUNS_DIR`` if set; else, in a Ray
    job's entrypoint, :data:`RAY_JOB_RUNS_DIR` (absolute: on the node that runs the driver); else ``runs`` in
    the working directory. Run folders named by ``run_dir`` are where they say, wherever that is."""
    import os

    if os.environ.get(RUNS_DIR_ENV):
        return Path(os.environ[RUNS_DIR_ENV]).expanduser().absolute()
    if os.environ.get(RAY_JOB_ENV):
        return RAY_JOB_RUNS_DIR.expanduser().absolute()
    return Path("runs")


def _run_dir_of(run_dir: str | None, resume: str | None, default: str) -> str:
    if run_dir is not None:
        return run_dir
    return resume if resume not in (None, "auto") else default


FOLDER_NAME_OVERRIDES = 80
"""Most characters of the overrides in a run folder's name; longer ones are cut and end in a digest."""


def folder_overrides(overrides: str, prefix: str = "-", skip: str = "") -> str:
    """Hydra's ``override_dirname`` (``loss.beta=0.2,seed=1``) made safe for one folder name: ``prefix`` and
    the overrides, without those of the keys in ``skip`` (comma-separated: what the name already shows), ``/``
    (a path's) written ``_``, cut to :data:`FOLDER_NAME_OVERRIDES` characters with a digest of the whole, so
    that two runs with different overrides never share a folder; empty without overrides."""
    import hashlib

    skipped = tuple(f"{key}=" for key in skip.split(",") if key)
    kept = [item for item in overrides.split(",") if item and not item.startswith(skipped)] if overrides else []
    text = ",".join(kept).replace("/", "_").replace(" ", "_")
    if len(text) > FOLDER_NAME_OVERRIDES:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        text = f"{text[: FOLDER_NAME_OVERRIDES - 9]}~{digest}"
    return f"{prefix}{text}" if text else ""


def register_configs() -> None:
    """Put the root schema and every registered option in Hydra's config store (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("oatlike_run_dir"):
        # the run's folder: run_dir, else the run a path-valued resume names, else the default
        OmegaConf.register_new_resolver("oatlike_run_dir", _run_dir_of)
        OmegaConf.register_new_resolver(
            "oatlike_hydra_subdir", lambda resume: ".hydra" if resume is None else ".hydra-resume"
        )
        OmegaConf.register_new_resolver("oatlike_overrides", folder_overrides)
        OmegaConf.register_new_resolver("oatlike_runs_root", lambda: str(runs_root()))
    store = ConfigStore.instance()
    store.store(name="oatlike_schema", node=Config)
    for group, registry in REGISTRIES.items():
        for option in registry:
            store.store(group=group, name=option.name, node=option.schema)


SHORTHAND_GROUPS = {"eval.oracle": "oracle@eval.oracle"}
"""``key=option`` that selects a group option into another key; Hydra spells it ``group@key=option``."""


def expand_shorthands(args: list[str]) -> list[str]:
    """``eval.oracle=judge`` → ``oracle@eval.oracle=judge`` (the oracle group, placed at eval.oracle), and
    ``key={...}`` → ``++key={...}``: a dict-valued key is set whole (Hydra would merge it into the struct
    empty dict and refuse the new sub-keys; unknown keys are still rejected by the schema check)."""
    expanded = []
    for arg in args:
        key, equals, value = arg.partition("=")
        bare = key.lstrip("+~")
        prefix = key[: len(key) - len(bare)]
        if equals and bare in SHORTHAND_GROUPS:
            arg = f"{prefix}{SHORTHAND_GROUPS[bare]}={value}"
        elif equals and value.lstrip().startswith("{") and not key.startswith(("+", "~", "-")):
            arg = "++" + arg
        expanded.append(arg)
    return expanded


def compose_dict(*overrides: str) -> DictConfig:
    """The composed (unvalidated) config of ``overrides``, as the command line would compose it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return hydra_compose("config", overrides=expand_shorthands(list(overrides)))


def compose(*overrides: str) -> Config:
    """The validated :class:`Config` of ``overrides`` (``"algo=sea"``, ``"learner.lr=1e-5"``, ...).

    Raises:
        ConfigError: naming the full key of the first bad value.
    """
    return load_config(compose_dict(*overrides))


def save_resolved_config(config: Config, run_dir: Path) -> dict[str, Any]:
    """Write ``config.yaml`` (every value resolved) to the run folder; returns it as a dict."""
    as_dict = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    assert isinstance(as_dict, dict)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(as_dict))
    return {str(k): v for k, v in as_dict.items()}


def _find_failing_key(node: DictConfig, prefix: str, error: ConfigError) -> str:
    """The full key of the field whose ``__post_init__`` raised ``error`` (searching children first)."""
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and OmegaConf.get_type(child) not in (dict, None):
            path = f"{prefix}.{key!s}" if prefix else str(key)
            try:
                OmegaConf.to_object(child)
            except ConfigError as child_error:
                if str(child_error) == str(error):
                    return _find_failing_key(child, path, error)
    return prefix


def _check_known_keys(node: DictConfig, prefix: str = "") -> None:
    """Reject keys that no schema declares (``+foo=1`` appends to a struct config without complaint)."""
    schema = OmegaConf.get_type(node)
    declared = set(getattr(schema, "__dataclass_fields__", {}))
    for key in node:
        path = f"{prefix}{key!s}"
        if declared and key not in declared:
            name = getattr(schema, "__name__", "this node")
            raise ConfigError(path, f"unknown config key; {name} has {', '.join(sorted(declared))}")
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _check_known_keys(child, path + ".")


def load_config(cfg: DictConfig) -> Config:
    """Validate a composed config and turn it into :class:`Config` objects.

    Raises:
        ConfigError: naming the full key (``loss.beta``) of the first bad value.
    """
    _check_known_keys(cfg)
    try:
        config = OmegaConf.to_object(cfg)
    except ConfigError as error:
        prefix = _find_failing_key(cfg, "", error)
        raise error.with_prefix(prefix) from None
    assert isinstance(config, Config), type(config)
    return config
