"""BPO — Xu et al. 2024, "BPO: Staying Close to the Behavior LLM Creates Better Online LLM Alignment"
(EMNLP 2024, arXiv 2406.12168; code ``xu1998hz/BPO``; docs/algorithms.md §5).

The trust region of online DAP is centred on the behaviour model π_β that collected the pairs, not on the
SFT model: any DAP loss with ``π_ref := π_β``::

    every T/F steps (an annotation phase; T/F = ``sync_every``, the code's ``sampling_update_step``):
        π_β ← current model        (the sampler and the reference: one refresh, same weights)
    each step: pairs ← 2 samples from π_β;  L = L_DAP(π_θ; π_ref = π_β)

``sync_every=1`` is on-policy (the code's ``run.sh``), ``sync_every=0`` never refreshes (F = 1, offline
DAP against the SFT model). The refresh schedule is the config's
(:meth:`~oatlike.exploration.config.BPOExploreConfig.reference_refresh_due`: at every sync). Every pair is
judged against the reference of the π_β that sampled it, also when it is trained after a later refresh
(async collection, a buffer longer than one step): the learner keeps each reference version until no
pending pair needs it. For stability the policy is an ensemble of ``ensemble_size`` LoRA adapters on one
frozen base, each stepped separately with its own optimizer on the same batch and behaviour log-probs
(:class:`~oatlike.learner.ensemble.LoraEnsembleLearner`); the model that samples, serves as reference and
is evaluated is their uniform merge (:func:`~oatlike.models.lora.merge_lora_ensemble`).
"""

from __future__ import annotations

from oatlike.exploration.base import AdapterEnsemble, Explorer, LearnerExplorer, PassiveActor
from oatlike.exploration.config import BPOExploreConfig
from oatlike.losses.config import LossConfig


class BPOLearner(LearnerExplorer):
    """The behaviour reference needs nothing on the learner side but the shape of the policy."""

    def __init__(self, config: BPOExploreConfig, loss: LossConfig, seed: int) -> None:
        super().__init__(config, loss, seed)
        if config.ensemble_size > 1:
            self.adapter_ensemble = AdapterEnsemble(config.ensemble_size, config.merge)


BPO = Explorer(PassiveActor, BPOLearner)
"""Two samples from π_β, a random pair; π_ref ← π_β at every sync of the sampler."""
