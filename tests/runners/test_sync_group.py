"""The weight-sync group's transfer (``oatlike/sync/group.py``) and what the learner hands it.

Two ranks of a real gloo group, as threads of this process (the group's store and gloo release the GIL
while they wait): the sync's buckets are allocated once and kept, every sync still delivers the newest
weights bit for bit, an engine that offers its weights' storage receives straight into its parameters (no
buffers, nothing left for its load to copy), and ``Learner.weight_views`` hands over the live parameters
without a copy.
"""

from __future__ import annotations

import threading

import torch
from helpers import make_batch, make_learner

from oatlike.engines.hf import HFEngine
from oatlike.learner.ds import free_port
from oatlike.models.loading import load_causal_lm, load_tokenizer
from oatlike.sync.group import SyncGroup, flat_view, plan_buckets, weight_spec


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


def sync(
    sender: SyncGroup, receiver: SyncGroup, weights: dict[str, torch.Tensor], bucket_mb: int, into: dict | None = None
) -> dict:
    spec = weight_spec(weights)
    thread = threading.Thread(target=sender.broadcast, args=(weights, spec, bucket_mb))
    thread.start()
    received = receiver.receive(spec, bucket_mb, into)
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


def test_an_hf_engine_receives_straight_into_its_parameters_bitwise(tiny_untrained):
    sender, receiver = sync_pair()
    engine = HFEngine(load_causal_lm(str(tiny_untrained)), load_tokenizer(str(tiny_untrained)))
    learner = load_causal_lm(str(tiny_untrained))
    parameters = dict(engine.model.named_parameters())
    for step in (1, 2):  # the first sync lays the parameters out as buckets, the second lands in them
        with torch.no_grad():
            for weight in learner.parameters():
                weight.add_(torch.randn_like(weight))
        weights = {name: tensor.detach() for name, tensor in learner.state_dict().items()}
        received = sync(sender, receiver, weights, bucket_mb=1, into=engine.weight_storage())
        engine.load_weights(received, step)
        own = engine.model.state_dict()
        assert all(torch.equal(own[name], weights[name]) for name in weights)  # bit for bit
        assert all(received[name].data_ptr() == own[name].data_ptr() for name in weights)  # no copy to load
        assert receiver.buffers == []  # nothing was received elsewhere
        if step == 1:
            addresses = {name: tensor.data_ptr() for name, tensor in own.items()}
    assert {name: tensor.data_ptr() for name, tensor in own.items()} == addresses  # laid out once, then kept
    assert dict(engine.model.named_parameters()) == parameters  # the same Parameter objects, new storage
    buckets = plan_buckets(weight_spec(weights), 2**20)
    assert len(buckets) > 1 and all(flat_view([own[t.name] for t in bucket]) is not None for bucket in buckets)


def test_weights_the_engine_holds_in_another_dtype_arrive_in_buffers_and_are_converted(tiny_untrained):
    sender, receiver = sync_pair()
    engine = HFEngine(load_causal_lm(str(tiny_untrained), "bfloat16"), load_tokenizer(str(tiny_untrained)))
    weights = {name: torch.randn_like(t, dtype=torch.float32) for name, t in engine.model.state_dict().items()}
    engine.load_weights(sync(sender, receiver, weights, bucket_mb=1, into=engine.weight_storage()), 1)
    assert receiver.buffers  # not in place: the engine converts while it loads
    own = engine.model.state_dict()
    assert all(torch.equal(own[name], weights[name].to(torch.bfloat16)) for name in weights)


def test_a_weight_under_two_names_is_not_received_in_place():
    sender, receiver = sync_pair()
    tied, alone = torch.zeros(1000), torch.zeros(1000)  # tied input and output embeddings, and another weight
    into = {"embed": tied, "head": tied, "other": alone}
    weights = {name: torch.randn(1000) for name in into}
    weights["head"] = weights["embed"].clone()
    received = sync(sender, receiver, weights, bucket_mb=1, into=into)
    assert all(torch.equal(received[name], weights[name]) for name in weights)
    assert receiver.buffers and received["embed"].data_ptr() != tied.data_ptr()  # in the group's buffer
