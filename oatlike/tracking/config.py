"""Configs of the tracking: console, metrics files and W&B (``tracking.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oatlike.schema import check_choice


@dataclass
class WandbConfig:
    """Weights & Biases logging."""

    mode: str = "disabled"
    """disabled, offline (writes ./wandb, no network) or online."""
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


@dataclass
class TrackingConfig:
    """Console, files and W&B."""

    progress: bool = True
    """Show a progress bar with the key figures on the console."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """W&B settings."""
