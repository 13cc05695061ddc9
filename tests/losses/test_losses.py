"""DAP losses against the hand-computed test vectors of docs/algorithms.md §1.7, and their gradients."""

from __future__ import annotations

import math

import pytest
import torch

from oatlike.errors import ConfigError
from oatlike.losses import dap
from oatlike.losses.config import LOSSES
from oatlike.losses.loss import DAPLoss, PairLogps, build_loss


def loss_of(name: str, **options: float | bool) -> DAPLoss:
    """The registered loss ``name`` built from its schema with ``options``."""
    return build_loss(LOSSES.get(name).schema(**options))


# (pc, pr, rc, rr, Lc, Lr) for cases A, B, C
CASES = {
    "A": (-12.0, -15.0, -13.0, -14.0, 10, 12),
    "B": (-50.0, -40.0, -48.0, -41.0, 40, 30),
    "C": (-20.0, -25.0, -20.0, -25.0, 16, 20),
}


def tensors(case: str, requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor([v], dtype=torch.float32, requires_grad=requires_grad) for v in CASES[case])


@pytest.mark.parametrize(
    ("case", "dpo", "grad_pc", "cdpo", "rdpo", "hinge", "ipo_sum", "ipo_norm"),
    [
        ("A", 0.598139, -0.045017, 0.618139, 0.573139, 0.8, 9.0, 23.200278),
        ("B", 0.854355, -0.057444, 0.824355, 0.891855, 1.3, 64.0, 25.840278),
        ("C", 0.693147, -0.050000, 0.693147, 0.693147, 1.0, 25.0, 25.0),
    ],
)
def test_reference_losses_match_spec(case, dpo, grad_pc, cdpo, rdpo, hinge, ipo_sum, ipo_norm):
    pc, pr, rc, rr, lc, lr = tensors(case, requires_grad=True)
    loss = dap.dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert loss.item() == pytest.approx(dpo, abs=1e-6)
    loss.sum().backward()
    assert pc.grad.item() == pytest.approx(grad_pc, abs=1e-6)
    assert pr.grad.item() == pytest.approx(-grad_pc, abs=1e-6)  # ∂L/∂pr = +β·σ(−βΔ)
    assert dap.dpo_loss(pc, pr, rc, rr, 0.1, label_smoothing=0.1).item() == pytest.approx(cdpo, abs=1e-6)
    assert dap.robust_dpo_loss(pc, pr, rc, rr, 0.1, 0.1).item() == pytest.approx(rdpo, abs=1e-6)
    assert dap.hinge_loss(pc, pr, rc, rr, 0.1).item() == pytest.approx(hinge, abs=1e-6)
    assert dap.ipo_loss(pc, pr, rc, rr, lc, lr, 0.1, length_normalize=False).item() == pytest.approx(ipo_sum, abs=1e-5)
    assert dap.ipo_loss(pc, pr, rc, rr, lc, lr, 0.1, length_normalize=True).item() == pytest.approx(ipo_norm, abs=1e-5)


def test_dpo_batch_mean_and_analytic_gradient():
    columns = list(zip(*CASES.values(), strict=True))
    pc, pr, rc, rr = (torch.tensor(c, requires_grad=True) for c in columns[:4])
    loss = dap.dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert loss.mean().item() == pytest.approx(0.715214, abs=1e-6)
    loss.sum().backward()
    margin = (pc - rc) - (pr - rr)
    expected = -0.1 * torch.sigmoid(-0.1 * margin.detach())
    torch.testing.assert_close(pc.grad, expected)
    torch.testing.assert_close(pr.grad, -expected)


@pytest.mark.parametrize(("case", "expected"), [("A", 1.2), ("B", 16.0), ("C", 2.0)])
def test_slic_hf(case, expected):
    pc, pr, *_ = tensors(case)
    assert dap.slic_hf_loss(pc, pr, delta=1.0, sft_weight=0.1).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("case", "expected", "logit"), [("A", 1.241154, -0.9), ("B", 1.194218, -0.833333), ("C", 1.313262, -1.0)]
)
def test_simpo(case, expected, logit):
    pc, pr, _, _, lc, lr = tensors(case, requires_grad=True)
    loss = dap.simpo_loss(pc, pr, lc, lr, beta=2.0, gamma_beta_ratio=0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-logit)), abs=1e-5)
    loss.backward()
    # ∂/∂pc softplus(−(β(pc/Lc − pr/Lr) − γ)) = −σ(−logit)·β/Lc
    assert pc.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(-logit)).item() * 2.0 / lc.item(), abs=1e-6)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("dpo", {"beta": 0.1}, 0.598139),
        ("cdpo", {"beta": 0.1, "label_smoothing": 0.1}, 0.618139),
        ("rdpo", {"beta": 0.1, "label_smoothing": 0.1}, 0.573139),
        ("ipo", {"beta": 0.1}, 23.200278),
        ("ipo", {"beta": 0.1, "length_normalize": False}, 9.0),
        ("slic", {"beta": 0.1}, 0.8),
        ("slic_hf", {"beta": 1.0, "delta": 1.0, "sft_weight": 0.1}, 1.2),
        ("simpo", {"beta": 2.0, "gamma_beta_ratio": 0.5}, 1.241154),
    ],
)
def test_registry_losses_on_case_a(name, options, expected):
    pc, pr, rc, rr, lc, lr = tensors("A")
    loss = loss_of(name, **options)
    logps = PairLogps(pc, pr, rc if loss.needs_reference else None, rr if loss.needs_reference else None, lc, lr)
    assert loss.per_pair(logps).item() == pytest.approx(expected, abs=1e-5)
    chosen, rejected = loss.rewards(logps)
    assert not chosen.requires_grad and chosen.shape == rejected.shape == (1,)


def test_reference_free_losses_do_not_need_the_reference():
    assert not loss_of("simpo").needs_reference
    assert not loss_of("slic_hf").needs_reference
    assert loss_of("dpo").needs_reference
    with pytest.raises(ValueError, match="reference"):
        loss_of("dpo").per_pair(PairLogps(*tensors("A")[:2], None, None, *tensors("A")[4:]))


def test_unknown_loss():
    with pytest.raises(ConfigError, match=r"loss\.name: unknown loss 'dpoo'"):
        LOSSES.get("dpoo")
