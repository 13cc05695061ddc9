"""Configs of the tracking: console, metrics files and W&B (``tracking.*``)."""

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

    mode: str = "disabled"
    """disabled, offline (writes ./wandb, no network) or online."""
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
    """Run group (for sweeps)."""
    name: str | None = None
    """Run name (default: the run folder's name)."""
    tags: list[str] = field(default_factory=list)
    """Run tags."""

    def __post_init__(self) -> None:
        check_choice(self.mode, ("disabled", "offline", "online"), "mode")
        check_choice(self.fallback, ("offline", "error"), "fallback")
        check(self.init_timeout > 0, "init_timeout", f"must be > 0 seconds, got {self.init_timeout}")


@dataclass
class TrackingConfig:
    """Console, files and W&B."""

    progress: bool = True
    """Show a progress bar with the key figures on the console."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """W&B settings."""
