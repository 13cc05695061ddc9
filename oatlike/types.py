"""Data that flows through the loop: generations, rollouts and preference batches.

Plain lists of token ids and Python scalars (no tensors), so batches pickle cheaply across Ray, dump to
JSON lines, and are collated into tensors only where a model consumes them (the learner).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for generation.

    ``text`` is the raw prompt the oracle judges; ``token_ids`` the model input (chat template applied,
    BOS included when the tokenizer adds one); ``reference`` the data's reference answer, if any.
    """

    text: str
    token_ids: tuple[int, ...]
    reference: str | None = None


@dataclass
class Generation:
    """One sampled response.

    ``token_ids`` are the response tokens, EOS included when the model emitted it, padding excluded;
    ``finished`` is False when generation stopped at ``max_new_tokens``; ``logprob`` is the summed
    log-probability of the tokens under the sampling distribution (after temperature / top-p).
    """

    token_ids: list[int]
    text: str
    finished: bool
    logprob: float = 0.0


@dataclass
class Rollout:
    """K candidate responses for each of M prompts, from the behaviour policy at ``weights_version``.

    ``extras`` holds what an explorer generated or asked for about the candidates (reference responses,
    candidate log-probs ``[M, K]``, features ``[M, K, H]``), keyed by name; it stays in the actor.
    """

    prompts: list[Prompt]
    candidates: list[list[Generation]]
    weights_version: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class PreferenceBatch:
    """Labelled preference pairs, one per prompt.

    ``preference_prob[i]`` is the oracle's probability that ``chosen[i]`` beats ``rejected[i]``
    (after labelling, so it is >= 0.5 under thresholded labels). ``loss_mask[i]`` is False for pairs
    whose two responses are identical: they are neither sent to the oracle nor trained on. ``extras``
    holds per-pair lists that explorers add (bonus inputs, features), keyed by name.
    """

    prompts: list[str]
    prompt_ids: list[list[int]]
    chosen: list[str]
    rejected: list[str]
    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]
    preference_prob: list[float]
    loss_mask: list[bool]
    behaviour_versions: list[int]
    """Per pair, the version of the behaviour policy that sampled it (the learner step its weights came from)."""
    reference_versions: list[int]
    """Per pair, the version of π_ref the actor held when it collected it: the reference it is judged against."""
    extras: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def oldest_behaviour_version(self) -> int:
        """The oldest policy version that sampled a pair of the batch (its staleness when trained)."""
        return min(self.behaviour_versions)

    def select(self, indices: list[int]) -> PreferenceBatch:
        """The pairs at ``indices``, in that order."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extras":
                values[f.name] = {k: [v[i] for i in indices] for k, v in value.items()}
            elif isinstance(value, list):
                values[f.name] = [value[i] for i in indices]
            else:
                values[f.name] = value
        return PreferenceBatch(**values)

    @staticmethod
    def concat(batches: list[PreferenceBatch]) -> PreferenceBatch:
        """All pairs of ``batches`` in order."""
        if not batches:
            raise ValueError("cannot concatenate zero preference batches")
        values: dict[str, Any] = {}
        for f in fields(PreferenceBatch):
            if f.name == "extras":
                keys = batches[0].extras.keys()
                values[f.name] = {k: [x for b in batches for x in b.extras[k]] for k in keys}
            else:
                values[f.name] = [x for b in batches for x in getattr(b, f.name)]
        return PreferenceBatch(**values)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per pair (texts, probability, mask), for dumps and debugging."""
        return [
            {
                "prompt": self.prompts[i],
                "chosen": self.chosen[i],
                "rejected": self.rejected[i],
                "preference_prob": self.preference_prob[i],
                "loss_mask": self.loss_mask[i],
                "behaviour_version": self.behaviour_versions[i],
                "reference_version": self.reference_versions[i],
            }
            for i in range(len(self))
        ]


OWN_RESPONSE_IDS = "own_response_ids"
"""``PreferenceBatch.extras`` key: per pair, the token ids of π_ref's own response to the prompt (SELM, COPO);
the learner scores it in the same forward pass as chosen and rejected."""
CHOSEN_FROM_REFERENCE = "chosen_from_reference"
"""``PreferenceBatch.extras`` key: per pair, whether the chosen side was sampled from π_ref (XPO)."""
