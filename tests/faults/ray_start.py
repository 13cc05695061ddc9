"""Ray start-up: an address where nothing answers, workers that the cluster's CPUs or this machine's memory
cannot hold, workers that are not built in time. Ray itself would wait without end for each of these."""

from __future__ import annotations

from faults.harness import Fault, Outcome

RAY = ("runner=ray", "steps=2", "eval.every=0")


def private_ray_stopped(outcome: Outcome) -> None:
    """The private local Ray the run started is stopped again (no worker, no raylet left behind)."""
    import ray

    assert not ray.is_initialized(), "the run left its private Ray running"


CASES = [
    Fault(
        "ray-address-where-nothing-answers",
        (*RAY, "ray.address=127.0.0.1:1"),
        r"^ray\.address: no Ray cluster answers at \S+:1( \(where 127\.0\.0\.1:1 leads\))?: a TCP connection failed "
        r"\(Connection refused\); "
        r"start a cluster with `ray start --head`",
    ),
    Fault(
        "more-actors-than-cpus",
        (*RAY, "actors.num=64", "ray.num_cpus=2"),
        r"^actors\.num: 64 actors \(actors\.num_cpus=1 each\) and 1 learner rank \(learner\.num_cpus=1 each\) "
        r"need 65 CPUs, but the private local Ray has 2 CPUs \(ray\.num_cpus=2\); lower actors\.num, reserve a "
        r"fraction of a CPU each \(actors\.num_cpus=0\.5\), or raise ray\.num_cpus to 65",
        then=private_ray_stopped,
    ),
    Fault(
        "more-actors-than-memory",
        (*RAY, "actors.num=500", "actors.num_cpus=0.001"),
        r"^actors\.num: 500 actors and 1 learner rank need about \d+\.\d GB of memory \(each its copy of the "
        r"\d+ MB policy plus ~500 MB of Python, torch and Ray\), but this machine has \d+\.\d GB available",
        then=private_ray_stopped,
    ),
    Fault(
        "workers-not-built-in-time",
        (*RAY, "ray.startup_timeout_seconds=0.5"),
        r"^ray\.startup_timeout_seconds: (learner rank 0|actor 0) did not start within 0\.5 s: .*; "
        r"raise ray\.startup_timeout_seconds if they are only slow$",
        then=private_ray_stopped,
    ),
]
