"""Configs of the policy model: which model, its warm start, LoRA adapters (``model=tiny|hf``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from oatlike.schema import check, check_at_least, check_choice

DTYPE_NAMES = ("float32", "bfloat16", "float16")
ALL_LINEAR = "all-linear"
"""PEFT's target for every linear layer (``nn.Linear``, GPT-2's ``Conv1D``) but the output head."""


@dataclass(frozen=True)
class WarmStartRecipe:
    """The SFT settings of one tiny size's warm start, used where ``model.warm_start`` leaves them null.

    Each size has its own because one recipe cannot fit all three: the 1M model needs its 1,000 steps, while
    the same 1,000 steps of 64 demonstrations cost the 10M model half an hour and the 50M model an hour and a
    half on 2 cores. Theirs are what fits a few minutes (10M) and under 15 minutes (50M); at that cost they
    stay below the 1M model's quality (docs/benchmarks.md, "Warm starts", has the measurements).
    ``seconds_per_step`` is what one step cost, measured on one thread of the 2-core machine at ``batch_size``
    (50M: extrapolated); it is only used to say, before a build, how long it will take."""

    steps: int
    batch_size: int
    lr: float
    seconds_per_step: float


WARM_START_RECIPES: dict[str, WarmStartRecipe] = {
    "1m": WarmStartRecipe(steps=1000, batch_size=64, lr=1e-3, seconds_per_step=0.05),
    "10m": WarmStartRecipe(steps=400, batch_size=32, lr=2e-3, seconds_per_step=0.53),
    "50m": WarmStartRecipe(steps=300, batch_size=32, lr=1e-3, seconds_per_step=1.24),
}
"""The warm-start recipe of each tiny size (the sizes themselves: :data:`oatlike.models.tiny.TINY_SIZES`)."""

TINY_SIZE_NAMES = tuple(WARM_START_RECIPES)


@dataclass
class WarmStartConfig:
    """Supervised warm start of the built-in tiny model on the task's imperfect demonstrations (cached).

    ``steps``, ``batch_size`` and ``lr`` left null take the model size's recipe (:data:`WARM_START_RECIPES`);
    :meth:`resolved` fills them in before anything is built or hashed, so the cached folder is named by the
    numbers actually used and an explicit value that equals the recipe's finds the same folder."""

    enabled: bool = True
    """Train the tiny model by SFT before aligning it (otherwise start from random weights)."""
    steps: int | None = None
    """SFT optimizer steps; null: the size's recipe (1m: 1000, 10m: 400, 50m: 300)."""
    batch_size: int | None = None
    """Demonstrations per SFT step; null: the size's recipe (1m: 64, 10m: 32, 50m: 32)."""
    lr: float | None = None
    """Peak SFT learning rate (linear warm-up over 50 steps, then linear decay to 10%); null: the size's recipe
    (1m: 0.001, 10m: 0.002, 50m: 0.001)."""
    seed: int = 0
    """Seed of the SFT run (initial weights, demonstration sampling)."""

    def __post_init__(self) -> None:
        if self.steps is not None:
            check_at_least(self, 0, "steps")
        if self.batch_size is not None:
            check_at_least(self, 1, "batch_size")
        if self.lr is not None:
            check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")

    def resolved(self, size: str) -> WarmStartConfig:
        """This config with every null SFT setting replaced by the recipe of tiny size ``size``."""
        recipe = WARM_START_RECIPES[size]
        return dataclasses.replace(
            self,
            steps=recipe.steps if self.steps is None else self.steps,
            batch_size=recipe.batch_size if self.batch_size is None else self.batch_size,
            lr=recipe.lr if self.lr is None else self.lr,
        )


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
        check_choice(self.size, TINY_SIZE_NAMES, "size")
        check_choice(self.dtype, DTYPE_NAMES, "dtype")
