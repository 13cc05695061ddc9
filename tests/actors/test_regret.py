"""The two regrets: the pairs played (explore-and-exploit) and the greedy answer's (anytime), docs/algorithms.md §7."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config, read_metrics

from oatlike.actors.actor import pair_regret
from oatlike.experiment import run
from oatlike.runners.ray_cluster import merge_actor_metrics
from oatlike.tasks.arithmetic import ArithmeticTask


def test_pair_regret_matches_the_hand_computed_vector():
    utilities = np.array([[1.0, 0.5, 0.0], [0.25, 0.75, 1.0]])
    pairs = np.array([[0, 2], [1, 2]])
    assert pair_regret(utilities, np.array([1.0, 1.0]), pairs) == pytest.approx(0.625)
    # the best pair costs nothing, the worst the most; u* below 1 lowers the yardstick
    assert pair_regret(utilities, np.array([1.0, 1.0]), np.array([[0, 0], [2, 2]])) == 0.0
    assert pair_regret(utilities, np.array([1.0, 1.0]), np.array([[2, 2], [0, 0]])) == pytest.approx(1.75)
    assert pair_regret(utilities[:1], np.array([0.5]), np.array([[1, 1]])) == 0.0


def test_best_utility_is_the_best_responses():
    task = ArithmeticTask()
    prompt = task.split("eval")[0].text
    assert task.best_utility(prompt) == 1.0 == task.utility(prompt, task.best_response(prompt))


def test_a_run_logs_both_regrets_as_defined(tmp_path):
    summary = run(make_config(tmp_path, "steps=4", "eval.every=2"), tmp_path)
    records = read_metrics(tmp_path)
    steps = [r for r in records if "regret/step" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for record in steps:  # u* = 1 on arithmetic: the regret of the 32 pairs is 32 (1 - mean utility served)
        assert record["regret/step"] == pytest.approx(32 * (1 - record["actor/served_utility"]))
    assert [r["regret/cumulative"] for r in steps] == pytest.approx(np.cumsum([r["regret/step"] for r in steps]))
    assert summary["cumulative_regret"] == pytest.approx(steps[-1]["regret/cumulative"])
    assert summary["cumulative_regret"] > 0
    evaluations = [r for r in records if "eval/regret" in r]
    assert [r["step"] for r in evaluations] == [0, 2, 4]
    for record in evaluations:
        assert record["eval/regret"] == pytest.approx(1 - record["eval/utility"])
    assert summary["anytime_regret"] == evaluations[-1]["eval/regret"]


def test_actors_parts_add_up_under_ray():
    # two actors with 3 and 1 of the step's 4 prompts: their regrets add up, their utilities average by size
    parts = [{"regret/step": 0.75, "actor/served_utility": 0.75}, {"regret/step": 0.5, "actor/served_utility": 0.5}]
    merged = merge_actor_metrics(parts, [3, 1])
    assert merged["regret/step"] == 1.25
    assert merged["regret/step"] == pytest.approx(4 * (1 - merged["actor/served_utility"]))
