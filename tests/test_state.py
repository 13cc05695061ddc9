"""State round trips of the whole loop (``runner=local``): a run restored between two steps from another
run's state goes on exactly as the run that was never interrupted.

Run A trains 4 steps. Run B, the same run, stops after 2 and hands its state (every role's, the prompt
stream's, the counters) to a fresh run C, which trains steps 3 and 4. C's records of steps 3 and 4 must
equal A's, every number but timings, and C's final weights A's, bitwise: the actors' random streams, the
explorers' models, the learner's optimizer, schedule, references and buffer all came along.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from helpers import make_config, step_records

from oatlike.experiment import build_loop
from oatlike.loop import Loop

TIMES = ("seconds", "per_second")


def loop_of(run_dir: Path, steps: int, *overrides: str) -> Loop:
    return build_loop(make_config(run_dir, f"steps={steps}", "eval.every=0", *overrides), run_dir)


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith(TIMES)} for r in records]


@pytest.mark.parametrize(
    "overrides",
    [
        ["algo=sea", "explore.ensemble_size=4"],
        ["algo=copo", "explore.reference_refresh_every=2"],
        ["algo=bpo", "explore.ensemble_size=2"],
        ["learner.buffer_size=64", "learner.epochs=2", "learner.lr_scheduler=cosine", "learner.warmup_steps=2"],
    ],
    ids=["sea", "copo-iterations", "bpo-ensemble", "dpo-buffer-schedule"],
)
def test_a_restored_run_goes_on_as_the_uninterrupted_one(tmp_path, overrides):
    whole = loop_of(tmp_path / "a", 4, *overrides)
    whole.train()
    first_half = loop_of(tmp_path / "b", 4, *overrides)  # the same run (LR schedule included), stopped at 2
    first_half.config = dataclasses.replace(first_half.config, steps=2)
    first_half.train()
    state = first_half.state_dict()
    resumed = loop_of(tmp_path / "c", 4, *overrides, "seed=1")  # another seed: all that matters is in the state
    resumed.load_state_dict(state)
    resumed.train()
    for loop in (whole, first_half, resumed):
        loop.tracker.close()
    expected = comparable(step_records(tmp_path / "a")[2:])
    assert comparable(step_records(tmp_path / "c")) == expected
    a = whole.roles.learner.learner.weights()  # type: ignore[attr-defined]
    c = resumed.roles.learner.learner.weights()  # type: ignore[attr-defined]
    assert all(torch.equal(a[k], c[k]) for k in a)
