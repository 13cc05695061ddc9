"""Configs of the direct-alignment losses (``loss=dpo|cdpo|rdpo|ipo|slic|slic_hf|simpo``; docs/algorithms.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from omegaconf import MISSING

from oatlike.schema import Registry, check

LOSSES = Registry("loss")
"""The DAP losses by name: their schema and their :class:`~oatlike.losses.DAPLoss` class."""


@dataclass
class LossConfig:
    """A direct-alignment loss (docs/algorithms.md §1)."""

    needs_reference: ClassVar[bool] = True
    """Whether the loss compares the policy with a reference model (SimPO and SLiC-HF do not)."""

    name: str = MISSING
    """Loss: dpo, cdpo, rdpo, ipo, slic, slic_hf or simpo."""
    beta: float = 0.1
    """Inverse temperature β of the implicit reward (for IPO: τ)."""

    def __post_init__(self) -> None:
        check(self.beta > 0, "beta", f"must be > 0, got {self.beta}")


@LOSSES.register("dpo", "oatlike.losses.loss:DPOLoss")
@dataclass
class DPOLossConfig(LossConfig):
    """DPO (Rafailov et al. 2023): ``softplus(−β·margin)``; β 0.1 as in TRL and oat."""

    name: str = "dpo"
    label_smoothing: float = 0.0
    """ε of conservative DPO (cDPO) and robust DPO: the assumed probability that a label is flipped; 0 is plain DPO."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            0.0 <= self.label_smoothing < 0.5,
            "label_smoothing",
            f"must be in [0, 0.5), got {self.label_smoothing}",
        )


@LOSSES.register("cdpo", "oatlike.losses.loss:DPOLoss")
@dataclass
class CDPOLossConfig(DPOLossConfig):
    """Conservative DPO: DPO with label smoothing ε (Mitchell's cDPO note)."""

    name: str = "cdpo"
    label_smoothing: float = 0.1


@LOSSES.register("rdpo", "oatlike.losses.loss:RobustDPOLoss")
@dataclass
class RDPOLossConfig(DPOLossConfig):
    """Robust DPO (Chowdhury et al. 2024): unbiased under a label-flip rate ε (``label_smoothing``)."""

    name: str = "rdpo"
    label_smoothing: float = 0.1


@LOSSES.register("ipo", "oatlike.losses.loss:IPOLoss")
@dataclass
class IPOLossConfig(LossConfig):
    """IPO (Azar et al. 2023): ``(h − 1/(2β))²``, β playing τ; per-token averaged by default."""

    name: str = "ipo"
    length_normalize: bool = True
    """Per-token averaged log-ratios (TRL main, oat, BPO); false: summed (the IPO paper)."""


@LOSSES.register("slic", "oatlike.losses.loss:HingeLoss")
@dataclass
class HingeLossConfig(LossConfig):
    """SLiC hinge with reference (RSO; TRL ``loss_type=hinge``, oat SLiC): ``relu(1 − β·margin)``."""

    name: str = "slic"


@LOSSES.register("slic_hf", "oatlike.losses.loss:SLiCHFLoss")
@dataclass
class SLiCHFLossConfig(LossConfig):
    """SLiC-HF (Zhao et al. 2023): ``relu(δ − s(y_w) + s(y_l)) − λ·s(y_w)``; no reference (β scales the
    logged rewards only)."""

    needs_reference: ClassVar[bool] = False
    name: str = "slic_hf"
    beta: float = 1.0
    delta: float = 1.0
    """Rank-calibration margin δ."""
    sft_weight: float = 0.1
    """Weight λ of the SFT regulariser on the chosen response."""


@LOSSES.register("simpo", "oatlike.losses.loss:SimPOLoss")
@dataclass
class SimPOLossConfig(LossConfig):
    """SimPO (Meng et al. 2024): ``softplus(−β·(avg s(y_w) − avg s(y_l) − γ/β))``; no reference."""

    needs_reference: ClassVar[bool] = False
    name: str = "simpo"
    beta: float = 2.0
    gamma_beta_ratio: float = 0.5
    """Target reward margin over β (γ/β)."""
