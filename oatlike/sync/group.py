"""Versioned weight sync from learner rank 0 to the actors' engines.

The group is a process group of its own: its own ``TCPStore`` rendezvous hosted by learner rank 0, wrapped
in a named ``PrefixStore``; it never touches the default process group, which belongs to the learner's
DeepSpeed world (``ray.util.collective`` would take that over). gloo on CPUs; NCCL where the weights live
on GPUs.

Weights travel as a fixed, named layout (:func:`weight_spec`: sorted names, shapes, dtypes): rank 0 packs
them into flat buckets of at most ``bucket_mb`` MiB per dtype and broadcasts each bucket; receivers unpack
the same layout, so nothing but tensor data crosses the wire.

What a sync costs beyond the broadcast of its bytes (``benchmarks/limits.py`` measures the two side by side):
one pass over the weights on each side, the sender's packing and the receiver engine's load. The buckets
are kept from sync to sync (a fresh tensor costs its page faults at every sync: on the 2-core machine a
10M model's 34 MiB took 176 ms a sync with fresh buckets and a copy of the export, 30 ms without, against
16 ms for the plain broadcast), and a bucket is sent while the next one is packed.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one weight tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty(0, dtype=DTYPES[self.dtype]).element_size()


def weight_spec(state_dict: Mapping[str, torch.Tensor]) -> list[TensorSpec]:
    """The layout of ``state_dict`` in the order it is sent (sorted by name)."""
    return [
        TensorSpec(name, tuple(state_dict[name].shape), str(state_dict[name].dtype).removeprefix("torch."))
        for name in sorted(state_dict)
    ]


def plan_buckets(spec: list[TensorSpec], bucket_bytes: int) -> list[list[TensorSpec]]:
    """Consecutive runs of same-dtype tensors of at most ``bucket_bytes`` (a larger tensor goes alone)."""
    buckets: list[list[TensorSpec]] = []
    size = 0
    for tensor in spec:
        current = buckets[-1] if buckets else None
        if current is None or current[0].dtype != tensor.dtype or size + tensor.nbytes > bucket_bytes:
            buckets.append([tensor])
            size = tensor.nbytes
        else:
            current.append(tensor)
            size += tensor.nbytes
    return buckets


class SyncGroup:
    """A dedicated process group between learner rank 0 (rank 0 here) and every actor.

    Every member constructs it at the same time (the store's rendezvous waits for all ``world_size``).
    ``name`` keeps the keys of successive groups on one store apart (a group is rebuilt after an actor
    restarts).
    """

    def __init__(
        self,
        host: str,
        port: int,
        rank: int,
        world_size: int,
        timeout_seconds: int,
        device: torch.device,
        name: str = "wsync-0",
    ) -> None:
        timeout = datetime.timedelta(seconds=timeout_seconds)
        self.store = dist.TCPStore(host, port, world_size, rank == 0, timeout=timeout)
        prefixed = dist.PrefixStore(name, self.store)
        self.device = device
        self.rank, self.world_size = rank, world_size
        if device.type == "cuda":
            options = dist.ProcessGroupNCCL.Options()
            self.group: dist.ProcessGroup = dist.ProcessGroupNCCL(prefixed, rank, world_size, options)  # type: ignore[assignment]
        else:
            self.group = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)  # type: ignore[assignment]
        self.buffers: list[torch.Tensor] = []
        """One flat tensor per bucket, kept from sync to sync (the layout does not change within a group)."""

    def _buffers(self, buckets: list[list[TensorSpec]]) -> list[torch.Tensor]:
        """The flat tensors of ``buckets``, allocated at the first sync and reused after."""
        sizes = [(sum(t.numel for t in bucket), DTYPES[bucket[0].dtype]) for bucket in buckets]
        if [(b.numel(), b.dtype) for b in self.buffers] != sizes:
            self.buffers = [torch.empty(numel, dtype=dtype, device=self.device) for numel, dtype in sizes]
        return self.buffers

    def broadcast(self, state_dict: Mapping[str, torch.Tensor], spec: list[TensorSpec], bucket_mb: int) -> int:
        """Send ``state_dict`` from rank 0; returns the bytes sent. Each bucket is in flight while the next
        one is packed."""
        buckets = plan_buckets(spec, bucket_mb * 2**20)
        works = []
        for bucket, flat in zip(buckets, self._buffers(buckets), strict=True):
            torch.cat([state_dict[t.name].detach().reshape(-1).to(self.device) for t in bucket], out=flat)
            works.append(self.group.broadcast(flat, 0))
        for work in works:
            work.wait()
        return sum(flat.numel() * flat.element_size() for flat in self.buffers)

    def receive(self, spec: list[TensorSpec], bucket_mb: int) -> dict[str, torch.Tensor]:
        """Receive the weights rank 0 broadcasts, as tensors of ``spec``'s names and shapes: views into the
        group's buffers, valid until the next :meth:`receive` (load them into the engine at once)."""
        buckets = plan_buckets(spec, bucket_mb * 2**20)
        flats = self._buffers(buckets)
        for work in [self.group.broadcast(flat, 0) for flat in flats]:  # every bucket posted at once
            work.wait()
        received: dict[str, torch.Tensor] = {}
        for bucket, flat in zip(buckets, flats, strict=True):
            for tensor, piece in zip(bucket, flat.split([t.numel for t in bucket]), strict=True):
                received[tensor.name] = piece.view(tensor.shape)
        return received
