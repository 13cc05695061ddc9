"""The explorers' math against the hand-computed test vectors of docs/algorithms.md §3-§5 (values and gradients)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from oatlike.exploration.apl import entropy_filter, max_margin_pair, predictive_entropy
from oatlike.exploration.config import COPOExploreConfig
from oatlike.exploration.copo import PseudoCounter, cfn_loss, copo_bonus, count_bonus
from oatlike.exploration.sea import (
    EnsembleRewardModel,
    baits_pairs,
    eets_pairs,
    enn_loss,
    model_rollout_pair,
    preference_logit_variance,
    uncertainty_pairs,
)
from oatlike.exploration.selm import selm_bonus
from oatlike.exploration.xpo import xpo_bonus
from oatlike.losses import dap

# §1.7 cases: (pc, pr, rc, rr)
CASE_A = (-12.0, -15.0, -13.0, -14.0)
CASE_B = (-50.0, -40.0, -48.0, -41.0)


def dpo(case: tuple[float, ...], beta: float) -> torch.Tensor:
    return dap.dpo_loss(*(torch.tensor([v]) for v in case), beta=beta)


def leaf(value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64, requires_grad=True)


# ------------------------------------------------------------------------------------------------ SELM §3.1


@pytest.mark.parametrize(
    ("case", "beta", "policy_own", "reference_own", "dpo_part", "term", "total", "grad"),
    [
        (CASE_A, 0.1, -30.0, -28.0, 0.598139, -0.000200, 0.597939, 1e-4),
        (CASE_B, 0.1, -25.0, -26.0, 0.854355, 0.000100, 0.854455, 1e-4),
        (CASE_A, 0.01, -30.0, -28.0, 0.683197, -0.000020, 0.683177, 1e-5),
    ],
)
def test_selm_vectors(case, beta, policy_own, reference_own, dpo_part, term, total, grad):
    own = leaf(policy_own)
    bonus = selm_bonus(own, torch.tensor([reference_own], dtype=torch.float64), alpha=1e-3, beta=beta)
    assert float(dpo(case, beta)) == pytest.approx(dpo_part, abs=1e-6)
    assert float(bonus.detach()) == pytest.approx(term, abs=1e-9)
    assert float(dpo(case, beta) + bonus.detach()) == pytest.approx(total, abs=1e-6)
    bonus.sum().backward()
    assert float(own.grad) == pytest.approx(grad, rel=1e-9)  # α·β: lowers the own response's likelihood


# ------------------------------------------------------------------------------------------------- XPO §3.2


@pytest.mark.parametrize(
    ("case", "alpha", "reference_sample", "total"),
    [(CASE_A, 1e-5, -35.0, 0.597789), (CASE_B, 5e-6, -20.0, 0.854255)],
)
@pytest.mark.parametrize("reference_is_chosen", [True, False])
def test_xpo_vectors(case, alpha, reference_sample, total, reference_is_chosen):
    reference, policy = leaf(reference_sample), leaf(-1.0)
    chosen, rejected = (reference, policy) if reference_is_chosen else (policy, reference)
    bonus = xpo_bonus(chosen, rejected, torch.tensor([reference_is_chosen]), alpha)
    assert float(dpo(case, 0.1) + bonus.detach()) == pytest.approx(total, abs=1e-6)
    bonus.sum().backward()
    assert float(reference.grad) == pytest.approx(alpha) and float(policy.grad) == 0.0  # ∂ℓ/∂s_θ(ỹ) = α


# ------------------------------------------------------------------------------------------------ COPO §3.3


@pytest.mark.parametrize(
    ("case", "cfn_output", "policy_own", "reference_own", "bonus_b", "count_term", "total", "grad"),
    [
        (CASE_A, [0.5] * 10 + [-0.1] * 10, -30.0, -30.5, 0.036056, 0.000178336, 0.598317, -5.944549e-06),
        (CASE_B, [0.2, -0.2] * 10, -10.0, -12.0, 0.020000, 0.000100000, 0.854455, -1.0e-05),
    ],
)
def test_copo_vectors(case, cfn_output, policy_own, reference_own, bonus_b, count_term, total, grad):
    b = count_bonus(torch.tensor([cfn_output], dtype=torch.float64), scale=0.1, exponent=0.5)
    assert float(b) == pytest.approx(bonus_b, abs=1e-6)
    own = leaf(policy_own)
    term = copo_bonus(own, torch.tensor([reference_own], dtype=torch.float64), b, alpha=1e-4, ratio_clip=5.0)
    assert float(term.detach()) == pytest.approx(count_term, rel=1e-5)
    assert float(dpo(case, 0.1) + term.detach()) == pytest.approx(total, abs=1e-6)
    term.sum().backward()
    assert float(own.grad) == pytest.approx(grad, rel=1e-5)  # −α·w·b: raises a novel response's likelihood


def test_cfn_loss_and_raw_bonus_vectors():
    outputs = torch.tensor([[0.5, -0.2, 0.1, 0.9], [0.0, 0.0, 0.0, 0.0]])
    coins = torch.tensor([[1.0, -1.0, -1.0, 1.0], [1.0, 1.0, -1.0, -1.0]])
    assert float(cfn_loss(outputs[:1], coins[:1])) == pytest.approx(0.527500)
    assert float(cfn_loss(outputs[1:], coins[1:])) == pytest.approx(1.0)
    assert float(cfn_loss(outputs, coins)) == pytest.approx(0.763750)
    assert float(count_bonus(outputs[:1], scale=1.0, exponent=0.5)) == pytest.approx(0.526783, abs=1e-6)


@pytest.mark.parametrize("visits", [1, 2, 4, 8])
def test_count_bonus_of_the_cfn_optimum_averages_one_over_n(visits):
    """An input seen n times has the mean of its n coin vectors as the CFN's MSE optimum. Over all 2^n
    equally likely coin sequences (d = 1), ``count_bonus`` with p = 1 averages exactly 1/n: the pseudo-count."""
    means = torch.tensor([[float(np.mean(coins))] for coins in itertools.product((-1.0, 1.0), repeat=visits)])
    assert float(count_bonus(means, scale=1.0, exponent=1.0).mean()) == pytest.approx(1.0 / visits)
    rms = float(count_bonus(means, scale=1.0, exponent=1.0).mean().sqrt())
    assert rms == pytest.approx(visits**-0.5)  # p = 1/2 of the expected square: κ/√N


@pytest.fixture
def one_thread():
    """The CFN is a tiny MLP: on a busy 2-core machine thread hand-offs cost more than its math."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fitted_counter(coin_flips: str) -> tuple[PseudoCounter, torch.Tensor, list[int]]:
    """A CFN fitted to four distinct inputs visited 1, 2, 4 and 8 times."""
    config = COPOExploreConfig(cfn_dropout=0.0, cfn_lr=3e-2, coin_flips=coin_flips)
    counter = PseudoCounter(4, config, torch.Generator().manual_seed(0))
    inputs, visits = torch.eye(4) * 3.0, [1, 2, 4, 8]
    counter.add(torch.cat([inputs[i].repeat(n, 1) for i, n in enumerate(visits)]))
    return counter, inputs, visits


