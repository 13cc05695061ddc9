"""The three roles the online loop drives (:mod:`oatlike.loop`), each with a local and a Ray implementation.

::

    ActorPool    submit(prompts) → ticket; collect(ticket) → (batch, metrics)     generate K → select → label
    LearnerGroup learn(batch) → metrics; refresh_reference(); evaluate(); save()  buffer → DAP loss → step
    WeightSync   push("policy" | "reference") → metrics                           learner weights → actors, probed

``runner=local`` (:mod:`oatlike.runners.local`) puts one actor, one learner and the evaluator in this
process; ``runner=ray`` (:mod:`oatlike.runners.ray`) puts ``actors.num`` actors and ``learner.num`` learner
ranks in Ray actors. The loop cannot tell them apart. Every role's state round-trips through
``state_dict()`` / ``load_state_dict()`` (the weights the actors hold are not part of it: a weight sync
gives them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from oatlike.errors import OatlikeError
from oatlike.types import PreferenceBatch, Prompt

Collected = tuple[PreferenceBatch, dict[str, Any]]
"""One step's labelled pairs and their ``actor/``, ``oracle/`` and ``explorer/`` metrics."""
Weights = Literal["policy", "reference"]


class SyncError(OatlikeError):
    """After a weight sync the actors' policy differs from the learner's."""


class ActorPool(ABC):
    """The actors: each holds a behaviour-policy engine, an explorer and an oracle client."""

    @abstractmethod
    def submit(self, prompts: list[Prompt]) -> Any:
        """Start collecting the pairs of ``prompts`` (split among the actors); returns a ticket."""

    @abstractmethod
    def collect(self, ticket: Any) -> Collected:
        """Wait for the pairs a :meth:`submit` started (an actor that died is restarted and asked again)."""

    @property
    @abstractmethod
    def policy_version(self) -> int:
        """The version of the behaviour policy the actors sample with."""

    @property
    @abstractmethod
    def reference_version(self) -> int:
        """The version of π_ref the actors hold."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Each actor's random streams, oracle counters and explorer state (not the weights: a sync gives them)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional: the local pool holds nothing to release
        """Stop the actors."""


class LearnerGroup(ABC):
    """The learner ranks: one DeepSpeed world training on shares of every batch; rank 0 evaluates."""

    @abstractmethod
    def learn(self, batch: PreferenceBatch) -> dict[str, Any]:
        """Train on ``batch`` (buffer, DAP loss, optimizer steps); returns ``train/`` and ``explorer/`` metrics."""

    @property
    @abstractmethod
    def version(self) -> int:
        """Learner steps taken: the version of the weights a sync would send."""

    @property
    @abstractmethod
    def reference_version(self) -> int:
        """π_ref's newest version (0: the initial policy)."""

    @abstractmethod
    def refresh_reference(self) -> None:
        """π_ref ← π_θ on every rank, as version :attr:`version` (the actors' copies follow through
        :meth:`WeightSync.push`)."""

    @abstractmethod
    def evaluate(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The policy's greedy answers on the evaluation prompts: ``eval/`` metrics and one record each."""

    @abstractmethod
    def save(self, folder: str) -> None:
        """Write the policy (LoRA merged) and tokenizer as a Hugging Face folder."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Every rank's learner state (weights, optimizer partition, schedule, references, buffer, RNG)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional: the local group holds nothing to release
        """Stop the ranks."""


class WeightSync(ABC):
    """Versioned transport of the learner's policy or π_ref to every actor; a policy sync is probed."""

    @abstractmethod
    def push(self, weights: Weights) -> dict[str, Any]:
        """Give every actor the learner's current policy (its :attr:`LearnerGroup.version`) or π_ref (its
        :attr:`LearnerGroup.reference_version`); returns ``misc/`` metrics (time, version, probe gap)."""


@dataclass
class Roles:
    """What a runner builds for the loop."""

    actors: ActorPool
    learner: LearnerGroup
    sync: WeightSync

    def summary(self) -> dict[str, Any]:
        """Runner-specific figures for the run's summary (actor restarts, ...)."""
        return {}

    def close(self) -> None:
        self.actors.close()
        self.learner.close()


def check_probe(learner: list[float], actors: list[list[float]], tolerance: float, version: int) -> dict[str, float]:
    """``misc/sync_probe_max_gap``: the largest |learner − actor| summed log-prob on the probe pairs.

    Raises:
        SyncError: when it exceeds ``tolerance`` (``weight_sync.probe_tolerance``).
    """
    if not learner:
        return {}
    gap = max(abs(a - b) for logps in actors for a, b in zip(logps, learner, strict=True))
    if gap > tolerance:
        raise SyncError(
            f"after the sync to version {version} an actor's log-probs differ from the learner's by "
            f"{gap:.3g} > weight_sync.probe_tolerance={tolerance} (engines computing in lower precision "
            "need a larger tolerance)"
        )
    return {"misc/sync_probe_max_gap": gap}
