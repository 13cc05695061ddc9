"""COPO — Bai et al. 2025, "Online Preference Alignment for Language Models via Count-based Exploration"
(ICLR 2025, arXiv 2501.12735; code ``Baichenjia/COPO``; docs/algorithms.md §3.3).

A UCB bonus ``α/√N(x, y)`` turned into a count-based exploration term on π_ref's own response ``y``, with
the pseudo-count ``N`` estimated by a coin-flipping network (CFN, Lobel et al. 2023, arXiv 2306.03186)::

    (4) CFN   J_cfn = E_{(x,y), c∼Unif{±1}^d} [ (1/d)·‖c − f(h(x,y))‖² ]         Eq. 18 as reconstructed
    (5) loss  ℓ_COPO = ℓ_DAP − α·sg(w·b)·s_θ(y)                                  Eq. 16, released-code form
        b = κ·((1/d)·‖f(h)‖²)^p ≈ κ/√N          w = min(exp(s_θ(y) − s_ref(y)), clip)

``h`` is the reference model's last hidden state at the end of (prompt + y); an input seen n times with
independent coin vectors has MSE optimum = their mean, and ``E[(1/d)‖mean‖²] = 1/n``. The term's gradient
``−α·w·b·∇s_θ(y)`` *raises* the likelihood of novel own responses (opposite sign to SELM / XPO).

Every factor is its own knob (α, κ, p, clip; the paper's α = 0.1 / 0.01 is 1000× the released code's
α·κ). Defaults follow the spec's fixes of the released code, each behind a flag: features at the last
non-padding token (``feature_position=last`` reads position −1 of the padded batch, as the code does),
one coin vector per example and visit (``coin_flips=redraw`` draws new targets every time an example is
trained on), the bonus from the CFN in eval mode (``cfn_bonus_dropout`` keeps dropout on), and the CFN's
data scope (``cfn_data=current_iteration`` restarts the CFN with each reference refresh, as the code does).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oatlike.exploration.base import BonusInputs, Explorer, LearnerExplorer, Need
from oatlike.exploration.config import COPOExploreConfig
from oatlike.exploration.optimism import OwnResponseActor
from oatlike.losses.config import LossConfig
from oatlike.seeding import stable_seed
from oatlike.state import snapshot


def count_bonus(cfn_outputs: torch.Tensor, scale: float, exponent: float) -> torch.Tensor:
    """``[B]`` ``b = κ·((1/d)·‖f(h)‖²)^p``: with p = 1/2 and κ = 1, ``1/√N`` for a CFN fitted to N visits."""
    return scale * cfn_outputs.pow(2).mean(-1).pow(exponent)


def copo_bonus(
    policy_own: torch.Tensor,
    reference_own: torch.Tensor,
    bonus: torch.Tensor,
    alpha: float,
    ratio_clip: float,
) -> torch.Tensor:
    """``[B]`` COPO's count term ``−α·sg(w·b)·s_θ(y)`` with ``w = min(exp(s_θ(y) − s_ref(y)), clip)``.

    The importance weight ``w`` estimates ``E_{y∼π_θ}`` from the π_ref sample; its gradient is cut, so the
    term's gradient is the importance-sampled policy gradient ``−α·w·b·∇s_θ(y)`` (code: ``copo_trainer.py``).
    """
    weight = torch.exp(policy_own.detach() - reference_own).clamp(max=ratio_clip)
    return -alpha * (weight * bonus).detach() * policy_own


def cfn_loss(outputs: torch.Tensor, coins: torch.Tensor) -> torch.Tensor:
    """The CFN objective (Eq. 18): ``(1/d)·‖c − f(h)‖²`` averaged over the batch (mean over B and d)."""
    return F.mse_loss(outputs, coins)


class CoinFlipNetwork(nn.Module):
    """``Dropout → Linear(H, hidden) → LeakyReLU(0.01) → Linear(hidden, d)`` (``CountValueHead`` in the code)."""

    def __init__(self, feature_dim: int, coin_dim: int = 20, hidden_dim: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(feature_dim, hidden_dim),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden_dim, coin_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class PseudoCounter:
    """A CFN with its data: features of visited (x, y), their coin-flip targets, and its optimizer."""

    def __init__(
        self, feature_dim: int, config: COPOExploreConfig, generator: torch.Generator, max_examples: int = 200_000
    ) -> None:
        self.config = config
        self.generator = generator
        self.max_examples = max_examples
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            self.network = CoinFlipNetwork(feature_dim, config.coin_dim, config.cfn_hidden_dim, config.cfn_dropout)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.cfn_lr)
        self.features = torch.zeros(0, feature_dim)
        self.coins = torch.zeros(0, config.coin_dim)

    def coin_flips(self, count: int) -> torch.Tensor:
        """``[count, d]`` Rademacher vectors (±1)."""
        return torch.randint(0, 2, (count, self.config.coin_dim), generator=self.generator).float() * 2 - 1

    def add(self, features: torch.Tensor) -> None:
        """Record one visit of each row; with fixed coin flips its target is drawn now, once."""
        self.features = torch.cat([self.features, features.float().cpu()])[-self.max_examples :]
        self.coins = torch.cat([self.coins, self.coin_flips(len(features))])[-self.max_examples :]

    def train(self, steps: int, batch_size: int) -> float:
        """``steps`` Adam steps on random mini-batches of the visits; the mean CFN loss."""
        self.network.train()
        losses = []
        with torch.random.fork_rng():  # the input dropout draws from the counter's own generator: state, too
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=self.generator)))
            for _ in range(steps):
                losses.append(self._step(batch_size))
        return sum(losses) / max(len(losses), 1)

    def _step(self, batch_size: int) -> float:
        """One Adam step on ``batch_size`` visits drawn at random; the CFN loss."""
        rows = torch.randperm(len(self.features), generator=self.generator)[:batch_size]
        redraw = self.config.coin_flips == "redraw"  # the released sampler: fresh targets at every visit
        targets = self.coin_flips(len(rows)) if redraw else self.coins[rows]
        loss = cfn_loss(self.network(self.features[rows]), targets)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return snapshot(
            {
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "features": self.features,
                "coins": self.coins,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(snapshot(state["optimizer"]))
        self.features, self.coins = state["features"].clone(), state["coins"].clone()

    @torch.no_grad()
    def outputs(self, features: torch.Tensor) -> torch.Tensor:
        """``f(h)`` for ``[B, H]`` features (eval mode unless ``cfn_bonus_dropout``), on their device."""
        self.network.train(self.config.cfn_bonus_dropout)
        return self.network(features.float().cpu()).to(features.device)


class COPOLearner(LearnerExplorer):
    """The CFN count term on π_ref's greedy response; the CFN learns on the learner, from the features of
    the reference pass."""

    needs = frozenset({Need.OWN_LOGPS, Need.OWN_FEATURES})

    def __init__(self, config: COPOExploreConfig, loss: LossConfig, seed: int) -> None:
        super().__init__(config, loss, seed)
        self.feature_position = config.feature_position
        self.config = config
        self.generator = torch.Generator().manual_seed(stable_seed(seed, "copo-cfn"))
        self.counter: PseudoCounter | None = None
        self.iteration = 0

    def learner_update(self, cached: dict[str, torch.Tensor], reference_version: int) -> None:
        """Algorithm 1, step (4): fit the CFN to the visits so far (this iteration's, or all of them)."""
        features = cached["own_features"]
        new_iteration = reference_version != self.iteration
        self.iteration = reference_version
        if self.counter is None or (new_iteration and self.config.cfn_data == "current_iteration"):
            self.counter = PseudoCounter(features.shape[-1], self.config, self.generator)
        self.counter.add(features)
        loss = self.counter.train(self.config.cfn_steps, self.config.cfn_batch_size)
        self.log(cfn_loss=loss, cfn_examples=len(self.counter.features))

    def state_dict(self) -> dict[str, Any]:
        counter = None
        if self.counter is not None:
            counter = {"feature_dim": self.counter.features.shape[-1], **self.counter.state_dict()}
        return {"generator": self.generator.get_state().clone(), "iteration": self.iteration, "counter": counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = state["iteration"]
        self.counter = None
        if state["counter"] is not None:
            self.counter = PseudoCounter(state["counter"]["feature_dim"], self.config, self.generator)
            self.counter.load_state_dict(state["counter"])
        self.generator.set_state(state["generator"])  # last: building the counter drew from it

    def bonus(self, inputs: BonusInputs) -> torch.Tensor:
        assert inputs.policy_own is not None and inputs.reference_own is not None and inputs.own_features is not None
        if self.counter is None:
            raise RuntimeError("COPO's bonus needs a trained CFN: learner_update runs before the policy update")
        config = self.config
        b = count_bonus(self.counter.outputs(inputs.own_features), config.bonus_scale, config.bonus_exponent)
        term = copo_bonus(inputs.policy_own, inputs.reference_own, b, config.alpha, config.ratio_clip)
        ratio = torch.exp(inputs.policy_own.detach() - inputs.reference_own)
        self.log(
            count_bonus=float(b.mean()),
            importance_weight=float(ratio.clamp(max=config.ratio_clip).mean()),
            ratio_clipped_fraction=float((ratio > config.ratio_clip).float().mean()),
            bonus=float(term.detach().mean()),
        )
        return term


COPO = Explorer(OwnResponseActor, COPOLearner)