def test_cfn_training_reduces_its_objective_and_recovers_the_counts(one_thread):
    counter, inputs, visits = fitted_counter("fixed")
    first = counter.train(steps=1, batch_size=15)
    last = counter.train(steps=200, batch_size=15)
    # the optimum for an input is the mean of its own coin vectors: its bonus is that mean's RMS, and
    # what is left of the objective is the coins' spread around their means
    bonuses = count_bonus(counter.outputs(inputs), scale=1.0, exponent=0.5)
    starts = np.cumsum([0, *visits])
    spans = list(itertools.pairwise(starts))
    means = [counter.coins[a:b].mean(0) for a, b in spans]
    irreducible = float(
        sum(((counter.coins[a:b] - m) ** 2).mean(1).sum() for (a, b), m in zip(spans, means, strict=True))
    )
    irreducible /= len(counter.coins)
    assert first > last == pytest.approx(irreducible, abs=0.02)
    for index, optimum in enumerate(means):
        assert float(bonuses[index]) == pytest.approx(float(optimum.pow(2).mean().sqrt()), abs=0.03)
    assert float(bonuses[0]) == pytest.approx(1.0, abs=0.03)  # one visit: b = 1 exactly
    assert float(bonuses[3]) < float(bonuses[0])


def test_redrawn_coin_flips_wash_out_the_count(one_thread):
    """The released sampler's fresh targets per visit make even a once-seen input look familiar."""
    counter, inputs, _ = fitted_counter("redraw")
    counter.train(steps=200, batch_size=15)
    assert float(count_bonus(counter.outputs(inputs[:1]), 1.0, 0.5)) < 0.3


# ------------------------------------------------------------------------------------------------- SEA §4.2

# one prompt, K = 3 members, N = 4 candidates: R[k, 0, j]
R = np.array([[[0.1, 0.9, 0.3, 0.2]], [[0.8, 0.7, 0.1, 0.0]], [[0.2, 0.6, 0.4, -1.0]]])


