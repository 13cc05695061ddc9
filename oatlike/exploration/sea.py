"""SEA — Liu et al. 2024, "Sample-Efficient Alignment for LLMs" (arXiv 2411.01493; code ``sail-sg/oat``;
docs/algorithms.md §4.2).

Alignment as a contextual dueling bandit: an epistemic reward model (ERM) — an ensemble of K small MLPs
on frozen features ``φ(x, y)`` — keeps a posterior over rewards, and Thompson sampling over it picks the
pair the oracle sees::

    R[k, i, j] = r_k(φ(x_i, y_ij))                      rewards of member k for prompt i, candidate j
    pair_i     = EETS | BAITS | uncertainty | passive(R)   (rules below; code: oat/rm/model.py)
    label      = oracle, or for model-generated pairs (Dyna, after a burn-in) the ERM's own prediction
    L_ENN      = (1/(K·B)) Σ_k Σ_b m_b·softplus(−(r_k(y_b⁺) − r_k(y_b⁻))) + λ·(B/Q_t)·mean((θ − θ_0)²)

``B`` is the number of pairs drawn for the step (at most ``batch_size``: fewer while the reward buffer is
smaller) and ``Q_t`` counts the pairs the oracle actually labelled (the anchor to the initial parameters
fades as data grows). The features come from a frozen backbone (``explore.backbone``; by default the reference policy's
last hidden state at the response's last token). The ERM lives with the actor that selects with it:
``update`` trains it on each step's newly labelled pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oatlike.exploration.base import ActorExplorer, Explorer, Need, Selection, random_pairs
from oatlike.exploration.config import SEAExploreConfig
from oatlike.seeding import stable_seed
from oatlike.state import snapshot
from oatlike.types import PreferenceBatch, Rollout

MODEL_DATA = "model_data"
"""``rollout.extras`` key: ``[M]`` True for model-generated (Dyna) pairs."""
ERM_MEAN_REWARDS = "erm_mean_rewards"
"""``rollout.extras`` key: ``[M, N]`` ensemble-mean reward of every candidate at selection time."""


class EnsembleRewardModel(nn.Module):
    """K independent MLPs ``r_k(φ) = W3·relu(W2·relu(W1·φ + b1) + b2) + b3``, batched as ensemble layers.

    Weights start from ``N(0, (1/(2√fan_in))²)`` and biases from 0 (oat's effective init); the initial
    parameters ``θ_0`` are kept for the anchor regulariser.
    """

    def __init__(self, feature_dim: int, ensemble_size: int = 20, hidden_dim: int = 128, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        shapes = [(feature_dim, hidden_dim), (hidden_dim, hidden_dim), (hidden_dim, 1)]

        def normal(fan_in: int, fan_out: int) -> nn.Parameter:
            std = 1.0 / (2.0 * fan_in**0.5)
            return nn.Parameter(torch.randn(ensemble_size, fan_in, fan_out, generator=generator) * std)

        self.weights = nn.ParameterList([normal(fan_in, fan_out) for fan_in, fan_out in shapes])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(ensemble_size, 1, out)) for _, out in shapes])
        for index, parameter in enumerate(self.parameters()):
            self.register_buffer(f"initial_{index}", parameter.detach().clone())

    @property
    def ensemble_size(self) -> int:
        return int(self.weights[0].shape[0])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[E, N]`` reward of every member for ``[N, d]`` features."""
        hidden = features.float().unsqueeze(0).expand(self.ensemble_size, -1, -1)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if layer < len(self.weights) - 1:
                hidden = F.relu(hidden)
        return hidden.squeeze(-1)

    def drift(self) -> torch.Tensor:
        """Mean over all scalar parameters of ``(θ − θ_0)²``."""
        initial = [getattr(self, f"initial_{i}") for i in range(len(list(self.parameters())))]
        squared = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.parameters(), initial, strict=True))
        return squared / sum(p.numel() for p in self.parameters())


