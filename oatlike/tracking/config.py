"""Configs of the tracking: console, metrics files, W&B and TensorBoard (``tracking.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oatlike.schema import check, check_choice


@dataclass
class WandbConfig:
    """Weights & Biases logging.

    A run never dies for its dashboard: when ``mode=online`` cannot start (no API key, which is found without
    a network call; a server that does not answer within ``init_timeout`` seconds or refuses the key), the
    default ``fallback=offline`` logs the run offline into ``wandb/`` of the run folder and says so in one
    warning line with the ``wandb sync`` command that uploads it later; ``fallback=error`` refuses instead,
    before anything is trained, in one line. The config sent to W&B (and the command line it records) has
    anything that looks like a secret replaced by ``<redacted>``.
    """

    mode: str | None = None
    """disabled, offline (writes ./wandb in the run folder, no network) or online; null: the ``WANDB_MODE``
    environment variable if it is set, else disabled."""
    fallback: str = "offline"
    """When online W&B cannot start (no API key, server unreachable): offline (log offline, warn, sync later)
    or error (stop before training with one line)."""
    init_timeout: float = 30.0
    """Seconds to wait for the W&B server when an online run starts (then ``fallback`` applies; W&B's own
    default is 90)."""
    project: str = "oatlike"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user)."""
    group: str | None = None
    """Run group; null: in a sweep (``-m``), the sweep's folder name, so its runs are grouped."""
    name: str | None = None
    """Run name (default: the run folder's name)."""
    tags: list[str] = field(default_factory=list)
    """Run tags; in a sweep (``-m``) the job's overrides are added (``algo=sea``, ``seed=1``)."""

    def __post_init__(self) -> None:
        if self.mode is not None:
            check_choice(self.mode, ("disabled", "offline", "online"), "mode")
        check_choice(self.fallback, ("offline", "error"), "fallback")
        check(self.init_timeout > 0, "init_timeout", f"must be > 0 seconds, got {self.init_timeout}")


@dataclass
class TrackingConfig:
    """Console, files, W&B and TensorBoard."""

    progress: bool = True
    """Show the run's progress on the console: a bar with the key figures on a terminal, one line every
    log_every_steps steps or log_every_seconds seconds when the output is not a terminal (a batch job's log
    file); false: only the start and end lines."""
    log_every_steps: int = 10
    """Steps between two progress lines (when the output is not a terminal; they also go to oatlike.log);
    0: by time only."""
    log_every_seconds: float = 60.0
    """A progress line also once this many seconds passed since the previous one, however few steps; 0: by
    steps only."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """W&B settings."""
    tensorboard: bool = False
    """Also write the metrics to TensorBoard, under the same names, in <run>/tensorboard/: its run steps has
    them at the training step, its run queries at the oracle queries (needs the tensorboard extra)."""

    def __post_init__(self) -> None:
        steps = self.log_every_steps
        check(steps >= 0, "log_every_steps", f"must be >= 0 (0: by time only), got {steps}")
        check(
            self.log_every_seconds >= 0,
            "log_every_seconds",
            f"must be >= 0 seconds (0: by steps only), got {self.log_every_seconds}",
        )