def test_enn_loss_vectors_and_gradient():
    chosen = torch.tensor([[1.0, 0.2], [0.5, -0.3]], requires_grad=True)
    rejected = torch.tensor([[0.0, 0.4], [0.7, -1.0]])
    drift = torch.tensor(0.01)
    for mask, bt_part, total in [((1.0, 1.0), 0.578181, 0.578821), ((1.0, 0.0), 0.277850, 0.278490)]:
        bradley_terry, anchor = enn_loss(chosen, rejected, torch.tensor(mask), drift, 0.5, 128, 1000)
        assert float(bradley_terry.detach()) == pytest.approx(bt_part, abs=1e-6)
        assert float(anchor) == pytest.approx(0.000640, abs=1e-9)
        assert float((bradley_terry + anchor).detach()) == pytest.approx(total, abs=1e-6)
    bradley_terry.backward()
    expected = -torch.sigmoid(-(chosen - rejected)).detach() * torch.tensor([1.0, 0.0]) / 4  # −σ(−Δ)·m/(K·B)
    torch.testing.assert_close(chosen.grad, expected)


def test_ensemble_init_and_anchor():
    model = EnsembleRewardModel(feature_dim=64, ensemble_size=3, hidden_dim=16, seed=0)
    assert model(torch.randn(5, 64)).shape == (3, 5)
    assert float(model.drift().detach()) == 0.0
    assert float(model.weights[0].detach().std()) == pytest.approx(1 / (2 * 64**0.5), rel=0.1)  # N(0, 1/(2√fan_in))
    assert all(float(b.detach().abs().sum()) == 0.0 for b in model.biases)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1)
    assert float(model.drift().detach()) == pytest.approx(0.01, rel=1e-4)  # mean over all scalar parameters


@pytest.mark.parametrize(("order", "pair"), [((0, 1, 2), (1, 0)), ((2, 0, 1), (1, 0)), ((1, 0, 2), (0, 1))])
def test_eets_pairs(order, pair):
    assert eets_pairs(R, np.array([order]), max_try=3, allow_second_best=False).tolist() == [list(pair)]


def test_eets_when_every_member_agrees():
    agreeing = np.array([[[0.0, 1.0, 0.5]], [[0.1, 0.9, 0.2]]])
    assert eets_pairs(agreeing, np.array([[0, 1]]), 2, allow_second_best=False).tolist() == [[1, 1]]
    assert eets_pairs(agreeing, np.array([[0, 1]]), 2, allow_second_best=True).tolist() == [[1, 2]]


def test_baits_pairs_and_logit_variance():
    variance = preference_logit_variance(R)[0, 1]
    np.testing.assert_allclose(variance, [0.203333, 0.0, 0.053333, 0.27], atol=1e-6)
    assert baits_pairs(R, np.array([0])).tolist() == [[1, 3]]


def test_uncertainty_pairs():
    pairs, variance = uncertainty_pairs(R)
    assert pairs.tolist() == [[2, 3]] and float(variance[0]) == pytest.approx(0.563333, abs=1e-6)


@pytest.mark.parametrize(("member", "pair"), [(0, (1, 0)), (1, (0, 3)), (2, (1, 3))])
def test_model_rollout_pairs(member, pair):
    assert model_rollout_pair(R[member, 0], np.random.default_rng(0)) == pair


# ------------------------------------------------------------------------------------------------- APL §4.1


def test_apl_max_margin_pair():
    i, j, margin = max_margin_pair(np.array([0.5, -1.2, 2.0, 0.1]))
    assert (i, j) == (1, 2) and margin == pytest.approx(3.2)
    assert max_margin_pair(np.zeros(3))[:2] == (0, 1)  # untrained policy: all margins 0, still two distinct


def test_apl_entropy_filter_paper_and_oat_semantics():
    mean_logprobs = np.array([-10.0, -35.0, -22.0, -5.0])
    entropies = predictive_entropy(np.stack([mean_logprobs, mean_logprobs], axis=1))
    assert entropy_filter(entropies, 2, "highest").tolist() == [1, 2]  # the paper: high predictive entropy
    assert entropy_filter(entropies, 2, "lowest").tolist() == [0, 3]  # public oat: largest mean log-prob


# --------------------------------------------------------------------------------------------------- BPO §5


def test_bpo_reference_swap_vectors():
    pc, pr = torch.tensor([-12.0]), torch.tensor([-15.0])
    sft, behaviour = (torch.tensor([-13.0]), torch.tensor([-14.0])), (torch.tensor([-12.5]), torch.tensor([-15.5]))
    assert float(dap.dpo_loss(pc, pr, *sft, beta=0.1)) == pytest.approx(0.598139, abs=1e-6)
    assert float(dap.dpo_loss(pc, pr, *behaviour, beta=0.1)) == pytest.approx(0.693147, abs=1e-6)
    assert float(dap.hinge_loss(pc, pr, *behaviour, beta=0.1)) == pytest.approx(1.0)
    lengths = torch.tensor([1.0])
    assert float(dap.ipo_loss(pc, pr, *behaviour, lengths, lengths, 0.1, length_normalize=False)) == pytest.approx(25.0)
    member_2 = dap.dpo_loss(torch.tensor([-12.2]), torch.tensor([-14.6]), *behaviour, beta=0.1)
    assert float(member_2) == pytest.approx(0.723597, abs=1e-6)
