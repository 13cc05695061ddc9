"""Generation engines: prompts in, K sampled responses per prompt out, with versioned weights.

An :class:`Engine` owns a copy of the behaviour policy. The actor calls :meth:`Engine.generate`; the weight
sync calls :meth:`Engine.load_weights` with the learner's (gathered, LoRA-merged) weights and their version,
and its probe compares :meth:`Engine.score` with the learner's log-probs. Implementations, chosen by
``engine=``: ``hf`` (transformers ``generate``, :mod:`oatlike.engines.hf`) and ``vllm`` (vLLM's ``LLM``, the
GPU build or the CPU build, :mod:`oatlike.engines.vllm_engine`). Both report a generation's ``logprob`` as
the summed log-probability under the *sampling* distribution (after temperature, top-k and top-p).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from oatlike.types import Generation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from oatlike.engines.config import EngineConfig


@dataclass(frozen=True)
class EngineSite:
    """What an engine is built from besides its config: the initial policy's folder (or hub name) and
    dtype, the tokenizer, the device, the sampling seed and whether the policy's own code may run."""

    policy_path: str
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: str = "float32"
    seed: int = 0
    trust_remote_code: bool = False


def build_engine(config: EngineConfig, site: EngineSite) -> Engine:
    """The engine of ``config`` (``engine=hf|vllm``) holding a fresh copy of the initial policy."""
    from oatlike.engines.config import ENGINES

    engine: Engine = ENGINES.build(config, site)
    return engine


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``n`` responses per prompt; ``greedy`` ignores temperature, top-p and top-k."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    greedy: bool = False
    logprobs: bool = False
    """Also return each response's summed log-prob under the sampling distribution."""


@dataclass
class SequenceScores:
    """Scores of given (prompt, response) sequences: ``logps`` ``[N]`` summed response log-probs and, when
    asked for, ``features`` ``[N, H]`` (last layer's hidden state at the last token)."""

    logps: np.ndarray
    features: np.ndarray | None = None


class Engine(ABC):
    """A generation engine holding a versioned copy of the policy."""

    weights_version: int = 0

    @abstractmethod
    def score(
        self, prompt_token_ids: list[list[int]], response_token_ids: list[list[int]], features: bool = False
    ) -> SequenceScores:
        """Summed log-probs of given responses under the engine's weights (and, with ``features``, hidden
        states), in one forward pass: explorers ask for these, and the weight-sync probe compares them."""

    @abstractmethod
    def generate(self, prompt_token_ids: list[list[int]], params: SamplingParams) -> list[list[Generation]]:
        """``params.n`` responses for each prompt, in prompt order."""

    @abstractmethod
    def load_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> None:
        """Replace the policy's weights (names as in the base model's ``state_dict``) and set the version."""

    def weight_storage(self) -> Mapping[str, torch.Tensor] | None:
        """The tensors that hold the policy's weights, by ``state_dict`` name, for a weight sync to receive
        straight into (:meth:`oatlike.sync.group.SyncGroup.receive`'s ``into``), which may move them into
        storage of its own (assigning their ``.data``); ``None`` where the engine's weights cannot be written
        from outside (vLLM: its workers own them and repack what they load). The sync then still calls
        :meth:`load_weights`, with these same tensors where it wrote them in place."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook: most engines hold nothing to release
        """Release the engine's memory and processes."""
