"""The learner's buffer: the most recent preference pairs with their reference log-probs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from oatlike.types import PreferenceBatch


class PairBuffer:
    """Keeps the last ``capacity`` pairs (FIFO) together with their cached reference log-probs."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pairs: PreferenceBatch | None = None
        self.reference_chosen = torch.zeros(0)
        self.reference_rejected = torch.zeros(0)

    def __len__(self) -> int:
        return 0 if self.pairs is None else len(self.pairs)

    def add(self, batch: PreferenceBatch, reference_chosen: torch.Tensor, reference_rejected: torch.Tensor) -> None:
        pairs = batch if self.pairs is None else PreferenceBatch.concat([self.pairs, batch])
        reference_chosen = torch.cat([self.reference_chosen, reference_chosen])
        reference_rejected = torch.cat([self.reference_rejected, reference_rejected])
        overflow = max(0, len(pairs) - self.capacity)
        if overflow:
            pairs = pairs.select(list(range(overflow, len(pairs))))
        self.pairs = pairs
        self.reference_chosen = reference_chosen[overflow:]
        self.reference_rejected = reference_rejected[overflow:]

    def minibatches(self, batch_size: int, epochs: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Index arrays of ``batch_size`` pairs: ``epochs`` shuffled passes over the buffer."""
        for _ in range(epochs):
            order = rng.permutation(len(self))
            for start in range(0, len(order) - batch_size + 1, batch_size):
                yield order[start : start + batch_size]
