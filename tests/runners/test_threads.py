"""``runner.threads``: the torch thread count of a ``runner=local`` run's process, which is the learner's
(null: ``OMP_NUM_THREADS`` if set, else one per core up to a cap)."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import run_local

from oatlike.runners.local import LOCAL_THREADS_CAP, local_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_learner_process_runs_with_runner_threads(tmp_path, restore_threads):
    torch.set_num_threads(2)
    done = run_local(tmp_path / "one", "steps=1", "eval.every=0", "runner.threads=1")
    assert done.summary["steps"] == 1
    assert torch.get_num_threads() == 1  # the learner trained in this process, with this many threads
    run_local(tmp_path / "two", "steps=1", "eval.every=0", "runner.threads=2")
    assert torch.get_num_threads() == 2


def test_null_takes_omp_num_threads_else_the_cores_up_to_the_cap(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert local_threads(None) == 3 and local_threads(1) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert local_threads(None) == min(len(os.sched_getaffinity(0)), LOCAL_THREADS_CAP)
