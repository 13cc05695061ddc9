"""The learner's π_ref, versioned: every pair is judged against the reference its actor held.

π_ref changes when an explorer refreshes it (BPO at every sync, SELM / COPO every N steps). A pair
collected before a refresh but trained after it (async collection, a prefetched step, an actor that
restarted) must still be judged against the reference of the policy that generated it, which for BPO is
the behaviour model itself. :class:`ReferenceVersions` keeps the weights of every version a pending pair
may still need and loads the right one into the reference model before each reference pass; once a pair
of version ``v`` arrives, no older version is needed again (pairs arrive in collection order), so at most
one or two snapshots exist at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

Weights = dict[str, torch.Tensor]


def cpu_copy(weights: Mapping[str, torch.Tensor]) -> Weights:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights.items()}


class ReferenceVersions:
    """π_ref's versions: the reference model (``None`` for reference-free losses) holds one, snapshots the rest.

    Version 0 is the initial policy. :meth:`refresh` makes new weights the latest version; :meth:`use`
    loads the version a batch of pairs needs.
    """

    def __init__(self, model: torch.nn.Module | None) -> None:
        self.model = model
        self.loaded = 0
        """The version in :attr:`model`."""
        self.latest = 0
        """The newest version (what actors that restart get)."""
        self.snapshots: dict[int, Weights] = {}
        """Versions not in the model that a pair may still need (for a reference-free loss: the latest)."""

    def refresh(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        """π_ref ← ``weights`` as ``version``; the outgoing version stays available for pending pairs."""
        if self.model is None:
            self.snapshots = {version: cpu_copy(weights)}
        else:
            if self.loaded not in self.snapshots:
                self.snapshots[self.loaded] = cpu_copy(self.model.state_dict())
            self.model.load_state_dict(dict(weights))
            self.loaded = version
        self.latest = version

    def use(self, version: int) -> None:
        """Load ``version`` into the model (for pairs collected with it); drop the versions older than it."""
        if self.model is not None and version != self.loaded:
            if version not in self.snapshots:
                raise RuntimeError(
                    f"pairs need π_ref version {version}, which is no longer kept (have {self.available()})"
                )
            if self.loaded not in self.snapshots:
                self.snapshots[self.loaded] = cpu_copy(self.model.state_dict())
            self.model.load_state_dict(self.snapshots[version])
            self.loaded = version
        keep = {version, self.latest}
        self.snapshots = {v: w for v, w in self.snapshots.items() if v >= version or v in keep}
        if self.model is not None:
            self.snapshots.pop(self.loaded, None)

    def available(self) -> list[int]:
        return sorted({*self.snapshots, *([self.loaded] if self.model is not None else [])})

    def weights(self) -> Weights | None:
        """The latest version's weights (``None`` while it is the initial policy of a reference-free loss)."""
        if self.latest in self.snapshots:
            return self.snapshots[self.latest]
        if self.model is not None and self.loaded == self.latest:
            return dict(self.model.state_dict())
        return None

    def state_dict(self) -> dict[str, Any]:
        model = None if self.model is None else cpu_copy(self.model.state_dict())
        snapshots = {version: cpu_copy(weights) for version, weights in self.snapshots.items()}
        return {"loaded": self.loaded, "latest": self.latest, "model": model, "snapshots": snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.model is not None:
            self.model.load_state_dict(state["model"])
        self.loaded, self.latest = state["loaded"], state["latest"]
        self.snapshots = {version: cpu_copy(weights) for version, weights in state["snapshots"].items()}
