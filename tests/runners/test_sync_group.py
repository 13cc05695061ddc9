"""The weight-sync group's transfer (``oatlike/sync/group.py``) and what the learner hands it.

Two ranks of a real gloo group, as threads of this process (the group's store and gloo release the GIL
while they wait): the sync's buckets are allocated once and kept, every sync still delivers the newest
weights bit for bit, and ``Learner.weight_views`` hands over the live parameters without a copy.
"""

from __future__ import annotations

import threading

import torch
from helpers import make_batch, make_learner

from oatlike.learner.ds import free_port
from oatlike.models.loading import load_tokenizer
from oatlike.sync.group import SyncGroup, weight_spec


def sync_pair() -> tuple[SyncGroup, SyncGroup]:
    port, groups = free_port(), {}

    def join(rank: int) -> None:
        groups[rank] = SyncGroup("127.0.0.1", port, rank, 2, 30, torch.device("cpu"), "test")

    threads = [threading.Thread(target=join, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return groups[0], groups[1]


def sync(sender: SyncGroup, receiver: SyncGroup, weights: dict[str, torch.Tensor], bucket_mb: int) -> dict:
    spec = weight_spec(weights)
    thread = threading.Thread(target=sender.broadcast, args=(weights, spec, bucket_mb))
    thread.start()
    received = receiver.receive(spec, bucket_mb)
    thread.join()
    return received


def test_every_sync_delivers_the_newest_weights_bitwise_through_buckets_kept_between_syncs():
    sender, receiver = sync_pair()
    # 3 tensors of 1.2 MiB in buckets of 1 MiB: three buckets, each in flight while the next is packed
    first = {name: torch.randn(300_000) for name in ("a", "b", "c")}
    second = {name: torch.randn(300_000) for name in first}
    received = sync(sender, receiver, first, bucket_mb=1)
    assert all(torch.equal(received[name], first[name]) for name in first)
    addresses = [buffer.data_ptr() for buffer in (*sender.buffers, *receiver.buffers)]
    assert len(receiver.buffers) == 3
    received = sync(sender, receiver, second, bucket_mb=1)
    assert all(torch.equal(received[name], second[name]) for name in second)
    assert [buffer.data_ptr() for buffer in (*sender.buffers, *receiver.buffers)] == addresses  # no new buckets


def test_weight_views_are_the_live_parameters_and_equal_the_exported_copy(tiny_untrained):
    learner = make_learner(tiny_untrained)
    learner.learn(make_batch(load_tokenizer(str(tiny_untrained))))
    views, copies = learner.weight_views(), learner.weights()
    parameters = dict(learner.policy.named_parameters())
    name = "model.layers.0.self_attn.q_proj.weight"
    assert views[name].data_ptr() == parameters[name].data_ptr()  # no copy: the sync reads them at once
    assert copies[name].data_ptr() != parameters[name].data_ptr()
    assert views.keys() == copies.keys() and all(torch.equal(views[k], copies[k]) for k in views)


def test_with_lora_weight_views_are_the_merged_weights(tiny_untrained):
    learner = make_learner(tiny_untrained, lora=True)
    learner.learn(make_batch(load_tokenizer(str(tiny_untrained))))
    views, merged = learner.weight_views(), learner.weights()
    assert views.keys() == merged.keys() and not any("lora" in name for name in views)
    assert all(torch.equal(views[k], merged[k]) for k in views)
