"""Configs of the policy model: which model, its warm start, LoRA adapters (``model=tiny|hf``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oatlike.schema import check, check_at_least, check_choice

DTYPE_NAMES = ("float32", "bfloat16", "float16")
ALL_LINEAR = "all-linear"
"""PEFT's target for every linear layer (``nn.Linear``, GPT-2's ``Conv1D``) but the output head."""


@dataclass
class WarmStartConfig:
    """Supervised warm start of the built-in tiny model on the task's imperfect demonstrations (cached)."""

    enabled: bool = True
    """Train the tiny model by SFT before aligning it (otherwise start from random weights)."""
    steps: int = 1000
    """SFT optimizer steps."""
    batch_size: int = 64
    """Demonstrations per SFT step."""
    lr: float = 1e-3
    """Peak SFT learning rate (linear warm-up over 50 steps, then linear decay to 10%)."""
    seed: int = 0
    """Seed of the SFT run (initial weights, demonstration sampling)."""

    def __post_init__(self) -> None:
        check_at_least(self, 0, "steps")
        check_at_least(self, 1, "batch_size")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")


@dataclass
class LoraConfig:
    """Optional LoRA adapters through PEFT; merged before weights go to the actors."""

    enabled: bool = False
    """Train LoRA adapters instead of all weights."""
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (``lora_alpha``)."""
    dropout: float = 0.0
    """Dropout on the LoRA input."""
    target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR])
    """Layers that get adapters: [all-linear] (PEFT's: every linear layer but the output head, on any
    architecture: q/k/v/o and gate/up/down_proj on Llama and Qwen2, c_attn, c_proj and c_fc on GPT-2), or
    short layer names such as [q_proj, v_proj]; a name that matches no linear layer is refused."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "r")
        check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        check(bool(self.target_modules), "target_modules", "must name at least one module")
        check(
            ALL_LINEAR not in self.target_modules or len(self.target_modules) == 1,
            "target_modules",
            f"{ALL_LINEAR} stands alone (it already names every linear layer), got {list(self.target_modules)}",
        )


@dataclass
class ModelConfig:
    """The policy: a pretrained causal LM (hub name or folder), or the built-in tiny Llama."""

    name: str = "tiny"
    """tiny (built-in tiny Llama, ``model=tiny``) or hf (any causal LM, ``model=hf``)."""
    pretrain: str | None = None
    """Hub name or local folder for ``from_pretrained``; ``null`` builds the tiny model (``size``)."""
    tokenizer: str | None = None
    """Tokenizer name or folder when it differs from ``pretrain``."""
    size: str = "1m"
    """Tiny model size when ``pretrain`` is null: 1m, 10m or 50m parameters."""
    dtype: str = "float32"
    """Parameter dtype: float32, bfloat16 or float16."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    """SFT warm start of the tiny model."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters (PEFT)."""
    gradient_checkpointing: bool = False
    """Trade compute for memory in the learner's forward pass."""
    trust_remote_code: bool = False
    """Run code shipped with the model, tokenizer or ``explore.backbone`` folder (``auto_map`` in its config);
    such folders are refused otherwise."""

    def __post_init__(self) -> None:
        check_choice(self.name, ("tiny", "hf"), "name")
        check(
            self.name == "tiny" or bool(self.pretrain),
            "pretrain",
            "model=hf needs model.pretrain=<hub name or local folder>",
        )
        check_choice(self.size, ("1m", "10m", "50m"), "size")
        check_choice(self.dtype, DTYPE_NAMES, "dtype")
