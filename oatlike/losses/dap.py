"""Direct-alignment (DAP) losses as pure functions of per-sequence log-probs and lengths.

Notation (docs/algorithms.md §0): ``pc, pr`` policy summed log-probs of the chosen / rejected response,
``rc, rr`` the same under the frozen reference, ``Lc, Lr`` response lengths in tokens, and the
implicit-reward margin ``Δ = (pc − pr) − (rc − rr)``. Every function returns the **per-pair** loss
``[B]``; the learner reduces it (mean over pairs, masked pairs counted in the denominator, as oat does).
``−log σ(u)`` is computed as ``softplus(−u)`` in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _margin(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
    return (pc - rc) - (pr - rr)


def dpo_loss(
    pc: torch.Tensor,
    pr: torch.Tensor,
    rc: torch.Tensor,
    rr: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023, Eq. 7); with ``label_smoothing`` ε > 0 the conservative cDPO.

    ``(1 − ε)·softplus(−βΔ) + ε·softplus(βΔ)`` (Mitchell's cDPO note, Eq. 3); ε = 0 is plain DPO.
    """
    logits = beta * _margin(pc, pr, rc, rr)
    return (1.0 - label_smoothing) * F.softplus(-logits) + label_smoothing * F.softplus(logits)


def robust_dpo_loss(
    pc: torch.Tensor,
    pr: torch.Tensor,
    rc: torch.Tensor,
    rr: torch.Tensor,
    beta: float,
    label_smoothing: float,
) -> torch.Tensor:
    """Robust DPO (Chowdhury et al. 2024): ``[(1−ε)·softplus(−βΔ) − ε·softplus(βΔ)] / (1 − 2ε)``."""
    logits = beta * _margin(pc, pr, rc, rr)
    unbiased = (1.0 - label_smoothing) * F.softplus(-logits) - label_smoothing * F.softplus(logits)
    return unbiased / (1.0 - 2.0 * label_smoothing)


def ipo_loss(
    pc: torch.Tensor,
    pr: torch.Tensor,
    rc: torch.Tensor,
    rr: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float,
    length_normalize: bool = True,
) -> torch.Tensor:
    """IPO (Azar et al. 2023, Eq. 17): ``(h − 1/(2τ))²`` with τ passed as ``beta``.

    ``h`` is the log-ratio margin, per-token averaged when ``length_normalize`` (TRL main, oat, BPO)
    and summed otherwise (the paper, TRL's online trainers).
    """
    if length_normalize:
        h = (pc - rc) / chosen_lengths - (pr - rr) / rejected_lengths
    else:
        h = _margin(pc, pr, rc, rr)
    return (h - 1.0 / (2.0 * beta)) ** 2


def hinge_loss(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor, beta: float) -> torch.Tensor:
    """SLiC-style hinge with reference (RSO, Liu et al. 2023): ``relu(1 − βΔ)``."""
    return F.relu(1.0 - beta * _margin(pc, pr, rc, rr))


def slic_hf_loss(pc: torch.Tensor, pr: torch.Tensor, delta: float, sft_weight: float) -> torch.Tensor:
    """SLiC-HF (Zhao et al. 2023): ``max(0, δ − pc + pr) − λ·s_θ(y_ref)``, with ``y_ref = y_w``.

    Reference-free rank calibration plus an SFT regulariser on the chosen response.
    """
    return F.relu(delta - pc + pr) - sft_weight * pc


def simpo_loss(
    pc: torch.Tensor,
    pr: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float,
    gamma_beta_ratio: float,
) -> torch.Tensor:
    """SimPO (Meng et al. 2024, Eq. 6): ``softplus(−β·[(pc/Lc − pr/Lr) − γ/β])``; reference-free."""
    logits = (pc / chosen_lengths - pr / rejected_lengths) - gamma_beta_ratio
    return F.softplus(-beta * logits)