def enn_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    mask: torch.Tensor,
    drift: torch.Tensor,
    enn_lambda: float,
    batch_size: int,
    total_queries: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ERM's ``(Bradley–Terry part, anchor part)``: ``mean_{k,b} m_b·softplus(−(r⁺ − r⁻))`` over ``[E, B]``
    rewards (masked entries stay in the denominator) and ``λ·(B/Q_t)·drift`` (oat ``EnnEETS.learn``), with
    ``batch_size`` the B pairs the rewards are of."""
    bradley_terry = (F.softplus(-(chosen - rejected)) * mask).mean()
    return bradley_terry, enn_lambda * batch_size / max(total_queries, 1) * drift


def preference_logit_variance(rewards: np.ndarray) -> np.ndarray:
    """``[M, N, N]`` unbiased variance over members of the preference logit ``R[k,i,a] − R[k,i,b]``."""
    logits = rewards[:, :, :, None] - rewards[:, :, None, :]
    return logits.var(axis=0, ddof=1)


def eets_pairs(rewards: np.ndarray, member_orders: np.ndarray, max_try: int, allow_second_best: bool) -> np.ndarray:
    """E&E double Thompson sampling: ``y1`` is the best candidate of the first member of each prompt's order,
    ``y2`` that of the first later member (up to ``max_try``) that disagrees; optionally a member's second
    best; ``y2 = y1`` when all agree. ``member_orders`` is ``[M, E]``."""
    best = rewards.argmax(axis=2)  # [E, M]
    second_best = np.argsort(rewards, axis=2, kind="stable")[:, :, -2]
    pairs = []
    for i, order in enumerate(member_orders):
        order = order[:max_try]
        first = int(best[order[0], i])
        second = next((int(best[k, i]) for k in order[1:] if best[k, i] != first), None)
        if second is None and allow_second_best:
            second = next((int(second_best[k, i]) for k in order if second_best[k, i] != first), None)
        pairs.append((first, first if second is None else second))
    return np.array(pairs, dtype=np.int64)


def baits_pairs(rewards: np.ndarray, first_members: np.ndarray) -> np.ndarray:
    """BAI Thompson sampling: ``y1`` best of one random member; ``y2 = argmax_j Var_k(R[k,y1] − R[k,j])``."""
    rows = np.arange(rewards.shape[1])
    first = rewards[first_members, rows].argmax(axis=-1)
    second = preference_logit_variance(rewards)[rows, first].argmax(axis=-1)
    return np.stack([first, second], axis=1).astype(np.int64)


def uncertainty_pairs(rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure exploration: the pair of largest preference-logit variance (first in row-major order) and it."""
    variance = preference_logit_variance(rewards)
    num_candidates = variance.shape[-1]
    flat = variance.reshape(len(variance), -1)
    index = flat.argmax(axis=-1)
    return np.stack([index // num_candidates, index % num_candidates], axis=1), flat.max(axis=-1)


def model_rollout_pair(member_rewards: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """Dyna: the pair one member is surest about (largest ``|r_a − r_b|``, random tie-break), winner first."""
    margins = member_rewards[:, None] - member_rewards[None, :]
    ties = np.argwhere(np.abs(margins) == np.abs(margins).max())
    a, b = (int(x) for x in ties[rng.integers(len(ties))])
    return (a, b) if margins[a, b] > 0 else (b, a)


class SEAActor(ActorExplorer):
    """Thompson sampling over an epistemic reward model, with optional model-generated pairs."""

    def __init__(self, config: SEAExploreConfig, seed: int) -> None:
        super().__init__(config, seed)
        self.config = config
        self.seed = seed
        self.needs = frozenset(
            {Need.CANDIDATE_FEATURES} | ({Need.REFERENCE_ENGINE} if config.backbone is None else set())
        )
        self.generator = torch.Generator().manual_seed(stable_seed(seed, "sea-erm"))
        self.model: EnsembleRewardModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.pair_features = torch.zeros(0)
        self.pair_masks = torch.zeros(0)
        self.queries = 0
        self.updates = 0

    def _ensure_model(self, feature_dim: int) -> EnsembleRewardModel:
        if self.model is None:
            config = self.config
            seed = stable_seed(self.seed, "sea-erm-init")
            self.model = EnsembleRewardModel(feature_dim, config.ensemble_size, config.hidden_dim, seed)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            self.pair_features = torch.zeros(0, 2, feature_dim)
        return self.model

    @torch.no_grad()
    def rewards(self, features: np.ndarray) -> np.ndarray:
        """``[E, M, N]`` rewards of every member for ``[M, N, d]`` features."""
        num_prompts, num_candidates, dim = features.shape
        model = self._ensure_model(dim)
        flat = model(torch.as_tensor(features).reshape(-1, dim))
        return flat.reshape(-1, num_prompts, num_candidates).numpy()

    def select(self, rollout: Rollout, scores: np.ndarray | None, rng: np.random.Generator) -> Selection:
        rewards = self.rewards(rollout.extras["features"])
        pairs = self._thompson_pairs(rewards, rng)
        model_data = np.zeros(len(rollout), dtype=bool)
        if self.config.model_rollout and self.updates >= self.config.burn_in_steps:
            model_data = self._model_rollout(rewards, pairs, rng)
        rows = np.arange(len(rollout))
        mean = rewards.mean(axis=0)
        margin = mean[rows, pairs[:, 0]] - mean[rows, pairs[:, 1]]
        rollout.extras[MODEL_DATA] = model_data
        rollout.extras[ERM_MEAN_REWARDS] = mean
        self.log(
            disagreement=float(preference_logit_variance(rewards)[rows, pairs[:, 0], pairs[:, 1]].mean()),
            clash_fraction=float((pairs[:, 0] == pairs[:, 1]).mean()),
            model_pairs=int(model_data.sum()),
        )
        by_erm = self.config.model_data_labels == "erm" and model_data.any()
        preference = np.where(model_data, 1.0 / (1.0 + np.exp(-margin)), np.nan) if by_erm else None
        return Selection(pairs, preference)

    def _thompson_pairs(self, rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        config, (members, num_prompts, num_candidates) = self.config, rewards.shape
        if config.selection == "eets":
            orders = np.stack([rng.permutation(members) for _ in range(num_prompts)])
            pairs = eets_pairs(rewards, orders, config.max_try or members, config.allow_second_best)
        elif config.selection == "baits":
            pairs = baits_pairs(rewards, np.asarray(rng.integers(members, size=num_prompts)))
        elif config.selection == "uncertainty":
            pairs, _ = uncertainty_pairs(rewards)
        else:
            pairs = random_pairs(num_prompts, num_candidates, rng)
        if config.random_second_on_clash:  # oat's exp_rnd_sample: a random different candidate
            for row in np.flatnonzero(pairs[:, 0] == pairs[:, 1]):
                pairs[row, 1] = rng.choice([j for j in range(num_candidates) if j != pairs[row, 0]])
        return pairs

    def _model_rollout(self, rewards: np.ndarray, pairs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Replace a random ``max_model_data_ratio`` of the prompts' pairs by one random member's surest pair."""
        num_prompts = rewards.shape[1]
        model_data = np.zeros(num_prompts, dtype=bool)
        model_data[rng.permutation(num_prompts)[: int(num_prompts * self.config.max_model_data_ratio)]] = True
        for row in np.flatnonzero(model_data):
            pairs[row] = model_rollout_pair(rewards[rng.integers(rewards.shape[0]), row], rng)
        return model_data

    def update(self, rollout: Rollout, chosen_first: np.ndarray, batch: PreferenceBatch) -> None:
        """Train the ERM on the step's oracle-labelled pairs (model-generated and identical pairs masked)."""
        features, model_data = rollout.extras["features"], rollout.extras[MODEL_DATA]
        distinct = np.array(batch.loss_mask)
        rows, (chosen, rejected) = np.arange(len(rollout)), chosen_first.T
        real = distinct & ~model_data
        mean = rollout.extras[ERM_MEAN_REWARDS]
        agrees = mean[rows, chosen] > mean[rows, rejected]  # the ERM predicted the label it got
        if real.any():
            self.log(erm_accuracy=float(agrees[real].mean()))
        asked = distinct & (~model_data | (self.config.model_data_labels == "oracle"))
        if (model_data & asked).any():  # oat's behaviour: model pairs asked anyway, the ERM only scored
            self.log(model_label_agreement=float(agrees[model_data & asked].mean()))
        self.queries += int(asked.sum())
        pairs = torch.as_tensor(np.stack([features[rows, chosen], features[rows, rejected]], axis=1)).float()
        limit = self.config.buffer_size
        self.pair_features = torch.cat([self.pair_features, pairs])[-limit:]
        self.pair_masks = torch.cat([self.pair_masks, torch.as_tensor(real, dtype=torch.float32)])[-limit:]
        self.updates += 1
        self._learn()

    def _learn(self) -> None:
        """``sgd_steps`` Adam steps on ``batch_size`` pairs drawn without replacement from the reward buffer."""
        model, optimizer, config = self.model, self.optimizer, self.config
        assert model is not None and optimizer is not None
        for _ in range(config.sgd_steps):
            rows = torch.randperm(len(self.pair_features), generator=self.generator)[: config.batch_size]
            rewards = model(self.pair_features[rows].reshape(-1, self.pair_features.shape[-1])).reshape(
                model.ensemble_size, len(rows), 2
            )
            bradley_terry, anchor = enn_loss(
                rewards[..., 0],
                rewards[..., 1],
                self.pair_masks[rows],
                model.drift(),
                config.enn_lambda,
                len(rows),
                self.queries,
            )
            optimizer.zero_grad()
            (bradley_terry + anchor).backward()
            optimizer.step()
        self.log(erm_loss=float(bradley_terry.detach()), erm_anchor_loss=float(anchor.detach()), queries=self.queries)

    def state_dict(self) -> dict[str, Any]:
        model, optimizer = self.model, self.optimizer
        return snapshot(
            {
                "generator": self.generator.get_state(),
                "feature_dim": None if model is None else int(self.pair_features.shape[-1]),
                "model": None if model is None else model.state_dict(),
                "optimizer": None if optimizer is None else optimizer.state_dict(),
                "pair_features": self.pair_features,
                "pair_masks": self.pair_masks,
                "queries": self.queries,
                "updates": self.updates,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model = self.optimizer = None
        if state["feature_dim"] is not None:
            model = self._ensure_model(state["feature_dim"])
            model.load_state_dict(state["model"])
            assert self.optimizer is not None
            self.optimizer.load_state_dict(snapshot(state["optimizer"]))
        self.generator.set_state(state["generator"])
        self.pair_features, self.pair_masks = state["pair_features"].clone(), state["pair_masks"].clone()
        self.queries, self.updates = state["queries"], state["updates"]


SEA = Explorer(SEAActor)
