"""Configs of the explorers (``explore=passive|best_worst|selm|copo|xpo|sea|apl|bpo``; docs/algorithms.md §2-§6).

Besides its knobs, an explorer's config answers the three questions the loop asks about its schedule
(the loop runs in the driver, where no explorer lives): how many prompts make one step's pairs
(:meth:`ExploreConfig.prompt_pool_size`), whether the oracle scores every candidate first
(:attr:`ExploreConfig.scores_candidates`, for the query budget), and when π_ref takes the policy's
weights (:meth:`ExploreConfig.reference_refresh_due`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from omegaconf import MISSING

from oatlike.schema import Registry, check, check_at_least, check_choice

if TYPE_CHECKING:
    from oatlike.config import Config
    from oatlike.losses.config import LossConfig

EXPLORERS = Registry("explore")
"""The explorers by name: their schema and their :class:`~oatlike.exploration.base.Explorer` (actor and
learner sides)."""


@dataclass
class ExploreConfig:
    """How the pair sent to the oracle is chosen among the K candidates of a prompt, and what exploration
    adds to the loss (docs/algorithms.md §2-§6)."""

    name: str = MISSING
    """Explorer: passive (a random pair), best_worst (highest and lowest oracle score), selm, xpo, copo, sea,
    apl or bpo."""

    @property
    def scores_candidates(self) -> bool:
        """Whether the oracle scores every candidate before the pair is chosen (K queries per prompt)."""
        return False

    def prompt_pool_size(self, num_pairs: int) -> int:
        """Prompts the actors need to label ``num_pairs`` pairs (APL oversamples and keeps the best)."""
        return num_pairs

    def reference_refresh_due(self, step: int, synced: bool) -> bool:
        """Whether π_ref (the learner's and the actors' copies) takes the policy's weights after ``step``
        (``synced``: the behaviour policy was synced at this step)."""
        return False

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


@EXPLORERS.register("passive", "oatlike.exploration.base:PASSIVE")
@dataclass
class PassiveExploreConfig(ExploreConfig):
    """Passive exploration: a uniformly random pair of distinct candidates (online DPO / OAIF)."""

    name: str = "passive"


@EXPLORERS.register("best_worst", "oatlike.exploration.base:BEST_WORST")
@dataclass
class BestWorstExploreConfig(ExploreConfig):
    """The candidates with the highest and lowest oracle score (costs K pointwise queries per prompt)."""

    name: str = "best_worst"

    @property
    def scores_candidates(self) -> bool:
        return True


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

    @property
    def scores_candidates(self) -> bool:
        return self.selection == "best_worst"

    def reference_refresh_due(self, step: int, synced: bool) -> bool:
        return self.reference_refresh_every > 0 and step % self.reference_refresh_every == 0


@EXPLORERS.register("selm", "oatlike.exploration.selm:SELM")
@dataclass
class SELMExploreConfig(OwnResponseExploreConfig):
    """SELM (Zhang et al. 2024): optimism term ``α·β·(s_θ(y) − s_ref(y))`` on π_ref's greedy response y."""

    name: str = "selm"
    alpha: float = 1e-3
    """Optimism coefficient α (the released recipes: 1e-3 for Zephyr / Phi-3, 1e-4 for Llama-3)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 0, "alpha")

    def check_compatible(self, config: Config) -> None:
        check_reference_loss(self.name, config.loss, "puts its term on s_θ(y) − s_ref(y)")


@EXPLORERS.register("copo", "oatlike.exploration.copo:COPO")
@dataclass
class COPOExploreConfig(OwnResponseExploreConfig):
    """COPO (Bai et al. 2025): count bonus ``−α·sg(w·b)·s_θ(y)`` on π_ref's greedy response, ``b`` from a
    coin-flipping network. Released-code values for α, κ, p and the ratio clip; the spec's fixes (EOS
    features, fixed coin flips, eval-mode CFN) as defaults, the code's behaviour behind flags."""

    name: str = "copo"
    alpha: float = 1e-4
    """Optimism coefficient α (released code 1e-4; the paper's 0.1 / 0.01 is a sweep point, docs/algorithms.md §3.3)."""
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
        check_at_least(self, 0, "alpha", "bonus_scale", "bonus_exponent")
        check(self.ratio_clip > 0, "ratio_clip", f"must be > 0, got {self.ratio_clip}")
        check_at_least(self, 1, "coin_dim", "cfn_hidden_dim", "cfn_steps", "cfn_batch_size")
        check(0.0 <= self.cfn_dropout < 1.0, "cfn_dropout", f"must be in [0, 1), got {self.cfn_dropout}")
        check(self.cfn_lr > 0, "cfn_lr", f"must be > 0, got {self.cfn_lr}")
        check_choice(self.cfn_data, ("cumulative", "current_iteration"), "cfn_data")
        check_choice(self.coin_flips, ("fixed", "redraw"), "coin_flips")
        check_choice(self.feature_position, ("eos", "last"), "feature_position")

    def check_compatible(self, config: Config) -> None:
        check_reference_loss(self.name, config.loss, "weights its bonus by π_θ(y)/π_ref(y)")


