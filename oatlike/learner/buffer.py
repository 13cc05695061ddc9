"""The learner's buffer: the most recent preference pairs with their cached reference quantities."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from oatlike.types import PreferenceBatch


class PairBuffer:
    """Keeps the last ``capacity`` pairs (FIFO) together with per-pair tensors computed once when they
    entered (reference log-probs ``reference_chosen`` / ``reference_rejected``, and what explorers ask for)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pairs: PreferenceBatch | None = None
        self.cached: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return 0 if self.pairs is None else len(self.pairs)

    def add(self, batch: PreferenceBatch, cached: dict[str, torch.Tensor]) -> None:
        """Append ``batch`` and its ``cached`` tensors (first dimension = pairs); drop the oldest overflow."""
        pairs = batch if self.pairs is None else PreferenceBatch.concat([self.pairs, batch])
        merged = {
            key: torch.cat([self.cached[key], value]) if key in self.cached else value for key, value in cached.items()
        }
        overflow = max(0, len(pairs) - self.capacity)
        if overflow:
            pairs = pairs.select(list(range(overflow, len(pairs))))
        self.pairs = pairs
        self.cached = {key: value[overflow:] for key, value in merged.items()}

    def rows(self, indices: np.ndarray, device: torch.device) -> tuple[PreferenceBatch, dict[str, torch.Tensor]]:
        """The pairs at ``indices`` and their cached tensors on ``device``."""
        assert self.pairs is not None
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.pairs.select(indices.tolist()), {key: value[index].to(device) for key, value in self.cached.items()}

    def minibatches(self, batch_size: int, epochs: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Index arrays of ``batch_size`` pairs: ``epochs`` shuffled passes over the buffer."""
        for _ in range(epochs):
            order = rng.permutation(len(self))
            for start in range(0, len(order) - batch_size + 1, batch_size):
                yield order[start : start + batch_size]

    def state_dict(self) -> dict[str, Any]:
        pairs = None if self.pairs is None else copy.deepcopy(dataclasses.asdict(self.pairs))
        return {"pairs": pairs, "cached": {k: v.clone() for k, v in self.cached.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pairs = None if state["pairs"] is None else PreferenceBatch(**copy.deepcopy(state["pairs"]))
        self.cached = {k: v.clone() for k, v in state["cached"].items()}
