"""Versioned weight sync from learner rank 0 to the actors' engines.

The group is a process group of its own: its own ``TCPStore`` rendezvous hosted by learner rank 0, wrapped
in a named ``PrefixStore``; it never touches the default process group, which belongs to the learner's
DeepSpeed world (``ray.util.collective`` would take that over). gloo on CPUs; NCCL where the weights live
on GPUs.

Weights travel as a fixed, named layout (:func:`weight_spec`: sorted names, shapes, dtypes): rank 0 packs
them into flat buckets of at most ``bucket_mb`` MiB per dtype and broadcasts each bucket; receivers unpack
the same layout, so nothing but tensor data crosses the wire.

What a sync costs beyond the broadcast of its bytes (``benchmarks/limits.py`` measures the two side by side):
the sender's packing, one pass over the weights, overlapped with sending (a bucket is sent while the next
one is packed). The receiver makes no pass of its own where its engine offers its weights' storage
(:meth:`SyncGroup.receive`'s ``into``, from :meth:`~oatlike.engines.base.Engine.weight_storage`): at the
first sync those tensors are laid out anew as one flat tensor per bucket, so every later sync broadcasts
straight into the engine's parameters and the engine's load has nothing left to copy. Elsewhere (vLLM,
whose worker owns and repacks its parameters; a dtype the engine converts) it receives into buffers of
its own and the engine copies from them. Buffers are kept from sync to sync (a fresh tensor costs its
page faults at every sync: on the 2-core machine a 10M model's 34 MiB took 176 ms a sync with fresh
buckets and a copy of the export, 30 ms with kept buckets and the engine's copy, against 16 ms for the
plain broadcast; docs/benchmarks.md has the figures without the copy).
"""

from __future__ import annotations

import datetime
from collections import Counter
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


def flat_view(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """One 1-D tensor over all of ``tensors`` when they lie back to back, in order, in one storage (each
    contiguous, one dtype and device); ``None`` otherwise. Writing into it writes into every one of them."""
    first = tensors[0]
    offset = first.data_ptr()
    for tensor in tensors:
        if not (tensor.is_contiguous() and tensor.dtype == first.dtype and tensor.device == first.device):
            return None
        if tensor.data_ptr() != offset or tensor.untyped_storage().data_ptr() != first.untyped_storage().data_ptr():
            return None
        offset += tensor.numel() * tensor.element_size()
    return first.detach().as_strided((sum(t.numel() for t in tensors),), (1,))


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

    def receive(
        self, spec: list[TensorSpec], bucket_mb: int, into: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Receive the weights rank 0 broadcasts, as tensors of ``spec``'s names and shapes.

        ``into``: an engine's own weight tensors by name (:meth:`~oatlike.engines.base.Engine.weight_storage`).
        A bucket whose every tensor is there with its shape, dtype and the group's device type is received
        straight into them: at the first sync their ``.data`` is moved into one flat tensor per bucket
        (their values copied), after which they stay laid out so and each sync writes into them, no copy
        made. The returned tensors are then those same tensors, and the engine's ``load_weights`` finds
        them already in place (a sync that fails midway leaves them partly written). Any other bucket
        arrives in the group's buffers: views valid until the next :meth:`receive` (load them into the
        engine at once).
        """
        buckets = plan_buckets(spec, bucket_mb * 2**20)
        if into is not None:  # one tensor under two names (tied weights) would be written twice: not in place
            names_of = Counter(id(tensor) for tensor in into.values())
            into = {name: tensor for name, tensor in into.items() if names_of[id(tensor)] == 1}
        in_place = [self._in_place(bucket, into) for bucket in buckets]
        buffers = self._buffers(buckets) if any(flat is None for flat in in_place) else []
        flats = [flat if flat is not None else buffers[index] for index, flat in enumerate(in_place)]
        for work in [self.group.broadcast(flat, 0) for flat in flats]:  # every bucket posted at once
            work.wait()
        received: dict[str, torch.Tensor] = {}
        for bucket, flat in zip(buckets, flats, strict=True):
            for tensor, piece in zip(bucket, flat.split([t.numel for t in bucket]), strict=True):
                received[tensor.name] = piece.view(tensor.shape)
        return received

    def _in_place(self, bucket: list[TensorSpec], into: Mapping[str, torch.Tensor] | None) -> torch.Tensor | None:
        """The flat tensor over ``into``'s tensors of ``bucket`` (laid out so at the first call), or ``None``
        where they do not fit the bucket (one missing, or of another shape, dtype or kind of device)."""
        if into is None or any(tensor.name not in into for tensor in bucket):
            return None
        tensors = [into[tensor.name] for tensor in bucket]
        if any(
            tuple(t.shape) != spec.shape or t.dtype != DTYPES[spec.dtype] or t.device.type != self.device.type
            for t, spec in zip(tensors, bucket, strict=True)
        ):
            return None
        flat = flat_view(tensors)
        if flat is None:  # the first sync: move them into one flat tensor of their own
            flat = torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype, device=tensors[0].device)
            for tensor, piece in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
                piece.copy_(tensor.detach().reshape(-1))
                tensor.data = piece.view(tensor.shape)
        return flat