@EXPLORERS.register("xpo", "oatlike.exploration.xpo:XPO")
@dataclass
class XPOExploreConfig(ExploreConfig):
    """XPO (Xie et al. 2024): one policy and one reference sample per prompt; ``α·s_θ(ỹ)`` on the reference one."""

    name: str = "xpo"
    alpha: float = 1e-5
    """Exploration coefficient α (TRL's default; oat uses 5e-6)."""

    def __post_init__(self) -> None:
        check_at_least(self, 0, "alpha")

    def check_compatible(self, config: Config) -> None:
        check(
            config.actor.num_samples == 2,
            "actor.num_samples",
            f"explore=xpo pairs one policy sample with one reference sample; set actor.num_samples=2 "
            f"(got {config.actor.num_samples})",
        )


SEA_SELECTIONS = ("eets", "baits", "uncertainty", "passive")


@EXPLORERS.register("sea", "oatlike.exploration.sea:SEA")
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
    """λ, weight of the anchor to the initial parameters (scaled by the pairs drawn / oracle queries so far)."""
    lr: float = 1e-3
    """Adam learning rate of the ensemble."""
    weight_decay: float = 5e-5
    """Adam weight decay of the ensemble."""
    sgd_steps: int = 5
    """Ensemble optimizer steps after each step's new pairs."""
    batch_size: int = 128
    """Most pairs per ensemble step, drawn without replacement from the reward buffer (B in the anchor weight)."""
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
        check_at_least(self, 1, "ensemble_size", "hidden_dim", "sgd_steps", "batch_size", "buffer_size")
        check(self.ensemble_size >= 2, "ensemble_size", "must be >= 2 (an ensemble measures disagreement)")
        check_at_least(self, 0, "enn_lambda")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(
            self.max_try is None or 2 <= self.max_try <= self.ensemble_size,
            "max_try",
            f"must be in 2..explore.ensemble_size ({self.ensemble_size}) or null",
        )
        check(0.0 <= self.max_model_data_ratio <= 1.0, "max_model_data_ratio", "must be in [0, 1]")
        check_at_least(self, 0, "burn_in_steps")
        check_choice(self.model_data_labels, ("erm", "oracle"), "model_data_labels")

    def check_compatible(self, config: Config) -> None:
        if self.selection != "passive":
            check_candidates(config, 3, f"explore=sea with selection={self.selection} chooses among the candidates")


@EXPLORERS.register("apl", "oatlike.exploration.apl:APL")
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
        check_at_least(self, 1, "prompt_pool_factor")
        check_choice(self.entropy_filter, ("highest", "lowest", "none"), "entropy_filter")

    @property
    def pool_factor(self) -> int:
        """Prompts per labelled pair (1 without the entropy filter)."""
        return 1 if self.entropy_filter == "none" else self.prompt_pool_factor

    def prompt_pool_size(self, num_pairs: int) -> int:
        return num_pairs * self.pool_factor

    def check_compatible(self, config: Config) -> None:
        check_candidates(config, 3, "explore=apl picks the pair of largest implicit-reward margin among the candidates")


@EXPLORERS.register("bpo", "oatlike.exploration.bpo:BPO")
@dataclass
class BPOExploreConfig(ExploreConfig):
    """BPO (Xu et al. 2024): the reference is the behaviour model, refreshed whenever the sampler syncs
    (``sync_every`` is the code's ``sampling_update_step``); an ensemble of LoRA adapters, merged to sample."""

    name: str = "bpo"
    ensemble_size: int = 5
    """LoRA adapters trained side by side, each with its own optimizer (1: the plain policy, no ensemble)."""
    merge: str = "linear"
    """How the adapters are merged for sampling, reference and evaluation: linear (PEFT's factor-wise merge,
    the code) or delta_mean (the exact mean of the LoRA deltas)."""

    def __post_init__(self) -> None:
        check_at_least(self, 1, "ensemble_size")
        check_choice(self.merge, ("linear", "delta_mean"), "merge")

    def reference_refresh_due(self, step: int, synced: bool) -> bool:
        return synced

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
